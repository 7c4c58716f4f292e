package alertmanager

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/alertmanager/matcher/compat"
	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
)

// Matcher is one matcher of a silence, as Alertmanager's API v2 writes it.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	// IsEqual is false for != and !~. Absent means true: Alertmanager
	// before 0.22 has no negative silence matchers.
	IsEqual *bool `json:"isEqual,omitempty"`
}

// alertmanagerMatcher returns m as Alertmanager evaluates it.
func (m Matcher) alertmanagerMatcher() (*amlabels.Matcher, error) {
	t := amlabels.MatchEqual
	equal := m.IsEqual == nil || *m.IsEqual
	switch {
	case m.IsRegex && equal:
		t = amlabels.MatchRegexp
	case m.IsRegex:
		t = amlabels.MatchNotRegexp
	case !equal:
		t = amlabels.MatchNotEqual
	}
	if !compat.IsValidLabelName(model.LabelName(m.Name)) {
		return nil, fmt.Errorf("invalid label name %q", m.Name)
	}
	am, err := amlabels.NewMatcher(t, m.Name, m.Value)
	if err != nil {
		return nil, fmt.Errorf("invalid regular expression %q: %w", m.Value, err)
	}
	return am, nil
}

// fromAlertmanager is the inverse of alertmanagerMatcher; isEqual is always
// written.
func fromAlertmanager(m *amlabels.Matcher) Matcher {
	equal := m.Type == amlabels.MatchEqual || m.Type == amlabels.MatchRegexp
	return Matcher{
		Name:    m.Name,
		Value:   m.Value,
		IsRegex: m.Type == amlabels.MatchRegexp || m.Type == amlabels.MatchNotRegexp,
		IsEqual: &equal,
	}
}

func alertmanagerMatchers(ms []Matcher) ([]*amlabels.Matcher, error) {
	out := make([]*amlabels.Matcher, len(ms))
	for i, m := range ms {
		am, err := m.alertmanagerMatcher()
		if err != nil {
			return nil, fmt.Errorf("invalid label matcher %d: %w", i, err)
		}
		out[i] = am
	}
	return out, nil
}

