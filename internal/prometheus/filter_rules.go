package prometheus

import (
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/promql"
)

// The data of /api/v1/rules: groups of rules, each with its alerts.
var (
	rulesObject = jsonscan.NewObject("groups", "groupNextToken")
	groupObject = jsonscan.NewObject("rules", "name", "file")
	ruleObject  = jsonscan.NewObject("labels", "name", "type", "alerts")
)

// keepRule keeps a rule when the series it produces are the tenant's (its
// labels, with its name as __name__ for a recording rule) or when one of
// its alerts is; of a kept rule only the tenant's alerts are shown.
func (f *labelFilter) keepRule(out, b []byte, vs int, scratch *[]byte) ([]byte, int, bool, error) {
	switch b[vs] {
	case 'n':
		return f.nullElement(out, b, vs)
	case '{':
	default:
		return notObject(b, vs, "a rule")
	}
	var (
		name, typ            string
		alerts               = (*scratch)[:0]
		hasAlerts, sameAlert bool
		nAlerts              int
		rewrite              bool
	)
	f.rule.set(b, -1, -1)
	end, err := ruleObject.Walk(b, vs, &f.rulew, func(field, s int) (e int, err error) {
		switch field {
		case 0:
			return readLabels(b, s, &f.rule, &rewrite)
		case 1:
			return readString(b, s, &name)
		case 2:
			return readString(b, s, &typ)
		}
		hasAlerts = b[s] != 'n'
		nAlerts = 0
		alerts, e, sameAlert, err = filterArray(alerts[:0], b, s, func(out []byte, s int) ([]byte, int, bool, error) {
			out, e, kept, err := f.alert(out, b, s)
			if kept {
				nAlerts++
			}
			return out, e, kept, err
		})
		return e, err
	})
	*scratch = alerts
	if err != nil {
		return out, end, false, err
	}
	var add []jsonscan.Member
	if rewrite {
		add = append(add, withLabels("labels", &f.rule))
	}
	if typ == "recording" {
		f.rule.metric, f.rule.hasMetric = name, true
	}
	if !f.allow(f.getRule) && nAlerts == 0 {
		return out, end, false, nil
	}
	changedAlerts := hasAlerts && !sameAlert
	if changedAlerts {
		add = append(add, jsonscan.Member{Key: "alerts", Value: alerts})
	}
	if f.rulew.Dup || len(add) > 0 {
		out, err = jsonscan.WriteObject(out, b, f.rulew.Spans, func(k string) bool {
			return rewrite && k == "labels" || changedAlerts && k == "alerts"
		}, add)
		return out, end, true, err
	}
	return append(out, b[vs:end]...), end, true, nil
}

// group keeps a rule group with the rules the tenant may see; a group left
// empty is dropped. page, when paging, takes its share of what is kept.
func (f *labelFilter) group(out, b []byte, gs int, page *rulesPage) ([]byte, int, bool, error) {
	switch b[gs] {
	case '{':
	case 'n':
		e, err := jsonscan.SkipLiteral(b, gs, "null")
		if err == nil {
			err = errMissing // a group without rules
		}
		return out, e, false, err
	default:
		return notObject(b, gs, "a rule group")
	}
	var (
		hasRules, same bool
		name, file     string
	)
	ge, err := groupObject.Walk(b, gs, &f.grp, func(field, s int) (e int, err error) {
		switch field {
		case 1:
			return readName(b, s, &name)
		case 2:
			return readName(b, s, &file)
		}
		hasRules = b[s] != 'n'
		f.rules, e, same, err = filterArray(f.rules[:0], b, s, func(out []byte, rs int) ([]byte, int, bool, error) {
			return f.keepRule(out, b, rs, &f.alerts)
		})
		return e, err
	})
	switch {
	case err != nil:
		return out, ge, false, err
	case !f.grp.Found(0):
		return out, ge, false, errMissing
	case len(f.rules) == 2: // []: nothing left
		return out, ge, false, nil
	case page != nil && !page.take(file, name):
		return out, ge, false, nil
	case same && hasRules && !f.grp.Dup:
		return append(out, b[gs:ge]...), ge, true, nil
	}
	out, err = jsonscan.WriteObject(out, b, f.grp.Spans, jsonscan.DropKeys("rules"), []jsonscan.Member{{Key: "rules", Value: f.rules}})
	return out, ge, true, err
}

// readName reads a group's name or file for paging: a value that is not a
// string pages as "" (the reference implementation did not read them).
func readName(b []byte, vs int, s *string) (int, error) {
	if b[vs] == '"' {
		return readString(b, vs, s)
	}
	*s = ""
	return jsonscan.SkipValue(b, vs)
}

