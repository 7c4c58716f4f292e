package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/server"
)

// explainFlags are the explain command's arguments.
type explainFlags struct {
	user    string
	groups  []string
	method  string
	query   string
	match   []string
	amAlert bool
	silence string
	json    bool
}

// explain prints what promgate would do with a request of an identity,
// from the configuration alone: the state is built as the server builds
// it and asked through the code that enforces requests; no upstream is
// called. A refusal exits 1 with its reason.
func explain(f flags, ef explainFlags, stdout, stderr io.Writer, logger *slog.Logger) int {
	_, cfg, err := loadFiles(f, logger)
	if err != nil {
		fmt.Fprintf(stderr, "promgate: %v\n", err)
		return 2
	}
	st, err := server.Build(cfg, server.BuildOptions{}, logger)
	if err != nil {
		fmt.Fprintf(stderr, "promgate: %v\n", err)
		return 2
	}
	defer st.Close()
	id := identity.Identity{User: ef.user, Groups: ef.groups, Method: ef.method}
	ex, xerr := st.Explain(id, server.ExplainRequest{
		Query: ef.query, Match: ef.match, AlertmanagerFilter: ef.amAlert, Silence: ef.silence,
	})
	if ef.json {
		b, _ := json.MarshalIndent(ex, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		writeExplanation(stdout, ex)
	}
	if xerr != nil {
		fmt.Fprintf(stderr, "promgate: refused: %v\n", xerr)
		return 1
	}
	return 0
}

func writeExplanation(w io.Writer, ex *server.Explanation) {
	line := func(k, v string) { fmt.Fprintf(w, "%-17s %s\n", k+":", v) }
	list := func(vs []string) string {
		if len(vs) == 0 {
			return "(none)"
		}
		return strings.Join(vs, ", ")
	}
	line("user", ex.User)
	if ex.Method != "" {
		line("method", ex.Method)
	}
	line("groups", list(ex.Groups))
	line("policies", list(ex.Policies))
	switch {
	case ex.AllowAll:
		line("access", "unrestricted (allow_all): requests are forwarded unchanged")
	case len(ex.Selectors) > 0:
		line("access", "series matching any of:")
		for i, s := range ex.Selectors {
			fmt.Fprintf(w, "  %s\n    %s\n", s, ex.Words[i])
		}
	}
	for i, l := range ex.Limits {
		if i == 0 {
			line("limits", l)
		} else {
			fmt.Fprintf(w, "%-17s %s\n", "", l)
		}
	}
	if ex.Query != "" {
		line("query", ex.Query)
		switch len(ex.Sent) {
		case 0:
		case 1:
			line("sent", ex.Sent[0])
		default:
			line("sent", "these, their answers merged by promgate:")
			for _, s := range ex.Sent {
				fmt.Fprintf(w, "  %s\n", s)
			}
		}
	}
	if len(ex.Match) > 0 {
		line("match[]", list(ex.Match))
		if len(ex.MatchSent) > 0 {
			line("match[] sent", list(ex.MatchSent))
		}
	}
	if len(ex.ExtraFilters) > 0 {
		line("extra_filters[]", list(ex.ExtraFilters)+" (handed down: the upstream keeps the series matching any of them)")
	}
	if ex.AlertmanagerFilter {
		switch {
		case ex.AllowAll:
			line("alert filter", "none: listings are forwarded unchanged")
		case len(ex.AlertFilters) == 0:
			line("alert filter", "none added upstream; promgate drops the alerts outside the selectors from the answer")
		default:
			line("alert filter", list(ex.AlertFilters)+" (added upstream; the answer is filtered by the selectors too)")
		}
	}
	if ex.Silence != "" {
		line("silence", ex.Silence)
		if ex.Refusal == "" {
			if ex.SilenceOwned {
				line("silence owned", "yes: its matchers imply the selectors")
			} else {
				line("silence owned", "no: promgate adds "+list(ex.SilenceInjected))
			}
			line("silence sent", list(ex.SilenceSent))
		}
	}
	if ex.Refusal != "" {
		line("refused", ex.Refusal)
	}
}
