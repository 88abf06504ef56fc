//go:build !production

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/internal/testenv"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "TestCheckoutInABrowser writes docs/checkout.png and docs/checkout-paid.png")

// runningDev is `chdproxy dev` started in-process on free loopback ports.
type runningDev struct {
	devState
	dir string
}

// startDev runs dev until t ends and waits for its dev.json and listeners.
func startDev(t *testing.T) runningDev {
	t.Helper()
	var args []string
	dir := t.TempDir()
	for _, flag := range []string{"--collect-addr", "--forward-addr", "--admin-addr", "--sandbox-addr", "--demo-addr"} {
		p, err := testenv.FreePort(false)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, flag, fmt.Sprintf("127.0.0.1:%d", p))
	}
	var out, logs testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dev(ctx, append(args, "--state-dir", dir), &out, &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev returned %v, want nil after the context ended", err)
		}
		audit, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
		all := out.String() + logs.String() + string(audit)
		if leak := panIn(all); leak != "" || strings.Contains(all, `"`+testcards.CVV+`"`) {
			t.Errorf("dev's output, logs or audit trail hold %s or the CVV", leak)
		}
	})
	var st devState
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		if err == nil && json.Unmarshal(b, &st) == nil {
			if resp, err := http.Get(st.CheckoutURL); err == nil {
				resp.Body.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev did not come up within 10s: %s", logs.String())
		}
	}
	return runningDev{st, dir}
}

