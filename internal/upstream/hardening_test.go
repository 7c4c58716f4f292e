package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tenancy header is promgate's on every path: a client that names it
// in its Connection header cannot have it removed, whatever the body.
func TestTenancyHeaderAfterConnectionTokens(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var gotBody int
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		got, gotBody = r.Header.Values("X-Scope-OrgID"), int(n)
		mu.Unlock()
	}))
	u := newUpstream(t, up.URL, Options{
		Headers:     func(user string) (http.Header, error) { return http.Header{"X-Scope-OrgID": {user}}, nil },
		HeaderNames: []string{"X-Scope-OrgID"},
	})
	big := strings.Repeat("b", maxReadBody+1)
	bodies := []struct {
		name    string
		body    func() io.Reader
		length  int64
		chunked bool
	}{
		{"none", func() io.Reader { return nil }, 0, false},
		{"small, read whole", func() io.Reader { return strings.NewReader("abc") }, 3, false},
		{"chunked, streamed", func() io.Reader { return strings.NewReader("abc") }, -1, true},
		{"over 1 MiB, streamed", func() io.Reader { return strings.NewReader(big) }, int64(len(big)), false},
	}
	for _, b := range bodies {
		for _, conn := range []string{"X-Scope-OrgID", "x-scope-orgid", "keep-alive, X-Scope-OrgID", "close,X-Scope-OrgID"} {
			t.Run(b.name+"/"+conn, func(t *testing.T) {
				method := "POST"
				if b.body() == nil {
					method = "GET"
				}
				req := httptest.NewRequest(method, "/api/v1/write", b.body())
				req.ContentLength = b.length
				if b.chunked {
					req.TransferEncoding = []string{"chunked"}
				}
				req.Header.Set("X-Scope-OrgID", "someone-else")
				req.Header.Set("Connection", conn)
				req = req.WithContext(identityContext(req.Context(), "alice"))
				rec := httptest.NewRecorder()
				u.ServeHTTP(rec, req)
				mu.Lock()
				defer mu.Unlock()
				if rec.Code != 200 || len(got) != 1 || got[0] != "alice" {
					t.Errorf("status %d, upstream got X-Scope-OrgID %q, want [alice]", rec.Code, got)
				}
				if b.length > 0 && gotBody != int(b.length) {
					t.Errorf("upstream got %d body bytes, want %d", gotBody, b.length)
				}
			})
		}
	}
}

// rawUpstream answers every request with the path it asked for; 10 ms
// after every third answer it sends that answer again, unasked. pending
// reports whether a late answer is still to be written.
func rawUpstream(t *testing.T) (base string, pending func() bool) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var answers, late atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body := req.URL.RequestURI()
					answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
					if answers.Add(1)%3 == 0 {
						time.AfterFunc(10*time.Millisecond, func() {
							io.WriteString(c, answer)
							late.Add(1)
						})
					}
				}
			}()
		}
	}()
	return "http://" + l.Addr().String(), func() bool { return late.Load() < answers.Load()/3 }
}

// Bytes that arrive on an idle connection are never read as the answer to
// the next request, on either entry point.
func TestUnsolicitedBytesCloseTheConnection(t *testing.T) {
	base, pending := rawUpstream(t)
	u := newUpstream(t, base, Options{})
	for i := range 30 {
		want := fmt.Sprintf("/q?n=%d", i)
		req := httptest.NewRequest("GET", want, nil)
		var got string
		if i%2 == 0 {
			rec := httptest.NewRecorder()
			u.ServeHTTP(rec, req)
			got = rec.Body.String()
		} else {
			resp, err := u.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
		}
		if got != want {
			t.Errorf("request %s got the answer %q", want, got)
		}
		// The late answer arrives while the connection is idle.
		waitFor(t, "the late answer", func() bool { return !pending() })
	}
}

