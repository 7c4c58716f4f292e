package alertmanager

import "slices"

// route is a node of Alertmanager's routing tree, as far as the choice of
// receivers goes (grouping, timing and time intervals do not change which
// receivers an alert can reach).
type route struct {
	Receiver string            `yaml:"receiver"`
	Match    map[string]string `yaml:"match"`
	MatchRE  map[string]string `yaml:"match_re"`
	Matchers []string          `yaml:"matchers"`
	Continue bool              `yaml:"continue"`
	Routes   []*route          `yaml:"routes"`

	terms []term
}

func (r *route) compile(parent string) error {
	if r.Receiver == "" {
		r.Receiver = parent
	}
	ms, err := configMatchers("route", r.Match, r.MatchRE, r.Matchers)
	if err != nil {
		return err
	}
	r.terms = amTerms(ms)
	for _, c := range r.Routes {
		if err := c.compile(r.Receiver); err != nil {
			return err
		}
	}
	return nil
}

// Receivers returns the receivers that Alertmanager's routing tree can send
// alerts the policy allows to.
//
// An alert goes down the tree as Alertmanager routes it: into the first
// child whose matchers it satisfies, and on to the next ones after a child
// with continue; a node no child takes it from uses the node's receiver.
// For each selector, a child is skipped when its matchers contradict the
// selector's and its parents' (no alert of the tenant can take it), and
// counts as taking every alert when the selector and parents imply its
// matchers. Between the two the answer is "maybe", and the receiver is
// listed: the list can hold a receiver the tenant's alerts never reach in
// practice, never miss one they can.
func (e *Enforcer) Receivers(c *Config) map[string]bool {
	out := map[string]bool{}
	for _, sel := range e.terms {
		// The root route matches every alert.
		reach(c.route, sel, out)
	}
	return out
}

func reach(r *route, ctx []term, out map[string]bool) {
	taken := false
	for _, c := range r.Routes {
		cctx := append(slices.Clip(ctx), c.terms...)
		if contradicts(cctx) {
			continue
		}
		reach(c, cctx, out)
		if impliesAll(ctx, c.terms) {
			taken = true
			if !c.Continue {
				break
			}
		}
	}
	if !taken {
		out[r.Receiver] = true
	}
}
