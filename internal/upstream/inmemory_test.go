package upstream

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// A body set by InMemory reaches the upstream whole, short (copied after
// the head) or long (written from where it is), on a new connection or a
// reused one, and its length is announced.
func TestInMemoryBody(t *testing.T) {
	type got struct {
		body   []byte
		length int64
	}
	received := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		received <- got{b, r.ContentLength}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	u, err := New(Options{URL: base}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, copiedBody, copiedBody + 1, 1 << 20, 100} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		body[0], body[n-1] = 'a', 'z'
		req := httptest.NewRequest(http.MethodPost, "/api/v1/write", nil)
		InMemory(req, body)
		if b, ok := bodyInMemory(req); !ok || &b[0] != &body[0] {
			t.Errorf("%d bytes: the body is not taken as it is", n)
		}
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%d bytes: status %d: %s", n, rec.Code, rec.Body)
		}
		last := <-received
		if !bytes.Equal(last.body, body) || last.length != int64(n) {
			t.Errorf("%d bytes: the upstream received %d bytes (Content-Length %d)", n, len(last.body), last.length)
		}
	}
}