// Close closes the idle connections at once and those in use when they
// come back: a reload does not leave the old pools open.
func TestCloseReleasesConnections(t *testing.T) {
	var open, held atomic.Int64
	fast, slow := make(chan struct{}), make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		if r.URL.Path == "/slow" {
			<-slow
		} else {
			<-fast
		}
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	var once sync.Once
	var slowOnce sync.Once
	releaseAll := func() {
		once.Do(func() { close(fast) })
		slowOnce.Do(func() { close(slow) })
	}
	t.Cleanup(func() { releaseAll(); srv.Close() })
	u := newUpstream(t, srv.URL, Options{})
	// Three requests at once: three connections; two come back idle.
	var wg sync.WaitGroup
	for _, path := range []string{"/a", "/b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
		}()
	}
	done := make(chan struct{})
	go func() {
		u.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/slow", nil))
		close(done)
	}()
	waitFor(t, "three requests upstream", func() bool { return held.Load() == 3 })
	once.Do(func() { close(fast) })
	wg.Wait()
	if n := open.Load(); n != 3 {
		t.Fatalf("%d connections open, want 3", n)
	}
	u.Close()
	waitFor(t, "the idle connections closed", func() bool { return open.Load() == 1 })
	releaseAll()
	<-done
	waitFor(t, "the busy connection closed after its answer", func() bool { return open.Load() == 0 })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Credentials in the upstream URL are sent as basic auth, on every path;
// the client's own Authorization never passes.
func TestURLUserinfoSent(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = r.Header.Values("Authorization")
		mu.Unlock()
	}))
	u := newUpstream(t, strings.Replace(up.URL, "http://", "http://prom:s%40cret@", 1), Options{})
	want := basicAuth("prom", "s@cret")
	for _, body := range []io.Reader{nil, strings.NewReader("x"), io.MultiReader(strings.NewReader("streamed"))} {
		method := "GET"
		if body != nil {
			method = "POST"
		}
		req := httptest.NewRequest(method, "/api/v1/query", body)
		if body != nil {
			req.ContentLength = -1
		}
		req.Header.Set("Authorization", "Basic Y2xpZW50OnB3")
		u.ServeHTTP(httptest.NewRecorder(), req)
		mu.Lock()
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: upstream got Authorization %q, want %q", method, got, want)
		}
		mu.Unlock()
	}
	resp, err := u.Do(httptest.NewRequest("GET", "/x", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != want {
		t.Errorf("Do: upstream got Authorization %q", got)
	}
	if _, err := New(Options{URL: u.base, HeaderNames: []string{"authorization"}}, nil); err == nil {
		t.Error("credentials in the URL and an Authorization header were both accepted")
	}
}

// A failed exchange is answered by the caller's error writer.
func TestErrorWriterChosenByCaller(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial fails
	var gotErr error
	u := newUpstream(t, "http://"+addr, Options{ErrorWriter: func(w http.ResponseWriter, r *http.Request, err error) {
		gotErr = err
		w.WriteHeader(599)
	}})
	rec := httptest.NewRecorder()
	u.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 599 || gotErr == nil || !strings.Contains(gotErr.Error(), "upstream unavailable") {
		t.Errorf("status %d, error %v", rec.Code, gotErr)
	}
	// The default is Prometheus' envelope.
	u = newUpstream(t, "http://"+addr, Options{})
	rec = httptest.NewRecorder()
	u.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 502 || !bytes.Contains(rec.Body.Bytes(), []byte(`"errorType":"upstream"`)) {
		t.Errorf("default: %d %s", rec.Code, rec.Body)
	}
}

// Idle connections the upstream closed (a restart) are closed by the
// sweep, not kept until they are reused or expire.
func TestSweepClosesDeadIdleConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	u := newUpstream(t, srv.URL, Options{})
	defer u.Close()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		}()
	}
	wg.Wait()
	if n := u.IdleConns(); n == 0 {
		t.Fatal("no idle connection")
	}
	u.pool.sweep()
	if n := u.IdleConns(); n == 0 {
		t.Fatal("the sweep closed live connections")
	}
	srv.CloseClientConnections()
	waitFor(t, "the sweep to find the connections closed", func() bool {
		u.pool.sweep()
		return u.IdleConns() == 0
	})
}
