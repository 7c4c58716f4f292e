// Package prometheus enforces a policy on Prometheus' HTTP API: it rewrites
// PromQL and match[] selectors in requests before they go upstream.
package prometheus

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/audit"
)

// params is the set of parameters an endpoint reads. Single-valued ones may
// appear once across the URL and the body; repeatable ones (match[]) any
// number of times. Anything else is dropped, so the upstream never reads a
// parameter promgate did not look at.
type params struct {
	single     []string
	repeatable []string
}

func (p params) kind(name string) (known, repeatable bool) {
	for _, s := range p.single {
		if s == name {
			return true, false
		}
	}
	for _, s := range p.repeatable {
		if s == name {
			return true, true
		}
	}
	return false, false
}

// readForm parses the request's parameters once, from the URL and from an
// urlencoded body, the way the upstream would see them together.
//
// Go's net/http (and so Prometheus) reads a parameter from the body before
// the URL. A proxy that enforces one and forwards both can be bypassed by
// sending the parameter twice; so a parameter given twice is refused, and the
// request forwarded is rebuilt from the enforced values alone (see
// rebuild).
func readForm(r *http.Request, p params, maxBody int64) (url.Values, error) {
	fromURL, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apierror.New(apierror.BadData, "invalid query string: %v", err)
	}
	var fromBody url.Values
	if r.Method == http.MethodPost {
		if fromBody, err = readBody(r, maxBody); err != nil {
			return nil, err
		}
	}
	out := url.Values{}
	for _, src := range []url.Values{fromBody, fromURL} {
		for name, vs := range src {
			known, repeatable := p.kind(name)
			if !known {
				if why := refusedParam(name); why != "" {
					return nil, apierror.New(apierror.BadData, "%s", why)
				}
				continue
			}
			out[name] = append(out[name], vs...)
			if !repeatable && len(out[name]) > 1 {
				return nil, apierror.New(apierror.BadData, "parameter %q given more than once", name)
			}
		}
	}
	audit.From(r.Context()).SetClient(out)
	return out, nil
}

func readBody(r *http.Request, maxBody int64) (url.Values, error) {
	if r.ContentLength == 0 && r.Body == nil {
		return nil, nil
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: only application/x-www-form-urlencoded bodies are accepted", ct)
		}
	}
	if r.ContentLength > maxBody {
		return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", maxBody)
		}
		return nil, apierror.New(apierror.BadData, "reading request body: %v", err)
	}
	if len(body) > 0 && ct == "" {
		return nil, apierror.New(apierror.UnsupportedMedia, "a request body needs Content-Type application/x-www-form-urlencoded")
	}
	vs, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, apierror.New(apierror.BadData, "invalid form body: %v", err)
	}
	return vs, nil
}

// rebuild returns the request to send upstream: the path given, and the
// enforced values as the only parameters, in the URL for GET and in the
// body for POST (long queries do not fit in a URL).
func rebuild(r *http.Request, path string, vs url.Values) *http.Request {
	// A shallow copy with headers of its own: r.Clone would also copy the
	// URL, form and trailers, all replaced or unused here.
	audit.From(r.Context()).SetSent(vs)
	out := r.WithContext(r.Context())
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	out.URL = &url.URL{Path: path}
	out.Form, out.PostForm, out.MultipartForm = nil, nil, nil
	out.TransferEncoding = nil
	enc := vs.Encode()
	if r.Method == http.MethodPost {
		out.Body = io.NopCloser(strings.NewReader(enc))
		out.ContentLength = int64(len(enc))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
		out.Header["Content-Type"] = []string{"application/x-www-form-urlencoded"}
		out.Header["Content-Length"] = []string{strconv.Itoa(len(enc))}
	} else {
		out.URL.RawQuery = enc
		out.Body = http.NoBody
		out.ContentLength = 0
		out.GetBody = nil
		delete(out.Header, "Content-Type")
		delete(out.Header, "Content-Length")
	}
	return out
}
