package promql

// ID names the Enforcer among all those of the process: no two share one,
// and a policy rebuilt (on reload) gets a new one. Caches of decisions
// made under a policy are keyed by it. A nil Enforcer's is 0, which no
// Enforcer has.
func (e *Enforcer) ID() uint64 {
	if e == nil {
		return 0
	}
	return e.id
}
