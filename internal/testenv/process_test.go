package testenv

import "testing"

// Side-by-side servers must not be handed one port: the kernel reissues
// a port it has just offered, often within a hundred probes, unless
// FreePort remembers.
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice (call %d)", port, i+1)
		}
		seen[port] = true
	}
}
