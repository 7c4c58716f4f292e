package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModuleVersion(t *testing.T) {
	for _, tc := range []struct {
		path, version string
		want          Version
		ok            bool
	}{
		{"github.com/prometheus/prometheus", "v0.316.0", Version{3, 16}, true},
		{"github.com/prometheus/prometheus", "v0.300.1", Version{3, 0}, true},
		{"github.com/prometheus/prometheus", "v0.54.1", Version{2, 54}, true},
		{"github.com/prometheus/alertmanager", "v0.28.1", Version{0, 28}, true},
		{"github.com/prometheus/alertmanager", "(devel)", Version{}, false},
		{"github.com/prometheus/prometheus", "v2.42.0+incompatible", Version{}, false},
		{"example.com/other", "v1.2.3", Version{}, false},
	} {
		got, ok := moduleVersion(tc.path, tc.version)
		if got != tc.want || ok != tc.ok {
			t.Errorf("moduleVersion(%s, %s) = %v %v, want %v %v", tc.path, tc.version, got, ok, tc.want, tc.ok)
		}
	}
}

func TestToolVictoriaMetrics(t *testing.T) {
	// victoria-metrics is one of the current generation's servers: with
	// PROMGATE_UPSTREAMS_DIR set it is looked up there only.
	dir := t.TempDir()
	t.Setenv(UpstreamsDirEnv, dir)
	if p, err := Tool("victoria-metrics"); err == nil {
		t.Fatalf("Tool found %s in an empty upstreams directory", p)
	}
	want := filepath.Join(dir, "victoria-metrics")
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := Tool("victoria-metrics"); err != nil || p != want {
		t.Fatalf("Tool = %q, %v, want %q", p, err, want)
	}
}
