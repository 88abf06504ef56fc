package testenv

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumBin is the browser of the browser tests: $CHDPROXY_CHROMIUM, else
// chromium (Debian's package) or google-chrome on PATH; "" when none is found.
func ChromiumBin() string {
	if bin := os.Getenv("CHDPROXY_CHROMIUM"); bin != "" {
		return bin
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser starts a headless Chromium for t, in a fresh empty profile, and
// returns the context of its first tab; the browser stops when t ends, and
// every action on the context fails after timeout. Without a browser t is
// skipped, or fails under CI=true (.ci/run installs Debian's chromium).
//
// The flags keep the browser off the network and quiet: nothing but the test's
// own loopback servers is reached. Site isolation stays on, as for a shopper,
// so a frame from another site is its own target (see FrameTarget).
func Browser(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	bin := ChromiumBin()
	if bin == "" {
		missing(t, "chromium not found (set CHDPROXY_CHROMIUM or install Debian's chromium)")
		return nil
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // containers and CI run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1000, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelTab := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser now, so its failure is the test's
		t.Fatalf("testenv: starting %s: %v", bin, err)
	}
	return ctx
}

// FrameTarget waits until the tab of ctx has a frame target (a cross-site iframe,
// which runs in its own process) whose URL starts with prefix, and returns a
// context that runs actions inside it, and its cancel (which detaches, leaving
// the frame alone). ok is false when none appeared in wait.
func FrameTarget(ctx context.Context, prefix string, wait time.Duration) (_ context.Context, _ context.CancelFunc, ok bool) {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			return nil, nil, false
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, prefix) {
				fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel()) // closing a frame target closes its tab
				return fctx, cancel, true
			}
		}
	}
	return nil, nil, false
}

// FocusFrame gives the keyboard to the frame element selector matches in the tab's
// page. Keys sent into a frame of another site (its own renderer) reach it only
// while the page's focus is on that frame; without it the first key can take the
// focus back to the page and the rest are lost.
func FocusFrame(tab context.Context, selector string) error {
	_, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(() => { const f = document.querySelector(`+strconv.Quote(selector)+`); if (!f) return false; f.focus(); return true })()`))
	return err
}
