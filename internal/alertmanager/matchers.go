package alertmanager

import (
	"log/slog"

	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/matcher/compat"
)

// Matchers are read as Alertmanager reads them by default since 0.27
// (neither --enable-feature=classic-mode nor utf8-strict-mode): with the
// UTF-8 matchers parser, which reads quoted UTF-8 names such as
// {"service.name"="checkout"}, falling back to the classic parser for what
// only it reads, and taking the classic reading where the two disagree;
// label names are any non-empty UTF-8. compat's own default is the classic
// parser of Alertmanager 0.26 and before, which refuses UTF-8 names.
//
// The fallback reads everything the classic parser reads as that parser
// does, so an older Alertmanager (0.25) sees no difference on what it
// accepts; a UTF-8 name it cannot take gets its own 400.
func init() {
	compat.InitFromFlags(slog.New(slog.DiscardHandler), featurecontrol.NoopFlags{})
}