// tokenizeRequests counts the requests POST /v1/tokens that reached the collect
// listener, by their audit records (every keyed request has one).
func (d runningDev) tokenizeRequests(t *testing.T) int {
	t.Helper()
	f, err := os.Open(filepath.Join(d.dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]bool{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var rec struct {
			Event     string `json:"event"`
			Listener  string `json:"listener"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Listener == "collect" && rec.Event == "tokenize" {
			ids[rec.RequestID] = true
		}
	}
	return len(ids)
}

// waitTokenizeRequests waits for the count to reach want (audit records are
// written a moment after the answer), and says what it last was.
func (d runningDev) waitTokenizeRequests(t *testing.T, want int) int {
	t.Helper()
	got := d.tokenizeRequests(t)
	for deadline := time.Now().Add(3 * time.Second); got != want && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got = d.tokenizeRequests(t)
	}
	return got
}

// cardDataIn names the first test PAN (in any spelling a leak might take) or
// CVV (as a number of its own) found in s, or returns "".
func cardDataIn(s string) string {
	if leak := panIn(s); leak != "" {
		return leak
	}
	for _, cvv := range testcards.CVVs {
		if regexp.MustCompile(`(^|[^0-9A-Za-z])` + cvv + `([^0-9A-Za-z]|$)`).MatchString(s) {
			return "a test CVV"
		}
	}
	return ""
}

// panIn names the first test PAN found in s, in any spelling a leak might take.
func panIn(s string) string {
	for _, pan := range testcards.PANs {
		for name, spelled := range testcards.Spellings(pan) {
			if strings.Contains(s, spelled) {
				return "a test PAN (" + name + ")"
			}
		}
		if strings.Contains(s, pan[:4]+" "+pan[4:8]+" "+pan[8:12]) {
			return "a test PAN as the fields group it"
		}
	}
	return ""
}

// instrument records, on the merchant page, everything that could carry card data
// to it: messages to the window and to any MessagePort (sent or received), and
// every keyboard, input and clipboard event that reaches the window. It runs
// before any script of the page (collect.js included).
const instrument = `(() => {
  const rec = window.__chdSeen = [];
  const note = (kind, v) => { try { rec.push(kind + ' ' + (typeof v === 'string' ? v : JSON.stringify(v))); } catch (e) { rec.push(kind + ' [unserializable]'); } };
  const add = EventTarget.prototype.addEventListener;
  const watchPort = (p) => add.call(p, 'message', (e) => note('port-message', e.data));
  const pm = window.postMessage;
  window.postMessage = function (m, ...rest) { note('window.postMessage', m); return pm.call(this, m, ...rest); };
  const ppm = MessagePort.prototype.postMessage;
  MessagePort.prototype.postMessage = function (m, ...rest) { note('port.postMessage', m); return ppm.call(this, m, ...rest); };
  MessagePort.prototype.addEventListener = function (type, ...rest) { if (type === 'message') watchPort(this); return add.call(this, type, ...rest); };
  const onmsg = Object.getOwnPropertyDescriptor(MessagePort.prototype, 'onmessage');
  Object.defineProperty(MessagePort.prototype, 'onmessage', { configurable: true, get() { return onmsg.get.call(this); },
    set(fn) { watchPort(this); onmsg.set.call(this, fn); } });
  add.call(window, 'message', (e) => { note('message', { origin: e.origin, data: e.data }); (e.ports || []).forEach(watchPort); }, true);
  for (const type of ['keydown', 'keypress', 'keyup', 'beforeinput', 'input', 'change', 'paste', 'copy', 'cut', 'compositionend']) {
    add.call(window, type, (e) => note('event-' + type, [e.key, e.data, e.target && e.target.value]), true);
  }
})();`

// seenByPage is all the merchant page holds or heard: the record of instrument,
// its DOM, its storage and its cookies.
const seenByPage = `JSON.stringify({seen: window.__chdSeen || null, dom: document.documentElement.outerHTML,
  local: Object.assign({}, localStorage), session: Object.assign({}, sessionStorage), cookie: document.cookie})`

// pageSaw returns what the merchant page held or heard, and how many keyboard or
// input events reached it.
func pageSaw(t *testing.T, ctx context.Context) (all string, keyEvents int) {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](seenByPage))
	if err != nil {
		t.Fatalf("reading the merchant page: %v", err)
	}
	var v struct{ Seen []string }
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v.Seen == nil {
		t.Fatalf("the page's record is missing (%v): the instrumentation did not run", err)
	}
	for _, s := range v.Seen {
		if strings.HasPrefix(s, "event-") {
			keyEvents++
		}
	}
	return raw, keyEvents
}

// newTab opens a tab of the test's browser with the page instrumented.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: instrument}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// frame waits for the hosted-fields frame of the tab whose URL starts with prefix
// and returns a context acting inside it.
func frame(t *testing.T, tab context.Context, prefix string) context.Context {
	t.Helper()
	fctx, cancel, ok := testenv.FrameTarget(tab, prefix, 10*time.Second)
	if !ok {
		t.Fatalf("no frame from %s appeared on the page", prefix)
	}
	t.Cleanup(cancel)
	if err := testenv.FocusFrame(tab, `iframe[src^="`+prefix+`"]`); err != nil {
		t.Fatal(err)
	}
	return fctx
}

// typeCard types a card into the hosted fields with real key events.
func typeCard(t *testing.T, fctx context.Context, pan, expiry, cvv string) {
	t.Helper()
	if err := chromedp.Do(fctx,
		chromedp.WaitVisible(chromedp.ID("number")),
		chromedp.WaitEnabled(chromedp.ID("holder")), // enabled once the frame checked who frames it
		chromedp.SendKeys(chromedp.ID("number"), pan),
		chromedp.SendKeys(chromedp.ID("expiry"), expiry),
		chromedp.SendKeys(chromedp.ID("cvv"), cvv),
		chromedp.SendKeys(chromedp.ID("holder"), testcards.Holder),
	); err != nil {
		t.Fatalf("typing into the hosted fields: %v", err)
	}
}

// outcome waits for the page's outcome with status and returns its text.
func outcome(t *testing.T, tab context.Context, status string) string {
	t.Helper()
	sel := chromedp.CSS(`#outcome[data-status="` + status + `"]`)
	if err := chromedp.Do(tab, chromedp.WaitVisible(sel)); err != nil {
		got, _ := chromedp.Run(tab, chromedp.Evaluate[string](`(document.getElementById('outcome')||{}).outerHTML + ' ' + (document.getElementById('card-error')||{}).textContent`))
		t.Fatalf("no %s outcome on the page (%v): %s", status, err, got)
	}
	text, err := chromedp.Run(tab, chromedp.Text(sel))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func click(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id))); err != nil {
		t.Fatalf("clicking #%s: %v", id, err)
	}
}

var expiry = testcards.ExpMonth + testcards.ExpYearShort // typed as a shopper does: MMYY

// TestCheckoutInABrowser drives the demo checkout of `chdproxy dev` in headless
// Chromium: the hosted fields in a cross-site frame, collect.js on the merchant
// page, the demo backend paying through the forward listener into the sandbox.
func TestCheckoutInABrowser(t *testing.T) {
	d := startDev(t)
	browser := testenv.Browser(t, 90*time.Second)
	last4 := testcards.Success[len(testcards.Success)-4:]

	t.Run("the success card pays, and the page never holds the card", func(t *testing.T) {
		tab := newTab(t, browser)
		before := d.tokenizeRequests(t)
		if err := chromedp.Do(tab, chromedp.Navigate(d.CheckoutURL)); err != nil {
			t.Fatal(err)
		}
		typeCard(t, frame(t, tab, d.CollectURL+"/"), testcards.Success, expiry, testcards.CVV)
		if n := framesWithInputs(t, tab, d.CollectURL+"/"); n != 1 { // the probe the unregistered page is checked with
			t.Errorf("frames with the card inputs on the registered page: got %d, want 1", n)
		}
		screenshot(t, tab, "checkout.png")
		click(t, tab, "pay")
		if got := outcome(t, tab, "success"); !strings.Contains(got, "Visa •••• "+last4) || !strings.Contains(got, "10.00 EUR") {
			t.Errorf("outcome: got %q, want the brand, last4 and amount", got)
		}
		screenshot(t, tab, "checkout-paid.png")
		if got := d.waitTokenizeRequests(t, before+1); got != before+1 {
			t.Errorf("tokenize requests: got %d, want %d", got, before+1)
		}
		seen, keys := pageSaw(t, tab)
		if leak := cardDataIn(seen); leak != "" || keys != 0 {
			t.Errorf("the merchant page held or heard %q and %d keyboard/input events, want neither", leak, keys)
		}

		t.Run("pay again with the saved card after CVV re-collection", func(t *testing.T) {
			click(t, tab, "pay-again")
			cvv := frame(t, tab, d.CollectURL+"/collect/v1/cvv")
			if err := chromedp.Do(cvv, chromedp.WaitVisible(chromedp.ID("cvv")), chromedp.WaitEnabled(chromedp.ID("cvv")), chromedp.SendKeys(chromedp.ID("cvv"), testcards.CVV)); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById('outcome').dataset.status = 'again', true`)); err != nil {
				t.Fatal(err)
			}
			click(t, tab, "pay-saved")
			if got := outcome(t, tab, "success"); !strings.Contains(got, "Visa •••• "+last4) {
				t.Errorf("second payment: got %q, want a success with the saved card", got)
			}
			seen, keys := pageSaw(t, tab)
			if leak := cardDataIn(seen); leak != "" || keys != 0 {
				t.Errorf("the merchant page held or heard %q and %d keyboard/input events, want neither", leak, keys)
			}
		})

		// The instrumentation catches what it must: a message carrying a PAN is noticed.
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.postMessage({n: '`+testcards.Visa+`'}, '*'), true`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if seen, _ := pageSaw(t, tab); cardDataIn(seen) == "" {
			t.Error("a PAN posted to the page went unnoticed: the instrumentation is blind")
		}
	})

	t.Run("the challenge card goes through the sandbox's 3-D Secure page and back", func(t *testing.T) {
		tab := newTab(t, browser)
		if err := chromedp.Do(tab, chromedp.Navigate(d.CheckoutURL)); err != nil {
			t.Fatal(err)
		}
		typeCard(t, frame(t, tab, d.CollectURL+"/"), testcards.Challenge, expiry, testcards.CVV)
		click(t, tab, "pay")
		challenge := chromedp.CSS(`button[name="decision"][value="success"]`)
		if err := chromedp.Do(tab, chromedp.WaitVisible(challenge)); err != nil {
			t.Fatalf("the sandbox's challenge page did not show: %v", err)
		}
		if url, _ := chromedp.Run(tab, chromedp.Location()); !strings.HasPrefix(url, d.SandboxURL+"/sandbox/challenge/") {
			t.Errorf("challenge page at %q, want the sandbox's", url)
		}
		if err := chromedp.Do(tab, chromedp.Click(challenge)); err != nil {
			t.Fatal(err)
		}
		if got := outcome(t, tab, "success"); !strings.Contains(got, "after 3-D Secure") {
			t.Errorf("outcome: got %q, want a success after 3-D Secure", got)
		}
		if url, _ := chromedp.Run(tab, chromedp.Location()); !strings.HasPrefix(url, strings.TrimSuffix(d.CheckoutURL, "/")+"/return?") {
			t.Errorf("back at %q, want the demo's return URL", url)
		}
	})

	t.Run("invalid input shows errors in the frame and sends nothing", func(t *testing.T) {
		tab := newTab(t, browser)
		before := d.tokenizeRequests(t)
		if err := chromedp.Do(tab, chromedp.Navigate(d.CheckoutURL)); err != nil {
			t.Fatal(err)
		}
		fields := frame(t, tab, d.CollectURL+"/")
		typeCard(t, fields, testcards.BadLuhn, "0120", testcards.CVV) // a bad check digit, January 2020
		click(t, tab, "pay")
		if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS(`#card-error:not(:empty)`))); err != nil {
			t.Fatalf("the page showed no refusal: %v", err)
		}
		for _, id := range []string{"number", "expiry"} {
			invalid, err := chromedp.Run(fields, chromedp.Evaluate[string](`document.getElementById('`+id+`').getAttribute('aria-invalid') + ' ' +
				(document.getElementById(document.getElementById('`+id+`').getAttribute('aria-describedby') || '') || {textContent: ''}).textContent.trim()`))
			if err != nil || !strings.HasPrefix(invalid, "true ") || len(invalid) <= len("true ") {
				t.Errorf("#%s: got %q (%v), want aria-invalid true and an error message", id, invalid, err)
			}
		}
		if got := d.waitTokenizeRequests(t, before+1); got != before {
			t.Errorf("tokenize requests after invalid input: got %d, want %d (none sent)", got, before)
		}
		// Corrected, the same fields tokenize: the count above was able to move.
		if err := chromedp.Do(fields,
			chromedp.SendKeys(chromedp.ID("number"), kb.End+strings.Repeat(kb.Backspace, 24)+testcards.Success),
			chromedp.SendKeys(chromedp.ID("expiry"), kb.End+strings.Repeat(kb.Backspace, 8)+expiry),
		); err != nil {
			t.Fatal(err)
		}
		click(t, tab, "pay")
		outcome(t, tab, "success")
		if got := d.waitTokenizeRequests(t, before+1); got != before+1 {
			t.Errorf("tokenize requests after correcting: got %d, want %d", got, before+1)
		}
	})

	t.Run("a page on an unregistered origin can neither frame the fields nor get a token", func(t *testing.T) {
		evil := evilShop(t, d)
		tab := newTab(t, browser)
		before := d.tokenizeRequests(t)
		if err := chromedp.Do(tab, chromedp.Navigate(evil), chromedp.WaitReady(chromedp.ID("done"))); err != nil {
			t.Fatal(err)
		}
		// collect.js gives up on a frame that loaded but never said ready (CSP refused it)
		refused := chromedp.Poll[bool](`(window.__chdSeen || []).some((s) => s.startsWith('refused origin_not_allowed'))`, chromedp.WithPollingTimeout(8*time.Second))
		if _, err := chromedp.Run(tab, refused); err != nil {
			seen, _ := pageSaw(t, tab)
			t.Errorf("tokenize() on the unregistered page did not fail with origin_not_allowed (%v): %s", err, seen)
		}
		if n := framesWithInputs(t, tab, d.CollectURL+"/"); n != 0 {
			t.Errorf("%d frames of the hosted fields rendered inputs on an unregistered origin, want 0", n)
		}
		seen, _ := pageSaw(t, tab)
		if strings.Contains(seen, "tok_") {
			t.Errorf("the unregistered page got a token: %s", seen)
		}
		if got := d.waitTokenizeRequests(t, before+1); got != before {
			t.Errorf("tokenize requests: got %d, want %d", got, before)
		}
	})
}

// framesWithInputs counts the frames of the tab from prefix whose document has
// the card number or CVV input. The same probe finds them on the demo page.
func framesWithInputs(t *testing.T, tab context.Context, prefix string) int {
	t.Helper()
	infos, err := chromedp.Targets(tab)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, info := range infos {
		if info.Type != "iframe" || !strings.HasPrefix(info.URL, prefix) {
			continue
		}
		fctx, cancel := chromedp.NewContext(tab, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
		has, err := chromedp.Run(fctx, chromedp.Evaluate[bool](`!!(document.getElementById('number') || document.getElementById('cvv'))`))
		cancel()
		if err == nil && has {
			n++
		}
	}
	return n
}

// evilShop serves, on an origin chdproxy does not know (127.0.0.1, not localhost),
// a page that loads collect.js with the dev merchant's pk_ and mounts the fields,
// and also frames the card page directly claiming the registered origin.
func evilShop(t *testing.T, d runningDev) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	registered := strings.TrimSuffix(d.CheckoutURL, "/")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><div id="card"></div>
<iframe id="direct" src="%[1]s/collect/v1/card?key=%[2]s&origin=%[3]s"></iframe>
<script src="%[1]s/collect.js"></script>
<script>
try {
  const chd = ChdCollect.create({key: '%[2]s', collectOrigin: '%[1]s'});
  const card = chd.mountCard('#card');
  setTimeout(() => card.tokenize().then((t) => { window.__chdSeen.push('token ' + JSON.stringify(t)); },
    (e) => { window.__chdSeen.push('refused ' + (e && e.code)); }), 800);
} catch (e) { window.__chdSeen.push('sdk threw ' + e); }
</script><p id="done">evil</p>`, d.CollectURL, d.PublishableKey, registered)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// screenshot writes docs/NAME from the tab when -update-screenshots is given.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	png, err := chromedp.Run(tab, chromedp.Screenshot(chromedp.CSS("main"))) // the shop's card, frames composited in
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
