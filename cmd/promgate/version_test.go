package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, &errb)
	}
	for _, w := range []string{"promgate, version ", "go version:       " + runtime.Version(), "platform:         " + runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("no %q in %q", w, &out)
		}
	}
}

// The version and revision given to the linker, as make dist gives them.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "promgate")
	const pkg = "github.com/prometheus/common/version"
	build := exec.Command("go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-X "+pkg+".Version=9.8.7-test -X "+pkg+".Revision=0123abc", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "promgate, version 9.8.7-test (branch: ") || !strings.Contains(string(out), "revision: 0123abc)") {
		t.Errorf("--version printed %q", out)
	}
}
