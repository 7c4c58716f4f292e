package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/identity"
)

// Tests of the connection pool and the send path, against
// real servers on loopback.

// countingServer starts srv counting the connections it accepts.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func newUpstream(t *testing.T, rawURL string, o Options) *Upstream {
	t.Helper()
	base, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	o.URL = base
	u, err := New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// gateway serves u as promgate does, on a real server, so that aborted
// answers reach the client as they would.
func gateway(t *testing.T, u *Upstream) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, u string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var plainClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func TestAnswersPassUnchanged(t *testing.T) {
	small := strings.Repeat("s", 3000)
	large := strings.Repeat("0123456789abcdef", 20000) // 320 KB
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		switch r.URL.Path {
		case "/small-chunked":
			io.WriteString(w, small) // > 2 KiB: Go's server sends it chunked
		case "/large-chunked":
			io.WriteString(w, large)
		case "/length":
			w.Header().Set("Content-Length", strconv.Itoa(len(large)))
			io.WriteString(w, large)
		case "/pieces":
			for range 5 {
				io.WriteString(w, small)
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
		case "/pieces-large":
			for range 2 {
				io.WriteString(w, large)
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/status":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, small)
		}
	}))
	gw := gateway(t, newUpstream(t, up.URL, Options{}))
	for _, tc := range []struct {
		path       string
		code       int
		body       string
		wantLength bool // the answer has a Content-Length
	}{
		{"/small-chunked", 200, small, true},
		{"/large-chunked", 200, large, false},
		{"/length", 200, large, true},
		// Pieces that fit the copy buffer go out together, with their
		// length.
		{"/pieces", 200, strings.Repeat(small, 5), true},
		{"/pieces-large", 200, strings.Repeat(large, 2), false},
		{"/empty", 204, "", false},
		{"/status", 418, small, true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(t, plainClient, gw.URL+tc.path, nil)
			if resp.StatusCode != tc.code || string(body) != tc.body {
				t.Fatalf("status %d, %d bytes; want %d, %d bytes", resp.StatusCode, len(body), tc.code, len(tc.body))
			}
			if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers lost: %v", resp.Header)
			}
			if got := resp.ContentLength >= 0; tc.code != 204 && got != tc.wantLength {
				t.Errorf("Content-Length %d", resp.ContentLength)
			}
		})
	}
}

func TestConnectionsReused(t *testing.T) {
	up, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 5000))
	}))
	concurrently := func(gw string, clients int) {
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					get(t, plainClient, gw+"/x", nil)
				}
			}()
		}
		wg.Wait()
	}
	t.Run("one after the other", func(t *testing.T) {
		gw := gateway(t, newUpstream(t, up.URL, Options{}))
		before := conns.Load()
		for range 20 {
			get(t, plainClient, gw.URL+"/x", nil)
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("%d upstream connections for 20 requests one after the other", n)
		}
	})
	t.Run("pool sized to the clients", func(t *testing.T) {
		gw := gateway(t, newUpstream(t, up.URL, Options{MaxIdleConns: 8}))
		before := conns.Load()
		concurrently(gw.URL, 8)
		if n := conns.Load() - before; n > 8 {
			t.Errorf("%d upstream connections for 8 clients", n)
		}
	})
	t.Run("idle connections bounded", func(t *testing.T) {
		u := newUpstream(t, up.URL, Options{MaxIdleConns: 2})
		concurrently(gateway(t, u).URL, 8)
		u.pool.mu.Lock()
		idle := len(u.pool.idle)
		u.pool.mu.Unlock()
		if idle > 2 {
			t.Errorf("%d idle connections kept, more than MaxIdleConns", idle)
		}
	})
}

// An upstream that closed an idle connection (a restart, its idle timeout)
// costs no failed request: GETs are sent again, requests with a body go on
// a connection checked first.
func TestClosedIdleConnection(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	up, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	u := newUpstream(t, up.URL, Options{})
	for i, method := range []string{"GET", "POST", "GET", "POST"} {
		up.CloseClientConnections() // the pooled connection is dead now
		time.Sleep(10 * time.Millisecond)
		r := httptest.NewRequest(method, "/x", nil)
		if method == "POST" {
			body := "query=up"
			r.Body = io.NopCloser(strings.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, r)
		if rec.Code != 200 || rec.Body.String() != "ok" {
			t.Fatalf("request %d (%s) on a closed connection: %d %s", i, method, rec.Code, rec.Body)
		}
	}
	if n := conns.Load(); n < 4 {
		t.Errorf("%d connections", n)
	}
	if bodies[1] != "query=up" || bodies[3] != "query=up" {
		t.Errorf("POST bodies %q", bodies)
	}
}

func TestRequestAsForwarded(t *testing.T) {
	var got *http.Request
	var gotBody string
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
	}))
	u := newUpstream(t, up.URL+"/base", Options{StripHeaders: []string{"Authorization"}})
	body := "query=up&time=1"
	r := httptest.NewRequest("POST", "/api/v1/query", nil)
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	r.Header.Set("Forwarded", "for=6.6.6.6")
	r.Header.Set("Keep-Alive", "300")
	r.Header.Set("Te", "trailers, deflate")
	r.Header.Set("Expect", "100-continue")
	r.Header.Add("X-Multi", "1")
	r.Header.Add("X-Multi", "2")
	r.RemoteAddr = "192.0.2.7:4242"
	r.Host = "promgate.example"
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got.Method != "POST" || got.URL.Path != "/base/api/v1/query" || gotBody != body || got.ContentLength != int64(len(body)) {
		t.Errorf("got %s %s %q (%d)", got.Method, got.URL, gotBody, got.ContentLength)
	}
	for h, want := range map[string]string{
		"Authorization": "", "Forwarded": "", "Keep-Alive": "", "Te": "trailers",
		"X-Forwarded-For": "192.0.2.7", "X-Forwarded-Host": "promgate.example", "X-Forwarded-Proto": "http",
		"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "",
	} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("%s: %q, want %q", h, v, want)
		}
	}
	if v := got.Header.Values("X-Multi"); len(v) != 2 {
		t.Errorf("X-Multi %q", v)
	}
}