// filterRulesData keeps the rules the tenant may see; page (nil: all)
// pages the groups kept.
func filterRulesData(out, data []byte, allow visibleFunc, page *rulesPage) ([]byte, int, error) {
	switch data[0] {
	case '{':
	case 'n':
		end, err := jsonscan.SkipLiteral(data, 0, "null")
		if err == nil {
			err = errMissing // no groups
		}
		return out, end, err
	default:
		end, err := jsonscan.SkipValue(data, 0)
		if err == nil {
			err = jsonscan.TypeError(data[0], "the rules")
		}
		return out, end, err
	}
	f := newLabelFilter(allow)
	defer f.release()
	out = append(out, `{"groups":`...)
	mark := len(out)
	end, err := rulesObject.Walk(data, 0, &f.top, func(field, vs int) (e int, err error) {
		if field == 1 {
			// The upstream's token pages what the tenant does not see.
			return jsonscan.SkipValue(data, vs)
		}
		page.restart()
		out, e, _, err = filterArray(out[:mark], data, vs, func(out []byte, gs int) ([]byte, int, bool, error) {
			return f.group(out, data, gs, page)
		})
		return e, err
	})
	if err == nil && !f.top.Found(0) {
		err = errMissing
	}
	if err == nil {
		err = page.done()
	}
	if err != nil {
		return out, end, err
	}
	out, n, err := jsonscan.WriteMembers(out, data, f.top.Spans, jsonscan.DropKeys("groups", "groupNextToken"), 1)
	if page != nil && page.next != "" {
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, `"groupNextToken":`...)
		out = strconv.AppendQuote(out, page.next)
	}
	return append(out, '}'), end, err
}

// rulesPage pages the rule groups a tenant sees (group_limit and
// group_next_token, as Prometheus 3 pages them): promgate filters, then
// pages, so that a page is never emptied by other tenants' groups, and its
// token names the first group of the next page, one the tenant sees.
type rulesPage struct {
	limit int    // groups in a page, > 0
	token string // the first group of the page ("": the first page)
	found bool   // the token's group was met
	n     int    // groups in the page
	next  string // the token of the next page
}

// groupToken is the token of a group, Prometheus 3's: its file and name
// hashed.
func groupToken(file, name string) string {
	h := sha1.Sum([]byte(file + ";" + name))
	return hex.EncodeToString(h[:])
}

// take reports whether a group kept goes in the page.
func (p *rulesPage) take(file, name string) bool {
	if p.token != "" && !p.found {
		if groupToken(file, name) != p.token {
			return false
		}
		p.found = true
	}
	if p.n == p.limit {
		if p.next == "" {
			p.next = groupToken(file, name)
		}
		return false
	}
	p.n++
	return true
}

// restart starts the page again (for the last of repeated "groups").
func (p *rulesPage) restart() {
	if p != nil {
		p.found, p.n, p.next = false, 0, ""
	}
}

// done is the error for a token that names no group the tenant sees.
func (p *rulesPage) done() error {
	if p != nil && p.token != "" && !p.found {
		return apierror.New(apierror.BadData, "invalid parameter \"group_next_token\": no rule group of this token (were the rule groups changed?)")
	}
	return nil
}

// takePage removes group_limit and group_next_token from the parameters
// sent upstream (which would page before promgate filters) and returns
// the page they ask for (nil: none).
func takePage(vs url.Values) (*rulesPage, error) {
	limit, token := vs.Get("group_limit"), vs.Get("group_next_token")
	vs.Del("group_limit")
	vs.Del("group_next_token")
	if limit == "" {
		if token != "" {
			return nil, apierror.New(apierror.BadData, "invalid parameter \"group_next_token\": group_limit must be given to page rule groups")
		}
		return nil, nil
	}
	n, err := strconv.ParseInt(limit, 10, 32)
	if err != nil || n <= 0 {
		return nil, apierror.New(apierror.BadData, "invalid parameter \"group_limit\": %q is not a number greater than 0", limit)
	}
	return &rulesPage{limit: int(n), token: token}, nil
}

// rules serves /api/v1/rules, paged after filtering when asked.
func (a *API) rules(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	page, err := takePage(vs)
	if err != nil {
		return err
	}
	if err := a.narrowRules(r, vs, enf); err != nil {
		return err
	}
	allow := a.alertAllow(r, enf)
	return a.filtered(w, r, path, vs, func(out, b []byte) ([]byte, int, error) {
		return filterRulesData(out, b, allow, page)
	})
}
