package main

import (
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// The version is set at link time (make dist: -X
// github.com/prometheus/common/version.Version=...), as Prometheus does.
// A build without it (go build, go install) takes the module version from
// the build information; the revision and Go version come from there
// always (github.com/prometheus/common/version reads them).
func init() {
	if version.Version != "" {
		return
	}
	version.Version = "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version.Version = bi.Main.Version
	}
}
