package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
)

// UpstreamsDirEnv names a directory holding the current generation of the
// servers (prometheus, promtool, alertmanager, amtool), as
// scripts/build-upstreams.sh prints it. Unset, the tools are Debian's
// packages found in PATH: the oldest generation promgate supports.
const UpstreamsDirEnv = "PROMGATE_UPSTREAMS_DIR"

// debianNames are the names Debian's packages give the servers.
var debianNames = map[string]string{"alertmanager": "prometheus-alertmanager"}

// Tool returns the path of one of the servers' executables ("prometheus",
// "promtool", "alertmanager" or "amtool"; Debian's "prometheus-alertmanager"
// is accepted too) of the generation under test; any other name is looked
// up in PATH.
func Tool(name string) (string, error) {
	if name == "prometheus-alertmanager" {
		name = "alertmanager"
	}
	switch name {
	case "prometheus", "promtool", "alertmanager", "amtool":
		if dir := os.Getenv(UpstreamsDirEnv); dir != "" {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s: %w (run scripts/build-upstreams.sh)", p, err)
			}
			return p, nil
		}
		if d, ok := debianNames[name]; ok {
			name = d
		}
	}
	return exec.LookPath(name)
}

// resolve turns a bare server name into the generation's executable; a
// path, or a name Tool cannot find, is left for exec to report.
func resolve(bin string) string {
	if filepath.Base(bin) != bin {
		return bin
	}
	if p, err := Tool(bin); err == nil {
		return p
	}
	return bin
}

// Version is a server's version, major.minor.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

var (
	versionsMu sync.Mutex
	versions   = map[string]Version{}
	versionRE  = regexp.MustCompile(`version (\d+)\.(\d+)\.`)
)

// VersionOf runs bin --version (once per binary) and returns its version.
func VersionOf(bin string) (Version, error) {
	versionsMu.Lock()
	defer versionsMu.Unlock()
	if v, ok := versions[bin]; ok {
		return v, nil
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %v\n%s", bin, err, out)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("%s --version: no version in %q", bin, out)
	}
	maj, _ := strconv.Atoi(string(m[1]))
	min, _ := strconv.Atoi(string(m[2]))
	versions[bin] = Version{maj, min}
	return versions[bin], nil
}
