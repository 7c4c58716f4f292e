package config

import "go.yaml.in/yaml/v3"

// Metrics configures promgate's own metrics beyond the per-policy ones,
// which are always on (their label values are the configuration's policy
// names, a bounded set).
type Metrics struct {
	// PerUser adds series labelled by user name. Users are not bounded by
	// the configuration (a proxy's header, a certificate authority or an
	// identity provider names them), hence the opt-in and the cap.
	PerUser bool `yaml:"per_user"`
	// MaxUsers caps the users with series of their own; later users are
	// counted as "other". Default DefaultMaxMetricsUsers.
	MaxUsers int `yaml:"max_users"`
}

// Bounds of metrics.max_users.
const (
	DefaultMaxMetricsUsers = 100
	maxMetricsUsers        = 100000
)

// metrics checks the metrics section and fills in its default.
func (v *validator) metrics(m *Metrics, key, n *yaml.Node) {
	line := lineOf(field(n, "max_users"), key)
	switch {
	case m.MaxUsers < 0 || m.MaxUsers > maxMetricsUsers:
		v.errorf(line, "metrics.max_users must be between 1 and %d", maxMetricsUsers)
	case m.MaxUsers > 0 && !m.PerUser:
		v.errorf(line, "metrics.max_users needs metrics.per_user: true")
	case m.MaxUsers == 0:
		m.MaxUsers = DefaultMaxMetricsUsers
	}
}
