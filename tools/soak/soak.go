package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promgate/promgate/internal/testenv"
)

// stats are the soak's counts; every field is guarded by mu.
type stats struct {
	mu sync.Mutex
	// requests by kind; statuses by "200", "502", "transport error"…,
	// apart for those in or out of a Prometheus restart.
	requests            map[string]int
	statusOut, statusIn map[string]int
	// failures outside restarts: non-200, unreadable or empty answers.
	failuresOut, failuresIn int
	failureSamples          []string
	cross                   int
	crossSamples            []string
	aborts, abortFailures   int
	slow, slowFailures      int
	restarts                int
	reloadsValid            int
	reloadsBrokenRefused    int
	reloadWrong             []string
}

func (s *stats) add(f func(*stats)) {
	s.mu.Lock()
	f(s)
	s.mu.Unlock()
}

// restartClock tells whether a request overlapped a Prometheus restart:
// it is odd from the moment Prometheus is stopped until a grace period
// after it is ready again.
type restartClock struct{ n atomic.Int64 }

func (r *restartClock) now() int64 { return r.n.Load() }

// overlapped reports whether a request seen at start and end crossed a
// restart window.
func overlapped(start, end int64) bool { return start%2 == 1 || end%2 == 1 || start != end }

// soaker runs the load and the faults.
type soaker struct {
	e       *env
	o       options
	st      *stats
	clock   restartClock
	pause   sync.RWMutex // held by every request; the sampler takes it whole to measure at rest
	faultMu sync.RWMutex // held by a fault in progress; the sampler waits for it
}

func (e *env) soak(ctx context.Context, o options) (*report, error) {
	s := &soaker{e: e, o: o, st: &stats{requests: map[string]int{}, statusOut: map[string]int{}, statusIn: map[string]int{}}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for ti := range numTenants {
		for c := range connsPerTenant {
			wg.Add(1)
			go func() { defer wg.Done(); s.worker(ctx, tenantName(ti), ti*connsPerTenant+c) }()
		}
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.slowClient(ctx) }()
	go func() { defer wg.Done(); s.reloads(ctx) }()

	rep := &report{duration: o.duration, st: s.st}
	err := s.restartsAndSamples(ctx, rep)
	cancel()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if aerr := e.gate.Alive(); aerr != nil {
		return nil, aerr
	}
	return rep, nil
}

// worker is one connection of one tenant: it sends the kinds of requests
// in turn, and every 16th request aborts an answer halfway.
func (s *soaker) worker(ctx context.Context, tenant string, seed int) {
	c := newClient()
	defer c.close()
	base := s.e.gate.URL
	for i := seed; ctx.Err() == nil; i++ {
		s.pause.RLock()
		t0 := s.clock.now()
		if i%16 == 15 {
			n, err := c.abort(base, tenant)
			in := overlapped(t0, s.clock.now())
			s.st.add(func(st *stats) {
				st.aborts++
				if err != nil && !in && ctx.Err() == nil {
					st.abortFailures++
					st.failuresOut++
					st.sample(&st.failureSamples, fmt.Sprintf("abort as %s after %d bytes: %v", tenant, n, err))
				}
			})
			s.pause.RUnlock()
			continue
		}
		k := kinds[i%len(kinds)]
		r := k.send(c, base, tenant)
		in := overlapped(t0, s.clock.now())
		s.pause.RUnlock()
		if ctx.Err() != nil {
			return
		}
		s.record(k, tenant, r, in)
	}
}

// record counts one answer and checks it.
func (s *soaker) record(k kind, tenant string, r result, in bool) {
	status := strconv.Itoa(r.code)
	var failure, leak string
	switch {
	case r.err != nil:
		status = "transport error"
		failure = r.err.Error()
	case r.code != http.StatusOK:
		failure = fmt.Sprintf("status %d: %.200s", r.code, r.body)
	default:
		sets, err := k.labels(r.body)
		switch {
		case err != nil:
			failure = fmt.Sprintf("unreadable answer (%v): %.200s", err, r.body)
		case len(sets) == 0 && k.nonEmpty:
			failure = "empty answer"
		}
		leak = foreign(tenant, sets)
	}
	s.st.add(func(st *stats) {
		st.requests[k.name]++
		if in {
			st.statusIn[status]++
		} else {
			st.statusOut[status]++
		}
		if leak != "" {
			st.cross++
			st.sample(&st.crossSamples, fmt.Sprintf("%s as %s: %s", k.name, tenant, leak))
		}
		if failure != "" {
			if in {
				st.failuresIn++
			} else {
				st.failuresOut++
				st.sample(&st.failureSamples, fmt.Sprintf("%s as %s: %s", k.name, tenant, failure))
			}
		}
	})
}

func (st *stats) sample(list *[]string, s string) {
	if len(*list) < 5 {
		*list = append(*list, s)
	}
}

// slowClient sends requests byte by byte on raw connections: in turn the
// request line and headers, then a form body, each byte 10 ms after the
// last. Its answers are checked like the others.
func (s *soaker) slowClient(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		tenant := tenantName(i % numTenants)
		s.pause.RLock()
		t0 := s.clock.now()
		r := s.slowRequest(ctx, tenant, i%2 == 0)
		in := overlapped(t0, s.clock.now())
		s.pause.RUnlock()
		if ctx.Err() != nil {
			return
		}
		s.st.add(func(st *stats) { st.slow++ })
		k := kind{name: "slow client", labels: vectorLabels, nonEmpty: true}
		if r.err != nil || r.code != http.StatusOK {
			s.st.add(func(st *stats) {
				if !in {
					st.slowFailures++
				}
			})
		}
		s.record(k, tenant, r, in)
	}
}