func TestInvalidHeaderRefused(t *testing.T) {
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request with a bad header value reached the upstream: %v", r.Header)
	}))
	u := newUpstream(t, up.URL, Options{
		Headers:     func(user string) (http.Header, error) { return http.Header{"X-Scope-OrgID": {user}}, nil },
		HeaderNames: []string{"X-Scope-OrgID"},
	})
	r := httptest.NewRequest("GET", "/x", nil)
	r = r.WithContext(identityContext(r.Context(), "alice\r\nX-Evil: 1"))
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, r)
	if rec.Code != 502 {
		t.Errorf("status %d", rec.Code)
	}
}

func TestHeadAndTrailers(t *testing.T) {
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "HEAD" {
			w.Header().Set("Content-Length", "1234")
			return
		}
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	}))
	gw := gateway(t, newUpstream(t, up.URL, Options{}))
	resp, err := plainClient.Head(gw.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != 1234 {
		t.Errorf("HEAD Content-Length %d", resp.ContentLength)
	}
	resp, body := get(t, plainClient, gw.URL+"/x", nil)
	if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %q, trailer %v", body, resp.Trailer)
	}
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	canceled := make(chan struct{})
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(5 * time.Second):
		}
	}))
	u := newUpstream(t, up.URL, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/slow", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	u.ServeHTTP(rec, r)
	var env struct{ ErrorType string }
	_ = json.Unmarshal(rec.Body.Bytes(), &env)
	if rec.Code != 499 || env.ErrorType != "canceled" {
		t.Errorf("status %d %s", rec.Code, rec.Body)
	}
	select {
	case <-canceled:
	case <-time.After(2 * time.Second):
		t.Error("the upstream request went on after the client left")
	}
}

// An answer the upstream cuts short is cut short for the client too,
// never passed on as if whole.
func TestCutAnswerAborted(t *testing.T) {
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, strings.Repeat("x", 50000))
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	}))
	gw := gateway(t, newUpstream(t, up.URL, Options{}))
	resp, err := plainClient.Get(gw.URL + "/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a cut answer read as whole")
	}
}

func TestDoReleasesConnection(t *testing.T) {
	up, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("y", 10000))
	}))
	u := newUpstream(t, up.URL, Options{})
	do := func(readAll bool) {
		ctx, cancel := u.WithTimeout(context.Background())
		defer cancel()
		resp, err := u.Do(httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if readAll {
			b, _ := io.ReadAll(resp.Body)
			if len(b) != 10000 {
				t.Errorf("%d bytes", len(b))
			}
		} else {
			resp.Body.Read(make([]byte, 10))
		}
		resp.Body.Close()
	}
	do(true)
	do(true)
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for two answers read whole", n)
	}
	do(false) // closed early: its connection is not reused
	do(true)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// A body promgate does not hold (an unrestricted client's streamed POST)
// is written while the answer is read, on the same send path.
func TestStreamedBody(t *testing.T) {
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	gw := gateway(t, newUpstream(t, up.URL, Options{}))
	pr, pw := io.Pipe()
	go func() {
		for range 10 {
			pw.Write(bytes.Repeat([]byte("z"), 1000))
		}
		pw.Close()
	}()
	resp, err := plainClient.Post(gw.URL+"/api/v1/write", "application/x-protobuf", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 10000 {
		t.Errorf("%d bytes echoed", len(b))
	}
}

func identityContext(ctx context.Context, user string) context.Context {
	return identity.NewContext(ctx, identity.Identity{User: user})
}

// An unrestricted client's POST of known length is read whole and sent on
// a pooled connection.
func TestClientBodyOfKnownLength(t *testing.T) {
	up, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	gw := gateway(t, newUpstream(t, up.URL, Options{}))
	for i := range 5 {
		body := strings.Repeat("q", 1000+i)
		resp, err := plainClient.Post(gw.URL+"/api/v1/query", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != body {
			t.Fatalf("echoed %d bytes, want %d", len(b), len(body))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 POSTs", n)
	}
}
