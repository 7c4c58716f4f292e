package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The Alertmanager tests run Debian's Alertmanager 0.25 with promgate in
// front, and drive it with amtool, with the API calls of the Alertmanager
// UI, and with a real Prometheus sending alerts. Alerts and silences are
// checked directly on Alertmanager too: what promgate refuses must leave it
// unchanged.

// amConfigYAML routes each team's alerts to its own receiver; an alert
// named ClusterDown (of no team) inhibits every warning.
const amConfigYAML = `route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  routes:
  - matchers: ['team="a"']
    receiver: team-a
  - matchers: ['team="b"']
    receiver: team-b
  - matchers: ['team="c"']
    receiver: team-c
inhibit_rules:
- source_matchers: ['alertname="ClusterDown"']
  target_matchers: ['severity="warning"']
receivers:
- name: default
- name: team-a
- name: team-b
- name: team-c
`

// amUsers are promgate's users in these tests, with their passwords.
// carol's policy has two selectors, so promgate cannot choose which to add
// to her silences.
var amUsers = map[string]string{"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "admin": "admin-pw"}

const amPolicies = `policies:
  - name: team-a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
  - name: team-b
    subjects: ["user:bob"]
    selectors: ['{team="b"}']
  - name: a-and-c
    subjects: ["user:carol"]
    selectors: ['{team="a"}', '{team="c"}']
  - name: admins
    subjects: ["user:admin"]
    allow_all: true
`

// amStack is an Alertmanager and a promgate in front of it.
type amStack struct {
	am, gate *server
	dir      string
}

func startAMStack(t *testing.T) *amStack {
	t.Helper()
	skipIfShort(t)
	bin := requirePromgate(t)
	amBin := requireTool(t, "prometheus-alertmanager")
	requireTool(t, "amtool")
	dir := t.TempDir()

	amCfg := filepath.Join(dir, "alertmanager.yml")
	amWriteFile(t, amCfg, amConfigYAML)
	am, err := startServer(t, "alertmanager", dir, amBin, func(addr string) []string {
		return []string{
			"--config.file=" + amCfg,
			"--storage.path=" + filepath.Join(dir, "am-data"),
			"--web.listen-address=" + addr,
			"--cluster.listen-address=", // no cluster: no gossip port
			"--log.level=warn",
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	var users strings.Builder
	for _, u := range slices.Sorted(maps.Keys(amUsers)) {
		h, err := bcrypt.GenerateFromPassword([]byte(amUsers[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "    %s: %s\n", u, h)
	}
	// promgate needs a Prometheus upstream; these tests never reach it.
	cfg := fmt.Sprintf("upstreams:\n  prometheus:\n    url: http://127.0.0.1:9\n  alertmanager:\n    url: %s\nauthentication:\n  basic_auth_users:\n%s%s",
		am.url, users.String(), amPolicies)
	cfgFile := filepath.Join(dir, "promgate.yml")
	amWriteFile(t, cfgFile, cfg)
	gate, err := startServer(t, "promgate-alertmanager", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &amStack{am: am, gate: gate, dir: dir}
	for u, p := range amUsers {
		amWriteFile(t, filepath.Join(dir, "amtool-"+u+".yml"), fmt.Sprintf("basic_auth:\n  username: %s\n  password: %s\n", u, p))
	}
	return s
}

func amWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// amtool runs amtool as user against promgate and returns its output.
func (s *amStack) amtool(t *testing.T, user string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{
		"--alertmanager.url=" + s.gate.url + "/alertmanager",
		"--http.config.file=" + filepath.Join(s.dir, "amtool-"+user+".yml"),
		"--timeout=20s",
	}, args...)
	cmd := exec.Command(requireTool(t, "amtool"), full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mustAmtool is amtool that must succeed.
func (s *amStack) mustAmtool(t *testing.T, user string, args ...string) string {
	t.Helper()
	out, err := s.amtool(t, user, args...)
	if err != nil {
		t.Fatalf("amtool %s as %s: %v\n%s", strings.Join(args, " "), user, err, out)
	}
	return out
}

// call sends a request through promgate as user, or directly to
// Alertmanager when user is "". body is JSON-encoded unless it is a string.
func (s *amStack) call(t *testing.T, user, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	base := s.am.url
	if user != "" {
		base = s.gate.url + "/alertmanager"
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, amUsers[user])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// amAlert is what the tests read of an alert.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
	Receivers   []struct{ Name string }
	Status      struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// amSilence is what the tests read of a silence.
type amSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	Comment string `json:"comment"`
	EndsAt  string `json:"endsAt"`
	Status  struct {
		State string `json:"state"`
	} `json:"status"`
}

// matchers renders a silence's matchers, sorted, in amtool's syntax.
func (s amSilence) matchers() string {
	var ms []string
	for _, m := range s.Matchers {
		op := "="
		switch {
		case m.IsRegex && (m.IsEqual == nil || *m.IsEqual):
			op = "=~"
		case m.IsRegex:
			op = "!~"
		case m.IsEqual != nil && !*m.IsEqual:
			op = "!="
		}
		ms = append(ms, m.Name+op+strconv.Quote(m.Value))
	}
	slices.Sort(ms)
	return strings.Join(ms, ",")
}

func amDecode[T any](t *testing.T, what string, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
	return v
}

// silences lists the silences on Alertmanager itself, by ID.
func (s *amStack) silences(t *testing.T) map[string]amSilence {
	t.Helper()
	code, body := s.call(t, "", "GET", "/api/v2/silences", nil)
	if code != 200 {
		t.Fatalf("direct silences: %d %s", code, body)
	}
	out := map[string]amSilence{}
	for _, sil := range amDecode[[]amSilence](t, "silences", body) {
		out[sil.ID] = sil
	}
	return out
}

// alertNames lists the alerts on Alertmanager itself as "name/team".
func (s *amStack) alertNames(t *testing.T) []string {
	t.Helper()
	code, body := s.call(t, "", "GET", "/api/v2/alerts", nil)
	if code != 200 {
		t.Fatalf("direct alerts: %d %s", code, body)
	}
	return amAlertKeys(amDecode[[]amAlert](t, "alerts", body))
}

func amAlertKeys(as []amAlert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Labels["alertname"]+"/"+a.Labels["team"])
	}
	slices.Sort(out)
	return out
}

// teamAlerts are posted directly to Alertmanager by the tests: two of team
// a (one a warning, which ClusterDown inhibits), one each of b and c, one
// of no team.
var teamAlerts = []map[string]string{
	{"alertname": "HighLatency", "team": "a", "severity": "page"},
	{"alertname": "DiskFull", "team": "a", "severity": "warning"},
	{"alertname": "HighLatency", "team": "b", "severity": "page"},
	{"alertname": "DiskFull", "team": "c", "severity": "page"},
	{"alertname": "Heartbeat"},
}

// postAlerts posts alerts directly to Alertmanager and waits until it lists
// them.
func (s *amStack) postAlerts(t *testing.T, alerts ...map[string]string) {
	t.Helper()
	var body []map[string]any
	for _, ls := range alerts {
		body = append(body, map[string]any{"labels": ls, "annotations": map[string]string{"summary": "test"}})
	}
	if code, b := s.call(t, "", "POST", "/api/v2/alerts", body); code != 200 {
		t.Fatalf("posting alerts: %d %s", code, b)
	}
	amEventually(t, 10*time.Second, "alerts listed", func() error {
		code, b := s.call(t, "", "GET", "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=false", nil)
		if code != 200 {
			return fmt.Errorf("%d %s", code, b)
		}
		have := map[string]bool{}
		for _, a := range amDecode[[]amAlert](t, "alerts", b) {
			have[amLabelsKey(a.Labels)] = true
		}
		for _, ls := range alerts {
			if !have[amLabelsKey(ls)] {
				return fmt.Errorf("%v not processed yet", ls)
			}
		}
		return nil
	})
}

func amLabelsKey(ls map[string]string) string {
	b, _ := json.Marshal(ls) // map keys are sorted
	return string(b)
}

func amEventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAlertmanagerAmtool drives promgate with amtool as three tenants and
// an admin: each sees and changes only their own alerts and silences.
func TestAlertmanagerAmtool(t *testing.T) {
	s := startAMStack(t)
	s.postAlerts(t, teamAlerts...)

	queryAlerts := func(user string, args ...string) []string {
		t.Helper()
		out := s.mustAmtool(t, user, append([]string{"alert", "query", "-o", "json"}, args...)...)
		return amAlertKeys(amDecode[[]amAlert](t, "amtool alert query", []byte(out)))
	}
	for _, tc := range []struct {
		user string
		args []string
		want []string
	}{
		{"alice", nil, []string{"DiskFull/a", "HighLatency/a"}},
		{"alice", []string{"alertname=HighLatency"}, []string{"HighLatency/a"}},
		{"alice", []string{"team=b"}, nil},
		{"bob", nil, []string{"HighLatency/b"}},
		{"carol", nil, []string{"DiskFull/a", "DiskFull/c", "HighLatency/a"}},
		{"admin", nil, []string{"DiskFull/a", "DiskFull/c", "Heartbeat/", "HighLatency/a", "HighLatency/b"}},
	} {
		if got := queryAlerts(tc.user, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("amtool alert query %v as %s: %v, want %v", tc.args, tc.user, got, tc.want)
		}
	}
	// The invalid filter gets Alertmanager's own message. It is not the
	// first argument: amtool 0.28 reads a first argument that its parser
	// refuses as the name of an alert (alertname="alertname=~\"(\"").
	if out, err := s.amtool(t, "alice", "alert", "query", "alertname=HighLatency", `instance=~"("`); err == nil || !strings.Contains(out, "400") || !strings.Contains(out, "error parsing regexp") {
		t.Errorf("invalid filter: %v %s", err, out)
	}

	// alice silences HighLatency: promgate adds team="a".
	out := s.mustAmtool(t, "alice", "silence", "add", "alertname=HighLatency", "--comment=alice's", "--duration=1h", "--author=alice")
	aliceID := strings.TrimSpace(out)
	sils := s.silences(t)
	if got := sils[aliceID].matchers(); got != `alertname="HighLatency",team="a"` {
		t.Fatalf("alice's silence on Alertmanager: %q (all: %v)", got, sils)
	}
	// bob's HighLatency is not silenced by it.
	if got := queryAlerts("bob"); !slices.Equal(got, []string{"HighLatency/b"}) {
		t.Errorf("bob's active alerts after alice's silence: %v", got)
	}
	if got := queryAlerts("alice"); !slices.Equal(got, []string{"DiskFull/a"}) {
		t.Errorf("alice's active alerts after her silence: %v", got)
	}

	// A silence of another team's alerts is refused, and not created.
	before := s.silences(t)
	if out, err := s.amtool(t, "alice", "silence", "add", "team=b", "alertname=HighLatency", "--comment=x", "--duration=1h"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("alice silencing team b: %v %s", err, out)
	}
	// carol must say which of her teams.
	if out, err := s.amtool(t, "carol", "silence", "add", "alertname=DiskFull", "--comment=x", "--duration=1h"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("carol silencing without a team: %v %s", err, out)
	}
	if got := s.silences(t); len(got) != len(before) {
		t.Errorf("refused silences were created: %v", got)
	}
	out = s.mustAmtool(t, "carol", "silence", "add", "alertname=DiskFull", "team=c", "--comment=carol's", "--duration=1h")
	carolID := strings.TrimSpace(out)

	// Each sees their own silences only.
	querySilences := func(user string, args ...string) []string {
		t.Helper()
		out := s.mustAmtool(t, user, append([]string{"silence", "query", "-o", "json"}, args...)...)
		var ids []string
		for _, sil := range amDecode[[]amSilence](t, "amtool silence query", []byte(out)) {
			ids = append(ids, sil.ID)
		}
		slices.Sort(ids)
		return ids
	}
	both := []string{aliceID, carolID}
	slices.Sort(both)
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"alice", []string{aliceID}},
		{"bob", nil},
		{"carol", both}, // alice's team="a" silence is one of carol's teams'
		{"admin", both},
	} {
		if got := querySilences(tc.user); !slices.Equal(got, tc.want) {
			t.Errorf("amtool silence query as %s: %v, want %v", tc.user, got, tc.want)
		}
	}
	if got := querySilences("alice", "alertname=HighLatency"); !slices.Equal(got, []string{aliceID}) {
		t.Errorf("amtool silence query alertname=HighLatency as alice: %v", got)
	}

	// bob can neither expire nor update alice's silence.
	if out, err := s.amtool(t, "bob", "silence", "expire", aliceID); err == nil || !strings.Contains(out, "403") {
		t.Errorf("bob expiring alice's silence: %v %s", err, out)
	}
	if out, err := s.amtool(t, "bob", "silence", "update", aliceID, "--duration=2h"); err == nil || !strings.Contains(out, "getSilenceNotFound") {
		t.Errorf("bob updating alice's silence: %v %s", err, out)
	}
	if got := s.silences(t)[aliceID]; got.Status.State != "active" || got.EndsAt != sils[aliceID].EndsAt {
		t.Errorf("alice's silence changed by bob: %+v", got)
	}

	// alice updates her own: same matchers, so Alertmanager keeps the ID.
	s.mustAmtool(t, "alice", "silence", "update", aliceID, "--comment=updated by alice")
	if got := s.silences(t)[aliceID]; got.Comment != "updated by alice" {
		t.Errorf("alice's update not applied: %+v", got)
	}

	// Import: the silence without a team gets alice's, the one of team b
	// is refused; amtool reports it.
	imp := filepath.Join(s.dir, "import.json")
	now := time.Now().UTC()
	amWriteFile(t, imp, fmt.Sprintf(`[
{"matchers":[{"name":"alertname","value":"Imported","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"alice","comment":"imported"},
{"matchers":[{"name":"team","value":"b","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"alice","comment":"imported b"}
]`, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
	before = s.silences(t)
	// (amtool 0.25 reports the refusal but may still exit 0.)
	if out, _ := s.amtool(t, "alice", "silence", "import", imp); !strings.Contains(out, "Error adding silence") || !strings.Contains(out, "status 403") {
		t.Errorf("import: %s", out)
	}
	var imported []string
	for id, sil := range s.silences(t) {
		if _, ok := before[id]; !ok {
			imported = append(imported, sil.matchers())
		}
	}
	if !slices.Equal(imported, []string{`alertname="Imported",team="a"`}) {
		t.Errorf("imported silences: %v", imported)
	}

	// alice expires her silence.
	s.mustAmtool(t, "alice", "silence", "expire", aliceID)
	if got := s.silences(t)[aliceID]; got.Status.State != "expired" {
		t.Errorf("alice's silence after expire: %+v", got)
	}
	if got := s.silences(t)[carolID]; got.Status.State != "active" {
		t.Errorf("carol's silence after alice's expire: %+v", got)
	}
}

// TestAlertmanagerUIReplay replays, through promgate, the API calls the
// Alertmanager UI makes, and checks what a tenant sees at each step.
// (Debian's package has no UI to drive in a browser.)
func TestAlertmanagerUIReplay(t *testing.T) {
	s := startAMStack(t)
	s.postAlerts(t, teamAlerts...)

	// Static pages pass (Debian's placeholder page).
	if code, body := s.call(t, "alice", "GET", "/", nil); code != 200 || !strings.Contains(string(body), "Alertmanager") {
		t.Errorf("GET /: %d %.200s", code, body)
	}
	if code, _ := s.call(t, "alice", "GET", "/favicon.ico", nil); code != 200 {
		t.Errorf("GET /favicon.ico: %d", code)
	}

	// Status page: version and cluster status, no configuration.
	code, body := s.call(t, "alice", "GET", "/api/v2/status", nil)
	if code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	st := amDecode[struct {
		Config      struct{ Original *string }
		VersionInfo struct{ Version string }
		Cluster     struct {
			Status string
			Peers  []any
		}
		Uptime string
	}](t, "status", body)
	if st.Config.Original == nil || *st.Config.Original != "" || st.Cluster.Status != "disabled" || st.Uptime == "" {
		t.Errorf("status as alice: %s", body)
	}
	// The build passes as Alertmanager gives it (a server built with go
	// install has an empty version).
	resp, err := http.Get(s.am.url + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var gotInfo, wantInfo struct{ VersionInfo json.RawMessage }
	if json.Unmarshal(body, &gotInfo) != nil || json.Unmarshal(direct, &wantInfo) != nil || string(gotInfo.VersionInfo) != string(wantInfo.VersionInfo) {
		t.Errorf("versionInfo through promgate %s, Alertmanager's %s", gotInfo.VersionInfo, wantInfo.VersionInfo)
	}
	if strings.Contains(string(body), "team-b") {
		t.Errorf("status leaks other teams' receivers: %s", body)
	}

	// Receivers: only where the routing tree sends the tenant's alerts.
	for user, want := range map[string][]string{
		"alice": {"team-a"}, "bob": {"team-b"}, "carol": {"team-a", "team-c"},
		"admin": {"default", "team-a", "team-b", "team-c"},
	} {
		code, body := s.call(t, user, "GET", "/api/v2/receivers", nil)
		var names []string
		for _, r := range amDecode[[]struct{ Name string }](t, "receivers", body) {
			names = append(names, r.Name)
		}
		slices.Sort(names)
		if code != 200 || !slices.Equal(names, want) {
			t.Errorf("receivers as %s: %d %v, want %v", user, code, names, want)
		}
	}

	// The alert list, as the UI asks for it.
	groups := func(user, query string) map[string][]string {
		t.Helper()
		code, body := s.call(t, user, "GET", "/api/v2/alerts/groups?"+query, nil)
		if code != 200 {
			t.Fatalf("groups as %s: %d %s", user, code, body)
		}
		out := map[string][]string{}
		for _, g := range amDecode[[]struct {
			Labels   map[string]string
			Receiver struct{ Name string }
			Alerts   []amAlert
		}](t, "groups", body) {
			key := g.Receiver.Name + amLabelsKey(g.Labels)
			out[key] = amAlertKeys(g.Alerts)
		}
		return out
	}
	uiQuery := "silenced=false&inhibited=false&active=true"
	want := map[string][]string{
		`team-a{"alertname":"DiskFull"}`:    {"DiskFull/a"},
		`team-a{"alertname":"HighLatency"}`: {"HighLatency/a"},
	}
	if got := groups("alice", uiQuery); !amEqual(got, want) {
		t.Errorf("alice's groups: %v, want %v", got, want)
	}
	if got := groups("bob", uiQuery+"&filter=alertname%3D%22HighLatency%22"); !amEqual(got, map[string][]string{`team-b{"alertname":"HighLatency"}`: {"HighLatency/b"}}) {
		t.Errorf("bob's groups: %v", got)
	}
	if got := groups("bob", uiQuery+"&filter=alertname%3D%22DiskFull%22"); len(got) != 0 {
		t.Errorf("bob's DiskFull groups, which are all other teams': %v", got)
	}

	// No silences yet for alice.
	if code, body := s.call(t, "alice", "GET", "/api/v2/silences", nil); code != 200 || string(body) != "[]" {
		t.Errorf("alice's silences: %d %s", code, body)
	}

	// "Silence" on alice's DiskFull alert: the UI's form posts the alert's
	// labels as matchers.
	now := time.Now().UTC()
	silence := map[string]any{
		"matchers": []map[string]any{
			{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true},
			{"name": "severity", "value": "warning", "isRegex": false, "isEqual": true},
			{"name": "team", "value": "a", "isRegex": false, "isEqual": true},
		},
		"startsAt": now.Format("2006-01-02T15:04:05.000Z"), "endsAt": now.Add(2 * time.Hour).Format("2006-01-02T15:04:05.000Z"),
		"createdBy": "alice", "comment": "from the UI",
	}
	code, body = s.call(t, "alice", "POST", "/api/v2/silences", silence)
	if code != 200 {
		t.Fatalf("UI silence: %d %s", code, body)
	}
	id := amDecode[struct{ SilenceID string }](t, "post silence", body).SilenceID

	// The silence page: alice sees it, bob does not know it exists.
	if code, body := s.call(t, "alice", "GET", "/api/v2/silence/"+id, nil); code != 200 || !strings.Contains(string(body), id) {
		t.Errorf("alice's silence page: %d %s", code, body)
	}
	if code, body := s.call(t, "bob", "GET", "/api/v2/silence/"+id, nil); code != 404 || strings.Contains(string(body), id) {
		t.Errorf("bob on alice's silence page: %d %s", code, body)
	}
	// The silence page lists the alerts it silences.
	code, body = s.call(t, "alice", "GET", "/api/v2/alerts?silenced=true&active=false&inhibited=false&filter=alertname%3D%22DiskFull%22", nil)
	silenced := amDecode[[]amAlert](t, "silenced alerts", body)
	if code != 200 || len(silenced) != 1 || !slices.Equal(silenced[0].Status.SilencedBy, []string{id}) {
		t.Errorf("alice's silenced alerts: %d %s", code, body)
	}

	// An admin's silence and an inhibition by an alert of no team: alice
	// sees that her alert is suppressed, not by what.
	adminSil := amWith(silence, "matchers", []map[string]any{{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}})
	code, body = s.call(t, "admin", "POST", "/api/v2/silences", adminSil)
	if code != 200 {
		t.Fatalf("admin silence: %d %s", code, body)
	}
	adminID := amDecode[struct{ SilenceID string }](t, "post silence", body).SilenceID
	s.postAlerts(t, map[string]string{"alertname": "ClusterDown"})
	amEventually(t, 10*time.Second, "alice's DiskFull suppressed by all three", func() error {
		code, body := s.call(t, "admin", "GET", "/api/v2/alerts?filter=alertname%3D%22DiskFull%22&filter=team%3D%22a%22", nil)
		as := amDecode[[]amAlert](t, "alerts", body)
		if code != 200 || len(as) != 1 || len(as[0].Status.SilencedBy) != 2 || len(as[0].Status.InhibitedBy) != 1 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	for _, path := range []string{"/api/v2/alerts?filter=alertname%3D%22DiskFull%22", "/api/v2/alerts/groups?silenced=true&inhibited=true"} {
		code, body = s.call(t, "alice", "GET", path, nil)
		if code != 200 || !strings.Contains(string(body), id) || strings.Contains(string(body), adminID) ||
			strings.Contains(string(body), "ClusterDown") || !strings.Contains(string(body), `"inhibitedBy":[]`) {
			t.Errorf("alice's %s: %d %s", path, code, body)
		}
	}
	if code, body := s.call(t, "alice", "GET", "/api/v2/silence/"+adminID, nil); code != 404 {
		t.Errorf("alice reading the admin's silence: %d %s", code, body)
	}

	// Expire: bob cannot, alice can.
	if code, body := s.call(t, "bob", "DELETE", "/api/v2/silence/"+id, nil); code != 403 || !strings.Contains(string(body), "does not exist or is not yours") {
		t.Errorf("bob expiring alice's silence: %d %s", code, body)
	}
	if got := s.silences(t)[id]; got.Status.State != "active" {
		t.Errorf("alice's silence after bob's DELETE: %+v", got)
	}
	if code, body := s.call(t, "alice", "DELETE", "/api/v2/silence/"+id, nil); code != 200 {
		t.Errorf("alice expiring her silence: %d %s", code, body)
	}
	code, body = s.call(t, "alice", "GET", "/api/v2/silence/"+id, nil)
	if code != 200 || amDecode[amSilence](t, "silence", body).Status.State != "expired" {
		t.Errorf("alice's silence after expiring: %d %s", code, body)
	}
	if got := s.silences(t)[adminID]; got.Status.State != "active" {
		t.Errorf("the admin's silence after alice's DELETE: %+v", got)
	}
}

// amWith returns a copy of m with key set to v.
func amWith(m map[string]any, key string, v any) map[string]any {
	out := map[string]any{}
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

func amEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestAlertmanagerBadInput sends malformed and unauthorised requests as
// alice: each gets a clear error in Alertmanager's format, and
// Alertmanager's alerts and silences stay as they were.
func TestAlertmanagerBadInput(t *testing.T) {
	s := startAMStack(t)
	s.postAlerts(t, teamAlerts...)
	now := time.Now().UTC()
	times := fmt.Sprintf(`"startsAt":%q,"endsAt":%q,"createdBy":"alice","comment":"c"`, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	// bob's silence, whose ID alice will try to use.
	code, body := s.call(t, "bob", "POST", "/api/v2/silences", `{"matchers":[{"name":"team","value":"b","isRegex":false}],`+times+`}`)
	if code != 200 {
		t.Fatalf("bob's silence: %d %s", code, body)
	}
	bobID := amDecode[struct{ SilenceID string }](t, "post silence", body).SilenceID
	missing := "3e1f7a4f-2b0a-4c1e-9a0e-6b5e5f0c1a11"

	silencesBefore := s.silences(t)
	alertsBefore := s.alertNames(t)

	// Requests Alertmanager itself refuses, sent to it directly: the
	// reference for the shape of promgate's own refusals of the same kind.
	silenceRefused := &amRequest{"POST", "/api/v2/silences", `{"matchers":[{"name":"alertname","value":"(","isRegex":true}],` + times + `}`, ""}
	updateRefused := &amRequest{"POST", "/api/v2/silences", `{"id":"` + missing + `","matchers":[{"name":"team","value":"a","isRegex":false}],` + times + `}`, ""}
	alertsRefused := &amRequest{"POST", "/api/v2/alerts", `[{"labels":{}}]`, ""}
	v1Refused := &amRequest{"GET", "/api/v1/alerts?filter=foo", "", ""}
	pathRefused := &amRequest{"GET", "/api/v2/nope", "", ""}

	// What differs from Alertmanager 0.27 on: API v1 is gone (410 with
	// {"status":"deprecated","error"}). Before 0.27: promgate reads filters
	// as 0.27+ does (UTF-8 parser first, classic fallback) and words a bad
	// one as 0.27+ does, where 0.25 says "bad matcher format".
	var v1Deviation, filterWording string
	if alertmanagerVersion(t).AtLeast(0, 27) {
		v1Deviation = "Alertmanager 0.27+ has no API v1 and answers 410 {status: deprecated}; promgate refuses it with 403 in API v1's error shape"
	} else {
		filterWording = "promgate parses filters as Alertmanager 0.27+ does (UTF-8 parser first) and words a bad one as 0.27+; 0.25's classic parser says bad matcher format"
	}

	for _, tc := range []struct {
		name, method, path, body string
		contentType              string
		wantStatus               int
		// wantBody is a substring of promgate's own message, for refusals
		// Alertmanager has no counterpart for (the policy's); empty where
		// Alertmanager refuses the same request and its answer is the
		// reference (am == nil).
		wantBody string
		// am is the equivalent request Alertmanager refuses, whose answer
		// must have the shape of promgate's (status class, Content-Type,
		// JSON shape); nil: the same request, whose answer promgate must
		// match exactly (status and body).
		am *amRequest
		// deviation, when set, says why the shape of promgate's answer
		// differs from Alertmanager's on purpose; the test checks that it
		// still does.
		deviation string
		// wording, when set, names a difference of message (the shape being
		// equal) that promgate should remove; the test fails once it is
		// gone, so that the entry goes too.
		wording string
	}{
		{name: "malformed JSON", method: "POST", path: "/api/v2/silences", body: `{"matchers":[`, wantStatus: 400,
			wording: "encoding/json's error (unexpected end of JSON input) where Alertmanager's streaming decoder says unexpected EOF"},
		{name: "no matchers", method: "POST", path: "/api/v2/silences", body: `{"matchers":[],` + times + `}`, wantStatus: 422},
		{name: "matcher without a name", method: "POST", path: "/api/v2/silences", body: `{"matchers":[{"value":"x","isRegex":false}],` + times + `}`, wantStatus: 422},
		{name: "invalid regex", method: "POST", path: "/api/v2/silences", body: `{"matchers":[{"name":"alertname","value":"(","isRegex":true}],` + times + `}`, wantStatus: 400,
			wording: "the regular expression is quoted anchored (^(?:()$) where Alertmanager 0.25 quotes it as written"},
		{name: "contradicting the policy", method: "POST", path: "/api/v2/silences", body: `{"matchers":[{"name":"team","value":"b","isRegex":false}],` + times + `}`, wantStatus: 403,
			wantBody: `silence matchers contradict the policy {team=\"a\"}`, am: silenceRefused},
		{name: "negated team", method: "POST", path: "/api/v2/silences", body: `{"matchers":[{"name":"team","value":"a","isRegex":false,"isEqual":false}],` + times + `}`, wantStatus: 403,
			wantBody: `contradict the policy`, am: silenceRefused},
		{name: "update of bob's silence", method: "POST", path: "/api/v2/silences", body: `{"id":"` + bobID + `","matchers":[{"name":"team","value":"a","isRegex":false}],` + times + `}`, wantStatus: 403,
			wantBody: "does not exist or is not yours", am: updateRefused},
		{name: "update of a missing silence", method: "POST", path: "/api/v2/silences", body: `{"id":"` + missing + `","matchers":[{"name":"team","value":"a","isRegex":false}],` + times + `}`, wantStatus: 403,
			wantBody: "does not exist or is not yours", am: updateRefused},
		{name: "silence as text", method: "POST", path: "/api/v2/silences", body: `{}`, contentType: "text/plain", wantStatus: 415},
		{name: "missing silence", method: "GET", path: "/api/v2/silence/" + missing, wantStatus: 404, wantBody: `"silence not found"`,
			deviation: "Alertmanager 0.25 answers a missing silence with an empty 404; promgate says so in the JSON string of its other refusals (an error always has a body)"},
		{name: "bob's silence", method: "GET", path: "/api/v2/silence/" + bobID, wantStatus: 404, wantBody: `"silence not found"`,
			am: &amRequest{"GET", "/api/v2/silence/" + missing, "", ""}, deviation: "as for a missing silence: someone else's is answered as missing"},
		{name: "ID not a UUID", method: "GET", path: "/api/v2/silence/nope", wantStatus: 422},
		{name: "expire a missing silence", method: "DELETE", path: "/api/v2/silence/" + missing, wantStatus: 403, wantBody: "does not exist or is not yours",
			am: &amRequest{"DELETE", "/api/v2/silence/" + missing, "", ""}, deviation: "Alertmanager 0.25 answers 500 for an unknown silence ID; promgate refuses with 403 before asking, whether the ID exists or is someone else's"},
		{name: "expire bob's silence", method: "DELETE", path: "/api/v2/silence/" + bobID, wantStatus: 403, wantBody: "does not exist or is not yours",
			am: &amRequest{"DELETE", "/api/v2/silence/" + missing, "", ""}, deviation: "as for expiring a missing silence"},
		{name: "alert of team b", method: "POST", path: "/api/v2/alerts", body: `[{"labels":{"alertname":"Mine","team":"a"}},{"labels":{"alertname":"Forged","team":"b"}}]`, wantStatus: 403,
			wantBody: `alert 1 with labels {alertname=\"Forged\", team=\"b\"} is not allowed by the policy {team=\"a\"}`, am: alertsRefused},
		{name: "alert inhibiting other teams", method: "POST", path: "/api/v2/alerts", body: `[{"labels":{"alertname":"ClusterDown","team":"a"}}]`, wantStatus: 403,
			wantBody: `is a source of inhibit rule 0, whose targets are not all in the policy {team=\"a\"}`, am: alertsRefused},
		{name: "alert without team", method: "POST", path: "/api/v2/alerts", body: `[{"labels":{"alertname":"Forged"}}]`, wantStatus: 403,
			wantBody: "not allowed by the policy", am: alertsRefused},
		{name: "alerts not an array", method: "POST", path: "/api/v2/alerts", body: `{"labels":{}}`, wantStatus: 400,
			wording: "the Go type named is promgate's ([]*alertmanager.PostableAlert), not Alertmanager's (models.PostableAlerts)"},
		{name: "bad filter", method: "GET", path: "/api/v2/alerts?filter=foo", wantStatus: 400},
		{name: "bad silences filter", method: "GET", path: "/api/v2/silences?filter=%7Bteam%3D%22a%22", wantStatus: 400, wording: filterWording},
		{name: "API v1", method: "GET", path: "/api/v1/alerts", wantStatus: 403, wantBody: `"errorType":"forbidden"`, am: v1Refused, deviation: v1Deviation},
		{name: "API v1 silences", method: "POST", path: "/api/v1/silences", body: `{}`, wantStatus: 403, wantBody: `API v1 is not available`, am: v1Refused, deviation: v1Deviation},
		{name: "unknown v2 path", method: "GET", path: "/api/v2/alerts/nope", wantStatus: 403,
			wantBody: `{"code":403,"message":"path /api/v2/alerts/nope is not available to restricted users"}`, am: &amRequest{"GET", "/api/v2/alerts/nope", "", ""}},
		{name: "Alertmanager's metrics", method: "GET", path: "/metrics", wantStatus: 403, wantBody: `"code":403`, am: pathRefused},
		{name: "Alertmanager's reload", method: "POST", path: "/-/reload", wantStatus: 403, wantBody: `"code":403`, am: pathRefused},
		{name: "wrong method", method: "PUT", path: "/api/v2/silences", body: `{}`, wantStatus: 405},
		{name: "dot segments", method: "GET", path: "/lib/%2e%2e/api/v1/alerts", wantStatus: 403, wantBody: `"code":403`, am: pathRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := amSend(t, s.gate.url+"/alertmanager", "alice", amRequest{tc.method, tc.path, tc.body, tc.contentType})
			if got.status != tc.wantStatus || !strings.Contains(string(got.body), tc.wantBody) {
				t.Errorf("%d %s\nwant %d with %s", got.status, got.body, tc.wantStatus, tc.wantBody)
			}
			if got.contentType != "application/json" {
				t.Errorf("Content-Type %q", got.contentType)
			}
			ref := amRequest{tc.method, tc.path, tc.body, tc.contentType}
			if tc.am != nil {
				ref = *tc.am
			}
			want := amSend(t, s.am.url, "", ref)
			if want.status < 400 {
				t.Fatalf("Alertmanager accepts the reference request %s %s (%d %s): it shows no error shape", ref.method, ref.path, want.status, want.body)
			}
			shape, exact := amShapeDiff(want, got), ""
			switch {
			case tc.am != nil:
			case want.status != got.status:
				exact = fmt.Sprintf("status: Alertmanager %d, promgate %d", want.status, got.status)
			case amNormalize(want.body) != amNormalize(got.body):
				exact = "message differs"
			}
			show := fmt.Sprintf("(%s %s)\nAlertmanager: %d %q %s\npromgate:     %d %q %s",
				ref.method, ref.path, want.status, want.contentType, want.body, got.status, got.contentType, got.body)
			switch {
			case shape != "" && tc.deviation == "":
				t.Errorf("promgate answers in another shape than Alertmanager: %s %s", shape, show)
			case shape == "" && tc.deviation != "":
				t.Errorf("promgate now answers in Alertmanager's shape: remove the deviation %q %s", tc.deviation, show)
			case shape != "":
				t.Logf("deliberate difference from Alertmanager (%s): %s", tc.deviation, shape)
			}
			switch {
			case exact != "" && tc.wording == "" && tc.deviation == "":
				t.Errorf("promgate answers unlike Alertmanager to the same request: %s %s", exact, show)
			case exact == "" && tc.wording != "":
				t.Errorf("promgate now answers like Alertmanager: remove the wording note %q %s", tc.wording, show)
			case exact != "" && tc.wording != "":
				t.Logf("known wording difference from Alertmanager (%s) %s", tc.wording, show)
			}
		})
	}

	// Nothing changed on Alertmanager.
	after := s.silences(t)
	if len(after) != len(silencesBefore) {
		t.Errorf("silences changed: before %v, after %v", silencesBefore, after)
	}
	for id, sil := range silencesBefore {
		if a := after[id]; a.Status.State != sil.Status.State || a.EndsAt != sil.EndsAt || a.matchers() != sil.matchers() {
			t.Errorf("silence %s changed: %+v -> %+v", id, sil, a)
		}
	}
	if got := s.alertNames(t); !slices.Equal(got, alertsBefore) {
		t.Errorf("alerts changed: %v -> %v", alertsBefore, got)
	}
}

// amRequest is one request of TestAlertmanagerBadInput; contentType
// defaults to application/json when there is a body.
type amRequest struct {
	method, path, body, contentType string
}

// amAnswer is what TestAlertmanagerBadInput compares of an answer.
type amAnswer struct {
	status      int
	contentType string
	body        []byte
}

// amSend sends r to base (promgate's /alertmanager as user, or
// Alertmanager itself when user is "").
func amSend(t *testing.T, base, user string, r amRequest) amAnswer {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	ct := r.contentType
	if ct == "" && r.body != "" {
		ct = "application/json"
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if user != "" {
		req.SetBasicAuth(user, amUsers[user])
	}
	// Alertmanager redirects paths with dot segments; the answer itself is
	// what is compared.
	client := &http.Client{Timeout: httpClient.Timeout, Transport: httpClient.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return amAnswer{resp.StatusCode, resp.Header.Get("Content-Type"), bytes.TrimSpace(b)}
}

// amShape names the shape of an error body of Alertmanager's API: the
// OpenAPI layer's {"code","message"}, a handler's JSON string, API v1's
// {"status","errorType","error"}, or an empty body.
func amShape(body []byte) string {
	if len(body) == 0 {
		return "empty"
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return "not JSON"
	}
	switch x := v.(type) {
	case string:
		return "JSON string"
	case map[string]any:
		return "object with " + strings.Join(slices.Sorted(maps.Keys(x)), ", ")
	}
	return fmt.Sprintf("JSON %T", v)
}

// amShapeDiff compares the status class, Content-Type and body shape of
// promgate's answer with Alertmanager's, or returns "".
func amShapeDiff(am, gate amAnswer) string {
	switch {
	case am.status/100 != gate.status/100:
		return fmt.Sprintf("status class: Alertmanager %d, promgate %d", am.status, gate.status)
	case am.contentType != gate.contentType:
		return fmt.Sprintf("Content-Type: Alertmanager %q, promgate %q", am.contentType, gate.contentType)
	case amShape(am.body) != amShape(gate.body):
		return fmt.Sprintf("body: Alertmanager's is %s, promgate's %s", amShape(am.body), amShape(gate.body))
	}
	return ""
}

// amMethodList is the list of allowed methods in a 405 message, which
// Alertmanager's router renders in random order.
var amMethodList = regexp.MustCompile(`\[[A-Z]+(,[A-Z]+)*\]`)

// amNormalize sorts method lists so that two equal 405 answers compare equal.
func amNormalize(body []byte) string {
	return amMethodList.ReplaceAllStringFunc(string(body), func(l string) string {
		ms := strings.Split(l[1:len(l)-1], ",")
		slices.Sort(ms)
		return "[" + strings.Join(ms, ",") + "]"
	})
}

// TestAlertmanagerPrometheusRule fires an alert from a real Prometheus rule
// and sends it through promgate twice: as alice, whose policy allows it,
// and as bob, whose policy does not. Alertmanager gets it from alice;
// bob's notifications fail; only alice sees the alert through promgate.
func TestAlertmanagerPrometheusRule(t *testing.T) {
	s := startAMStack(t)
	prometheus := requireTool(t, "prometheus")
	gateHost := strings.TrimPrefix(s.gate.url, "http://")
	_, port, _ := strings.Cut(gateHost, ":")
	rules := filepath.Join(s.dir, "rules.yml")
	amWriteFile(t, rules, `groups:
- name: team-a
  interval: 1s
  rules:
  - alert: TeamAFromPrometheus
    expr: vector(1)
    labels: {team: a, severity: page}
`)
	// Two Alertmanager configurations with the same promgate under two
	// host names, so that Prometheus' metrics tell them apart.
	cfg := filepath.Join(s.dir, "prometheus.yml")
	amWriteFile(t, cfg, fmt.Sprintf(`global:
  evaluation_interval: 1s
rule_files: [%s]
alerting:
  alertmanagers:
  - static_configs: [{targets: ["127.0.0.1:%s"]}]
    path_prefix: /alertmanager
    api_version: v2
    basic_auth: {username: alice, password: %s}
  - static_configs: [{targets: ["localhost:%s"]}]
    path_prefix: /alertmanager
    api_version: v2
    basic_auth: {username: bob, password: %s}
`, rules, port, amUsers["alice"], port, amUsers["bob"]))
	prom, err := startServer(t, "prometheus-rules", s.dir, prometheus, func(addr string) []string {
		return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(s.dir, "prom-data"),
			"--web.listen-address=" + addr, "--log.level=error",
			// Resend firing alerts every second rather than every minute.
			"--rules.alert.resend-delay=1s"}
	})
	if err != nil {
		t.Fatal(err)
	}

	amEventually(t, 60*time.Second, "the rule's alert on Alertmanager", func() error {
		if got := s.alertNames(t); !slices.Contains(got, "TeamAFromPrometheus/a") {
			return fmt.Errorf("alerts %v", got)
		}
		return nil
	})
	amEventually(t, 30*time.Second, "bob's notifications refused", func() error {
		sent, errs := amNotificationCounts(t, prom.url)
		alice := "http://127.0.0.1:" + port + "/alertmanager/api/v2/alerts"
		bob := "http://localhost:" + port + "/alertmanager/api/v2/alerts"
		if sent[alice] == 0 || errs[alice] != 0 || errs[bob] == 0 {
			return fmt.Errorf("sent %v errors %v", sent, errs)
		}
		return nil
	})

	for user, want := range map[string][]string{"alice": {"TeamAFromPrometheus/a"}, "bob": nil, "carol": {"TeamAFromPrometheus/a"}} {
		out := s.mustAmtool(t, user, "alert", "query", "-o", "json", "alertname=TeamAFromPrometheus")
		if got := amAlertKeys(amDecode[[]amAlert](t, "alert query", []byte(out))); !slices.Equal(got, want) {
			t.Errorf("%s sees %v, want %v", user, got, want)
		}
	}
}

// amNotificationCounts reads Prometheus' notification counters by
// Alertmanager URL.
func amNotificationCounts(t *testing.T, promURL string) (sent, errs map[string]float64) {
	t.Helper()
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sent, errs = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]float64
		switch {
		case strings.HasPrefix(line, "prometheus_notifications_sent_total{"):
			m = sent
		case strings.HasPrefix(line, "prometheus_notifications_errors_total{"):
			m = errs
		default:
			continue
		}
		_, rest, _ := strings.Cut(line, `alertmanager="`)
		u, _, _ := strings.Cut(rest, `"`)
		if _, err := url.Parse(u); err != nil {
			t.Fatalf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[u] = v
	}
	return sent, errs
}