func (s *soaker) slowRequest(ctx context.Context, tenant string, slowHeaders bool) result {
	conn, err := net.DialTimeout("tcp", s.e.gate.Addr, 5*time.Second)
	if err != nil {
		return result{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	form := url.Values{"query": {"count by (team, instance) (soak_up)"}, "time": {at}}.Encode()
	head := fmt.Sprintf("POST /api/v1/query HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		s.e.gate.Addr, identityHeader, tenant, len(form))
	dribble := func(p string) error {
		for i := range len(p) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, err := conn.Write([]byte{p[i]}); err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}
	if slowHeaders {
		err = dribble(head)
		if err == nil {
			_, err = io.WriteString(conn, form)
		}
	} else {
		_, err = io.WriteString(conn, head)
		if err == nil {
			err = dribble(form)
		}
	}
	if err != nil {
		return result{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: body, err: err}
}

// restartsAndSamples restarts Prometheus every restartEvery and measures
// promgate just before the second restart, the one halfway and the end.
// The measures are taken at the same moment of a restart's cycle because
// the idle upstream connections promgate holds at rest depend on it: a
// restart closes them on Prometheus' side, and the pool fills again with
// the load that follows.
func (s *soaker) restartsAndSamples(ctx context.Context, rep *report) error {
	const grace = 2 * time.Second
	begin := time.Now()
	cycles := max(int(s.o.duration/s.o.restartEvery), 1)
	// The first cycle warms up (pools, caches, the heap's size): the
	// start sample follows it.
	first := min(2, cycles)
	names := map[int]string{first: "start", cycles: "end"}
	if mid := (first + cycles + 1) / 2; mid > first && mid < cycles {
		names[mid] = "middle"
	}
	for k := 1; k <= cycles; k++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(begin.Add(time.Duration(k) * s.o.restartEvery))):
		}
		if name, ok := names[k]; ok {
			smp, err := s.sample(name)
			if err != nil {
				return err
			}
			fmt.Printf("soak: %-6s after %-6s rss %.1f MiB, live heap %.1f MiB, %d goroutines, %d open files (%d idle upstream connections)\n", name,
				time.Since(begin).Round(time.Second), float64(smp.rss)/(1<<20), float64(smp.heap)/(1<<20), smp.goroutines, smp.fds, smp.idleUpstream)
			rep.samples = append(rep.samples, smp)
		}
		if k == cycles {
			return nil
		}
		s.faultMu.RLock()
		s.clock.n.Add(1)
		err := s.e.restartPrometheus()
		if err == nil {
			select {
			case <-ctx.Done():
			case <-time.After(grace):
			}
		}
		s.clock.n.Add(1)
		s.faultMu.RUnlock()
		if err != nil {
			return fmt.Errorf("restarting Prometheus: %w", err)
		}
		s.st.add(func(st *stats) { st.restarts++ })
	}
	return nil
}

// reloads writes promgate's configuration every reloadEvery, broken and
// valid in turn, and asks promgate to reload it: the broken one must be
// refused with the previous configuration still serving.
func (s *soaker) reloads(ctx context.Context) {
	c := newClient()
	defer c.close()
	t := time.NewTicker(s.o.reloadEvery)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		broken := i%2 == 0
		cfg := s.e.validCfg
		if broken {
			cfg = s.e.brokenCfg
		}
		s.faultMu.RLock()
		wrong := ""
		if err := os.WriteFile(s.e.gateCfg, []byte(cfg), 0o600); err != nil {
			wrong = err.Error()
		} else {
			r := c.postForm(s.e.gate.URL+"/-/reload", "admin", nil)
			switch {
			case r.err != nil:
				wrong = "reload: " + r.err.Error()
			case broken && r.code == http.StatusOK:
				wrong = "the broken configuration was accepted"
			case !broken && r.code != http.StatusOK:
				wrong = fmt.Sprintf("the valid configuration was refused: %d %s", r.code, r.body)
			case broken:
				wrong = s.oldConfigServes(ctx, c)
			}
		}
		s.faultMu.RUnlock()
		if ctx.Err() != nil {
			return
		}
		s.st.add(func(st *stats) {
			switch {
			case wrong != "":
				st.reloadWrong = append(st.reloadWrong, wrong)
			case broken:
				st.reloadsBrokenRefused++
			default:
				st.reloadsValid++
			}
		})
	}
}

