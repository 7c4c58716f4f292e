package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium driven over the DevTools protocol
// (chromedp), for the tests that use a UI as a person would: load a page,
// wait until its scripts have rendered what they fetched, type, click, and
// take screenshots. It records every HTTP answer of 400 or more and every
// uncaught exception of the page, so that a test can say nothing broke.
//
// A browser reports to the test that it is bound to; in(t) binds it to a
// subtest.
type browser struct {
	t testing.TB
	*tab
}

// tab is the browser's page, shared by its bindings.
type tab struct {
	ctx     context.Context
	name    string // prefix of its screenshots
	timeout time.Duration

	mu       sync.Mutex
	failures []string // "STATUS URL" of answers >= 400, and page exceptions
}

// in returns the browser reporting to t.
func (b *browser) in(t testing.TB) *browser { return &browser{t: t, tab: b.tab} }

// newBrowser starts Chromium for the test; headers are sent with every
// request of its pages (the credentials, never in the URL: Chromium does not
// reuse URL credentials for a page's own fetch calls).
func newBrowser(t *testing.T, name string, headers map[string]string) *browser {
	t.Helper()
	bin := requireTool(t, "chromium")
	// Without the background-networking flags, Chromium's own connections
	// to the outside are refused by a closed network and it stalls.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t, tab: &tab{name: name, timeout: 30 * time.Second}}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.record))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b.ctx = ctx
	h := network.Headers{}
	for k, v := range headers {
		h[k] = v
	}
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	}))
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// record runs in the tab's event loop: it must return fast.
func (b *tab) record(ev any) {
	var f string
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			f = fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL)
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		f = "exception: " + d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			f += " " + d.Exception.Description
		}
	}
	if f != "" {
		b.mu.Lock()
		b.failures = append(b.failures, f)
		b.mu.Unlock()
	}
}

// takeFailures returns what failed since the last call.
func (b *tab) takeFailures() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.failures
	b.failures = nil
	return f
}

// run runs actions with the browser's timeout, failing the test with what
// the page showed when they fail.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage: %s\nfailed requests: %v", what, err, truncate(b.bodyText(), 1500), b.takeFailures())
	}
}

// open loads url in a new document and waits until it has loaded; the
// page's own API calls may still be running. (Going from a page to the
// same one with another #fragment would keep the page's state.)
func (b *browser) open(url string) {
	b.t.Helper()
	b.run("leaving the page", chromedp.Navigate("about:blank"))
	b.takeFailures()
	b.run("loading "+url, chromedp.Navigate(url))
}

// eval evaluates a JavaScript expression in the page; a promise is
// awaited.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// bodyText is what the page shows as text, or "" when it cannot be read.
func (b *tab) bodyText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// waitFor waits until the JavaScript expression is truthy.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage: %s\nfailed requests: %v", what, err, truncate(b.bodyText(), 1500), b.takeFailures())
	}
}

// waitText waits until the page's text holds every one of want, and
// returns that text.
func (b *browser) waitText(want ...string) string {
	b.t.Helper()
	var conds []string
	for _, w := range want {
		conds = append(conds, fmt.Sprintf("document.body.innerText.includes(%s)", jsString(w)))
	}
	b.waitFor(fmt.Sprintf("the page to show %q", want), "document.body && "+strings.Join(conds, " && "))
	return b.bodyText()
}

// settle waits until the page has not changed for quiet (its fetches
// answered and rendered), at most the browser's timeout.
func (b *browser) settle(quiet time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(b.timeout)
	last, since := b.bodyText(), time.Now()
	for time.Since(since) < quiet && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if cur := b.bodyText(); cur != last {
			last, since = cur, time.Now()
		}
	}
}

// screenshot saves the whole page as <name>-<shot>.png among the
// artifacts, logged by t.
func (b *tab) screenshot(t testing.TB, shot string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", shot, err)
		return
	}
	path := filepath.Join(artifactsDir(t), b.name+"-"+shot+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", shot, err)
		return
	}
	t.Logf("screenshot %s", path)
}

// artifactsDir is where tests leave screenshots: $PROMGATE_E2E_ARTIFACTS, or
// e2e/artifacts.
func artifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PROMGATE_E2E_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`)
	return `"` + r.Replace(s) + `"`
}

// unexpected returns the failures that match none of the allowed
// substrings.
func unexpected(failures []string, allowed ...string) []string {
	return slices.DeleteFunc(slices.Clone(failures), func(f string) bool {
		return slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(f, a) })
	})
}