// PostableSilence is the body of POST /api/v2/silences as promgate
// forwards it: rebuilt from the fields it checked, so that Alertmanager
// reads exactly the silence that was enforced (a duplicated or
// differently cased key cannot carry other matchers past promgate).
type PostableSilence struct {
	ID          string            `json:"id,omitempty"`
	Matchers    []Matcher         `json:"matchers"`
	StartsAt    string            `json:"startsAt"`
	EndsAt      string            `json:"endsAt"`
	CreatedBy   string            `json:"createdBy"`
	Comment     string            `json:"comment"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type rawMatcher struct {
	Name    *string `json:"name"`
	Value   *string `json:"value"`
	IsRegex *bool   `json:"isRegex"`
	IsEqual *bool   `json:"isEqual"`
}

type rawSilence struct {
	ID          *string           `json:"id"`
	Matchers    *[]*rawMatcher    `json:"matchers"`
	StartsAt    *string           `json:"startsAt"`
	EndsAt      *string           `json:"endsAt"`
	CreatedBy   *string           `json:"createdBy"`
	Comment     *string           `json:"comment"`
	Annotations map[string]string `json:"annotations"`
}

// ParsePostableSilence reads the body of POST /api/v2/silences and checks
// it as Alertmanager would (required fields, timestamps, valid matchers),
// with Alertmanager's error messages. It returns the silence and its
// matchers.
func ParsePostableSilence(body []byte) (*PostableSilence, []*amlabels.Matcher, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil, errRequired("silence")
	}
	var raw rawSilence
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, nil, errParse("silence", err)
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"comment", raw.Comment != nil},
		{"createdBy", raw.CreatedBy != nil},
		{"endsAt", raw.EndsAt != nil},
		{"matchers", raw.Matchers != nil},
		{"startsAt", raw.StartsAt != nil},
	} {
		if !f.set {
			return nil, nil, errRequired(f.name)
		}
	}
	if len(*raw.Matchers) == 0 {
		return nil, nil, newSchemaError(http.StatusUnprocessableEntity, codeTooFewItems, "matchers in body should have at least 1 items")
	}
	s := &PostableSilence{
		StartsAt:    *raw.StartsAt,
		EndsAt:      *raw.EndsAt,
		CreatedBy:   *raw.CreatedBy,
		Comment:     *raw.Comment,
		Annotations: raw.Annotations,
	}
	if raw.ID != nil {
		s.ID = *raw.ID
	}
	for i, m := range *raw.Matchers {
		if m == nil {
			return nil, nil, errRequired(fmt.Sprintf("matchers.%d", i))
		}
		switch {
		case m.IsRegex == nil:
			return nil, nil, errRequired(fmt.Sprintf("matchers.%d.isRegex", i))
		case m.Name == nil:
			return nil, nil, errRequired(fmt.Sprintf("matchers.%d.name", i))
		case m.Value == nil:
			return nil, nil, errRequired(fmt.Sprintf("matchers.%d.value", i))
		}
		s.Matchers = append(s.Matchers, Matcher{Name: *m.Name, Value: *m.Value, IsRegex: *m.IsRegex, IsEqual: m.IsEqual})
	}
	for _, ts := range []string{s.StartsAt, s.EndsAt} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, nil, errParse("silence", err)
		}
	}
	if s.ID != "" && !uuidPattern.MatchString(s.ID) {
		return nil, nil, apierror.New(apierror.BadData, "invalid silence ID %q", s.ID)
	}
	ms, err := alertmanagerMatchers(s.Matchers)
	if err != nil {
		return nil, nil, apierror.New(apierror.BadData, "silence invalid: %v", err)
	}
	return s, ms, nil
}

// uuidPattern is the format Alertmanager's API requires of silence IDs
// (go-openapi's strfmt.UUID). An ID that passes is hexadecimal digits and
// hyphens: it cannot change the path it is put in.
var uuidPattern = regexp.MustCompile(`(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`)

// gettableSilence is what ownership needs of a silence Alertmanager
// returns.
type gettableSilence struct {
	ID       string    `json:"id"`
	Matchers []Matcher `json:"matchers"`
}

// ownsSilence reports whether a silence as Alertmanager returns it is the
// tenant's. A silence with a matcher promgate cannot read is not.
func (e *Enforcer) ownsSilence(s gettableSilence) bool {
	ms, err := alertmanagerMatchers(s.Matchers)
	if err != nil {
		return false
	}
	return e.Owns(ms)
}

// The keys of a silence Alertmanager returns that ownership is decided on.
// encoding/json reads them without regard to case, and decodes a list of
// matchers given twice into the elements of the first (merging them);
// clients matching keys exactly read the last list. So a key spelt
// otherwise refuses the answer (jsonscan.ErrSpelling), and a silence with a
// key given twice is written anew, each key once (the last), before it is
// decided on.
var (
	silenceObject = jsonscan.NewObject("id", "matchers")
	matcherObject = jsonscan.NewObject("name", "value", "isRegex", "isEqual")
)

// readSilence decodes the silence raw, and returns it as it goes out: as
// it came, or written anew when a decided key is given twice.
func readSilence(raw []byte) ([]byte, gettableSilence, error) {
	var s gettableSilence
	raw, err := onceEach(raw)
	if err == nil {
		err = json.Unmarshal(raw, &s)
	}
	return raw, s, err
}

// onceEach returns the silence raw with each decided key once.
func onceEach(raw []byte) ([]byte, error) {
	vs := jsonscan.SkipSpace(raw, 0)
	if vs >= len(raw) || raw[vs] != '{' {
		return raw, nil // not an object: for encoding/json to refuse
	}
	var sw, mw jsonscan.Walk
	dup := false
	skip := func(_, vs int) (int, error) { return jsonscan.SkipValue(raw, vs) }
	_, err := silenceObject.Walk(raw, vs, &sw, func(field, vs int) (int, error) {
		if field != 1 || raw[vs] != '[' {
			return jsonscan.SkipValue(raw, vs)
		}
		return jsonscan.WalkArray(raw, vs, func(ms int) (int, error) {
			if raw[ms] != '{' {
				return jsonscan.SkipValue(raw, ms)
			}
			e, err := matcherObject.Walk(raw, ms, &mw, skip)
			dup = dup || mw.Dup
			return e, err
		})
	})
	if err != nil || !sw.Dup && !dup {
		return raw, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	var ms []map[string]json.RawMessage
	if err := json.Unmarshal(m["matchers"], &ms); err == nil && ms != nil {
		m["matchers"], _ = json.Marshal(ms)
	}
	return json.Marshal(m)
}

// OwnsSilence decodes one silence of GET /api/v2/silence/ID and reports
// whether it is the tenant's, and returns it as it goes out (see
// readSilence).
func (e *Enforcer) OwnsSilence(body []byte) ([]byte, bool, error) {
	body, s, err := readSilence(body)
	if err != nil {
		return nil, false, err
	}
	return body, e.ownsSilence(s), nil
}

// FilterSilences keeps the tenant's silences of a GET /api/v2/silences
// answer. The silences kept are copied byte for byte, but those with a
// decided key given twice (see readSilence).
func (e *Enforcer) FilterSilences(body []byte) ([]byte, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, err
	}
	kept := items[:0]
	for _, raw := range items {
		raw, s, err := readSilence(raw)
		if err != nil {
			return nil, err
		}
		if e.ownsSilence(s) {
			kept = append(kept, raw)
		}
	}
	return marshalRaw(kept), nil
}

// OwnedSilenceIDs returns the IDs of the tenant's silences in a GET
// /api/v2/silences answer.
func (e *Enforcer) OwnedSilenceIDs(body []byte) (map[string]bool, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, raw := range items {
		_, s, err := readSilence(raw)
		if err != nil {
			return nil, err
		}
		if e.ownsSilence(s) {
			ids[s.ID] = true
		}
	}
	return ids, nil
}

// marshalRaw writes a JSON array of already encoded values ("[]" when
// empty, never "null": Alertmanager's clients expect an array).
func marshalRaw(items []json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	return b.Bytes()
}