// oldConfigServes checks that the tenant whose selector the broken file
// cuts short still gets its data: the old configuration serves. An answer
// that failed during a Prometheus restart is asked again.
func (s *soaker) oldConfigServes(ctx context.Context, c *client) string {
	deadline := time.Now().Add(30 * time.Second)
	for {
		t0 := s.clock.now()
		a := c.get(s.e.gate.URL+"/api/v1/label/team/values", "t3")
		if a.code == http.StatusOK && strings.Contains(string(a.body), `"data":["t3"]`) {
			return ""
		}
		if a.code == http.StatusOK || !overlapped(t0, s.clock.now()) || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Sprintf("after a refused reload, t3 got %d %.200s (%v)", a.code, a.body, a.err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// sample measures promgate at rest: no request in flight, no fault in
// progress, a second after the last answer and a garbage collection.
// Open files are counted without the idle upstream connections, whose
// number follows the last burst of load (promgate reports it), not a leak.
func (s *soaker) sample(name string) (sample, error) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.pause.Lock()
	defer s.pause.Unlock()
	c := newClient()
	defer c.close()
	// A reload of the valid configuration first: the new configuration's
	// upstream pools start empty and the old ones close, so every sample
	// sees promgate without idle upstream connections, whose number (and
	// buffers) follow the last burst of load rather than a leak.
	if err := os.WriteFile(s.e.gateCfg, []byte(s.e.validCfg), 0o600); err != nil {
		return sample{}, err
	}
	if r := c.postForm(s.e.gate.URL+"/-/reload", "admin", nil); r.code != http.StatusOK {
		return sample{}, fmt.Errorf("reload before the sample: %d %s %v", r.code, r.body, r.err)
	}
	// The internal listener's heap profile collects garbage first; twice,
	// so that what sync.Pools kept over the first collection goes too.
	// The second profile is kept in the working directory (-keep) for
	// go tool pprof -base.
	for range 2 {
		r := c.get(s.e.internal+"/debug/pprof/heap?gc=1", "")
		if r.code != http.StatusOK {
			return sample{}, fmt.Errorf("promgate's heap profile: %d %v", r.code, r.err)
		}
		_ = os.WriteFile(filepath.Join(s.e.dir, "heap-"+name+".pb.gz"), r.body, 0o644)
	}
	time.Sleep(time.Second)
	smp := sample{name: name}
	pid := s.e.gate.PID()
	var err error
	if smp.rss, err = testenv.StatusBytes(pid, "VmRSS"); err != nil {
		return smp, err
	}
	if smp.fds, err = testenv.OpenFiles(pid); err != nil {
		return smp, err
	}
	r := c.get(s.e.internal+"/metrics", "")
	if r.err != nil || r.code != http.StatusOK {
		return smp, fmt.Errorf("promgate /metrics: %d %v", r.code, r.err)
	}
	m := metricValues(string(r.body))
	g, ok := m["go_goroutines"]
	if !ok {
		return smp, fmt.Errorf("no go_goroutines on promgate's /metrics")
	}
	smp.goroutines, smp.goroutineSource = int(g), "go_goroutines"
	smp.heap = int64(m["go_memstats_heap_alloc_bytes"])
	smp.idleUpstream = int(m["promgate_upstream_idle_connections"])
	return smp, nil
}

// metricValues sums the samples of each metric name of a text exposition.
func metricValues(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out
}
