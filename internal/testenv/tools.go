package testenv

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
)

// UpstreamsDirEnv names a directory holding the current generation of the
// servers (prometheus, promtool, alertmanager, amtool, thanos from
// scripts/build-thanos.sh and victoria-metrics, which only this generation
// has), as
// scripts/build-upstreams.sh prints it. Unset, the tools are Debian's
// packages found in PATH: the oldest generation promgate supports.
const UpstreamsDirEnv = "PROMGATE_UPSTREAMS_DIR"

// debianNames are the names Debian's packages give the servers.
var debianNames = map[string]string{"alertmanager": "prometheus-alertmanager"}

// Tool returns the path of one of the servers' executables ("prometheus",
// "promtool", "alertmanager", "amtool", "thanos" or "victoria-metrics";
// Debian's "prometheus-alertmanager" is accepted too) of the generation under
// test; any other name is looked up in PATH.
func Tool(name string) (string, error) {
	if name == "prometheus-alertmanager" {
		name = "alertmanager"
	}
	switch name {
	case "prometheus", "promtool", "alertmanager", "amtool", "thanos", "victoria-metrics":
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
// A server built with go install (scripts/build-upstreams.sh) prints an
// empty version; its Go module version says it instead (moduleVersion).
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
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			return Version{}, fmt.Errorf("%s --version: no version in %q, and no build info: %v", bin, out, err)
		}
		v, ok := moduleVersion(info.Main.Path, info.Main.Version)
		if !ok {
			return Version{}, fmt.Errorf("%s --version: no version in %q, nor in its module %s@%s", bin, out, info.Main.Path, info.Main.Version)
		}
		versions[bin] = v
		return v, nil
	}
	maj, _ := strconv.Atoi(string(m[1]))
	min, _ := strconv.Atoi(string(m[2]))
	versions[bin] = Version{maj, min}
	return versions[bin], nil
}

var moduleVersionRE = regexp.MustCompile(`^v(\d+)\.(\d+)\.\d+`)

// moduleVersion maps a server's Go module version to its release:
// Prometheus' module is tagged v0.MMM.P for 3.MM.P (MMM >= 300) and v0.MM.P
// for 2.MM.P; Alertmanager's module version is its release.
func moduleVersion(path, version string) (Version, bool) {
	m := moduleVersionRE.FindStringSubmatch(version)
	if m == nil {
		return Version{}, false
	}
	maj, _ := strconv.Atoi(m[1])
	min, _ := strconv.Atoi(m[2])
	switch path {
	case "github.com/prometheus/prometheus":
		if maj != 0 {
			return Version{}, false
		}
		if min >= 300 {
			return Version{3, min - 300}, true
		}
		return Version{2, min}, true
	case "github.com/prometheus/alertmanager":
		return Version{maj, min}, true
	}
	return Version{}, false
}
