package testenv

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserTypesIntoACrossSiteFrame: the launcher starts Chromium, and real key
// events reach an input inside a frame from another site (its own process), which
// is how the checkout tests type into the hosted fields.
func TestBrowserTypesIntoACrossSiteFrame(t *testing.T) {
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><input id="field" autocomplete="off">`)
	}))
	defer inner.Close()
	outer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><p id="outer">merchant</p><iframe src="%s/frame"></iframe>`, inner.URL)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	outer.Listener = ln
	outer.Start()
	defer outer.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	ctx := Browser(t, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://localhost:"+port+"/"), chromedp.WaitVisible(chromedp.ID("outer"))); err != nil {
		t.Fatal(err)
	}
	fctx, cancel, ok := FrameTarget(ctx, inner.URL+"/frame", 10*time.Second)
	if !ok {
		t.Fatal("the cross-site frame never became a target")
	}
	defer cancel()
	if err := FocusFrame(ctx, "iframe"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(fctx, chromedp.WaitVisible(chromedp.ID("field")), chromedp.SendKeys(chromedp.ID("field"), "4242 typed")); err != nil {
		t.Fatal(err)
	}
	// Key events are acknowledged before the renderer has applied them all: wait for it.
	typed := `document.getElementById("field").value === "4242 typed"`
	if _, err := chromedp.Run(fctx, chromedp.Poll[bool](typed, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		got, _ := chromedp.Run(fctx, chromedp.Value(chromedp.ID("field")))
		t.Fatalf("got %q (%v), want the typed text in the frame's input", got, err)
	}
	outerValue, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil || len(outerValue) == 0 {
		t.Fatalf("reading the outer page: %v", err)
	}
}
