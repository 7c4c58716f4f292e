package server

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/promgate/promgate/internal/config"
)

// manyUsersConfig is a configuration of users users, each with a
// basic-auth entry (one hash for all) and a policy of its own over one of
// four tenants: what a gateway in front of many tenants loads.
func manyUsersConfig(users int) string {
	const hash = "$2a$10$Ywu8sS1pXH4.TkmzT2j2XObOgU1DZ5ofp6bIzUXPntW9yb0Hb0Wfi"
	var b strings.Builder
	b.WriteString("upstreams:\n  prometheus:\n    url: http://127.0.0.1:9090\nauthentication:\n  basic_auth_users:\n")
	for i := range users {
		fmt.Fprintf(&b, "    u%d: %s\n", i, hash)
	}
	b.WriteString("  trusted_header:\n    name: X-User\n    trusted_sources: [127.0.0.1/32]\npolicies:\n")
	for i := range users {
		fmt.Fprintf(&b, "  - name: user-%d\n    subjects: [\"user:u%d\"]\n    selectors: ['{tenant=\"t%d\"}']\n", i, i, i%4)
	}
	return b.String()
}

// heldHeap is the heap memory the process holds from the operating system
// (what its RSS shows), and then, after a collection, the live heap.
func heldHeap() (held, live int64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	held = int64(m.HeapSys - m.HeapReleased)
	runtime.GC()
	runtime.ReadMemStats(&m)
	return held, int64(m.HeapAlloc)
}

// loadAndBuild loads a configuration of users users from a file and builds
// its state, as promgate does at start, and returns the heap held then.
func loadAndBuild(t *testing.T, users int) (held, live int64, st *State) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "promgate.yml")
	if err := os.WriteFile(file, []byte(manyUsersConfig(users)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = Build(cfg, BuildOptions{}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	held, live = heldHeap()
	return held, live, st
}

// TestHeapPerConfiguredUser bounds the memory a configured user (its
// basic-auth entry and its policy) costs once the configuration is loaded
// and built: the slope between 1,000 and 10,000 users of the heap the
// process holds from the system, which is what its RSS shows. Loading
// parses the YAML twice into trees of nodes many times the size of what is
// kept; without handing that memory back, a user cost about 7 KiB of RSS.
func TestHeapPerConfiguredUser(t *testing.T) {
	const small, large = 1000, 10000
	debug.FreeOSMemory()
	held0, live0, st0 := loadAndBuild(t, small)
	st0.Close()
	st0 = nil
	debug.FreeOSMemory()
	held1, live1, st1 := loadAndBuild(t, large)
	defer st1.Close()
	perHeld := float64(held1-held0) / (large - small)
	perLive := float64(live1-live0) / (large - small)
	t.Logf("per configured user: %.0f B held from the system, %.0f B live", perHeld, perLive)
	if perHeld > 3072 {
		t.Errorf("a configured user holds %.0f B of heap from the system; want at most 3 KiB", perHeld)
	}
	if perLive > 768 {
		t.Errorf("a configured user keeps %.0f B of live heap; want at most 768 B", perLive)
	}
	runtime.KeepAlive(st1)
}
