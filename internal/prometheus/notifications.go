package prometheus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/promql"
)

// Notifications of Prometheus 3 (/api/v1/notifications, and the same as
// server-sent events on /api/v1/notifications/live; the UI shows them in
// its header). Prometheus 3.16 sends three fixed texts about the server
// itself, with no detail: starting up, shutting down, configuration reload
// failed. They carry nothing of a tenant's, so a tenant sees them; any other
// text (a later version's, which might carry details) is dropped, so what
// passes is known to be harmless.
var serverNotifications = map[string]bool{
	"Configuration reload has failed.":                                    true,
	"Prometheus is starting and replaying the write-ahead log (WAL).":     true,
	"Prometheus is shutting down and gracefully stopping all operations.": true,
}

// notification is what promgate reads of one.
type notification struct {
	Text string `json:"text"`
}

func knownNotification(b []byte) bool {
	var n notification
	return json.Unmarshal(b, &n) == nil && serverNotifications[n.Text]
}

func (a *API) notifications(w http.ResponseWriter, r *http.Request, path string, p params, _ *promql.Enforcer) error {
	if _, err := readForm(r, p, a.maxBody); err != nil {
		return err
	}
	return a.filteredIfThere(w, r, path, url.Values{}, filterNotificationsData)
}

// filterNotificationsData keeps the known notifications of a list.
func filterNotificationsData(out, b []byte) ([]byte, int, error) {
	end, err := jsonscan.SkipValue(b, 0)
	if err != nil {
		return out, end, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b[:end], &list); err != nil {
		return out, end, err
	}
	out = append(out, '[')
	n := 0
	for _, m := range list {
		if !knownNotification(m) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, m...)
		n++
	}
	return append(out, ']'), end, nil
}

// notificationsLive streams the known notifications as they come. The
// stream ends with the upstream's timeout; browsers reconnect (EventSource).
// An answer that is not a stream (204: too many subscribers; an error) is
// passed on as it is: it carries no notification.
func (a *API) notificationsLive(w http.ResponseWriter, r *http.Request, path string, p params, _ *promql.Enforcer) error {
	if _, err := readForm(r, p, a.maxBody); err != nil {
		return err
	}
	req := rebuild(r, path, url.Values{})
	req.Header.Del("Accept-Encoding") // promgate reads the events
	resp, err := a.up.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // the client's EventSource opens now
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	_ = filterEvents(resp.Body, w, func() { _ = rc.Flush() })
	return nil
}

// maxEventBytes bounds one event read.
const maxEventBytes = 1 << 20

// filterEvents copies the server-sent events of in whose data is a known
// notification, each followed by flush; other events, comments and fields
// are dropped. It returns when in ends (or fails, or an event is too
// large).
func filterEvents(in io.Reader, out io.Writer, flush func()) error {
	br := bufio.NewReaderSize(in, 4096)
	var (
		data    []byte // the event's data lines, joined by newlines
		hasData bool
		size    int
	)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: read it whole, bounded.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull && len(long) <= maxEventBytes {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			return err
		}
		if size += len(line); size > maxEventBytes {
			return io.ErrShortBuffer
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			// The end of an event.
			if hasData && knownNotification(data) {
				if _, err := out.Write(eventOf(data)); err != nil {
					return err
				}
				flush()
			}
			data, hasData, size = data[:0], false, 0
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			v = bytes.TrimPrefix(v, []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, v...), true
		}
	}
}

// eventOf is the event with data d: one data field a line.
func eventOf(d []byte) []byte {
	var b []byte
	for _, line := range bytes.Split(d, []byte("\n")) {
		b = append(append(append(b, "data: "...), line...), '\n')
	}
	return append(b, '\n')
}
