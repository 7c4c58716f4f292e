package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// promgateBin is the promgate binary built by TestMain for the e2e tests;
// promgateBuildErr says why there is none.
var (
	promgateBin      string
	promgateBuildErr error
)

// TestMain builds promgate once for every e2e test of the package. In -short
// mode nothing is built: the e2e tests skip themselves.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || directMode() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "promgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	promgateBin = filepath.Join(dir, "promgate")
	cmd := exec.Command(goTool(), "build", "-o", promgateBin, "github.com/promgate/promgate/cmd/promgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		promgateBuildErr = fmt.Errorf("go build ./cmd/promgate: %v\n%s", err, out)
		promgateBin = ""
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool finds the go command that runs this test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// directMode reports whether PROMGATE_E2E_DIRECT is set: the oracle test then
// runs without promgate. With any value but "passthrough", each policy's
// oracle is compared with itself (the shared Prometheus for allow_all): this
// validates the data, the servers, the corpus and the comparison while
// promgate is not usable. With "passthrough", the shared Prometheus stands in
// for promgate, as a gateway that enforces nothing would: every restricted
// policy must then fail, which shows that the corpus discriminates.
func directMode() bool { return os.Getenv("PROMGATE_E2E_DIRECT") != "" }

// passthroughMode reports whether PROMGATE_E2E_DIRECT=passthrough.
func passthroughMode() bool { return os.Getenv("PROMGATE_E2E_DIRECT") == "passthrough" }

// requirePromgate returns the promgate binary, failing the test when it could
// not be built.
func requirePromgate(t testing.TB) string {
	t.Helper()
	if promgateBuildErr != nil {
		t.Fatalf("promgate binary not available: %v", promgateBuildErr)
	}
	if promgateBin == "" {
		t.Fatal("promgate binary not built (TestMain did not run the build)")
	}
	return promgateBin
}

// skipIfShort skips end-to-end tests in -short mode.
func skipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (needs prometheus, promtool and a promgate build)")
	}
}
