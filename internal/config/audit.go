package config

import (
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// Audit configures the audit log: one JSON line per request. Absent, no
// audit log is written.
type Audit struct {
	// Destination is "stderr" (the default) or a file path, relative to
	// the configuration file's directory; the file is reopened on SIGUSR1.
	Destination string `yaml:"destination"`
	// Requests is "all" (the default) or "denied": only the requests
	// promgate refused.
	Requests string `yaml:"requests"`
}

// Values of the audit section.
const (
	AuditStderr         = "stderr"
	AuditRequestsAll    = "all"
	AuditRequestsDenied = "denied"
)

func (v *validator) audit(a *Audit, key, n *yaml.Node) {
	if a == nil {
		return
	}
	if a.Destination == "" {
		a.Destination = AuditStderr
	}
	switch a.Requests {
	case "":
		a.Requests = AuditRequestsAll
	case AuditRequestsAll, AuditRequestsDenied:
	default:
		v.errorf(lineOf(field(n, "requests"), key, n), "audit.requests: %q is not one of all, denied", a.Requests)
	}
}

// auditDirectory makes a relative audit file relative to dir.
func (a *Audit) auditDirectory(dir string) {
	if a != nil && a.Destination != AuditStderr && a.Destination != "" && !filepath.IsAbs(a.Destination) {
		a.Destination = filepath.Join(dir, a.Destination)
	}
}
