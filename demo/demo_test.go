package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

const (
	testToken = "tok_0123456789abcdefABCDEF"
	testPK    = "pk_test_publishable"
	testSK    = "sk_test_secret_never_in_the_page"
)

// fakeForward stands for chdproxy's forward listener and the sandbox behind it:
// it records what arrived and answers what the test set for initPaymentHost2Host.
type fakeForward struct {
	mu       sync.Mutex
	got      []string         // "METHOD path proxy-auth basic-auth body"
	payment  string           // the answer to initPaymentHost2Host
	checkAns string           // the answer to /check
	bodies   []map[string]any // the initPaymentHost2Host bodies
}

func (f *fakeForward) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Proxy-Authorization")+" "+r.Header.Get("Authorization"))
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/tokens/"+testToken:
		io.WriteString(w, `{"token":"`+testToken+`","kind":"card","card":{"bin":"401200","last4":"3010","brand":"visa"}}`)
	case r.URL.Path == "/initPaymentHost2Host":
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		f.bodies = append(f.bodies, m)
		io.WriteString(w, f.payment)
	case r.URL.Path == "/check":
		io.WriteString(w, f.checkAns)
	case r.URL.Path == "/v1/tokens/"+testToken+"/cvv-sessions":
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"session":"cvs_abc","expires_at":"2030-01-01T00:00:00Z"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"token_not_found","message":"no such token"}}`)
	}
}

// shop starts the demo on a test server, as dev does, in front of fwd.
func shop(t *testing.T, fwd *fakeForward) (*httptest.Server, *http.Client) {
	t.Helper()
	upstream := httptest.NewServer(fwd)
	t.Cleanup(upstream.Close)
	srv := httptest.NewUnstartedServer(nil)
	d, err := New(Config{
		Origin: "http://" + srv.Listener.Addr().String(), CollectURL: "http://127.0.0.1:8080", ForwardURL: upstream.URL,
		PublishableKey: testPK, SecretKey: testSK, UpstreamAuth: "Basic dGVzdDpxd2VydHk=", Account: "EUR-sandbox",
		ScriptPath: "/collect/v1.0.0/collect.js", Integrity: "sha384-abc", Log: logrus.New(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = d
	srv.Start()
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(srv.URL + "/") // the shopper opens the checkout: a customer cookie
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return srv, c
}

func call(t *testing.T, c *http.Client, srv *httptest.Server, path, origin, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestThePageGetsThePublishableKeyAndAStrictCSPNeverTheSecretKey
func TestThePageGetsThePublishableKeyAndAStrictCSPNeverTheSecretKey(t *testing.T) {
	srv, c := shop(t, &fakeForward{})
	resp, err := c.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	want := "default-src 'none'; script-src 'self' http://127.0.0.1:8080; frame-src http://127.0.0.1:8080; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	if got := resp.Header.Get("Content-Security-Policy"); got != want {
		t.Errorf("CSP: got %q, want %q", got, want)
	}
	for _, s := range []string{testPK, `src="http://127.0.0.1:8080/collect/v1.0.0/collect.js" integrity="sha384-abc" crossorigin="anonymous"`, `data-collect-origin="http://127.0.0.1:8080"`} {
		if !strings.Contains(page, s) {
			t.Errorf("the page lacks %s", s)
		}
	}
	if strings.Contains(page, testSK) || strings.Contains(page, "<script>") {
		t.Errorf("the page holds the secret key or an inline script:\n%s", page)
	}
}

// TestPayingWithATokenGivesTheOutcomeAndKeepsTheCardOnTheServer covers the three
// answers of initPaymentHost2Host the sandbox gives.
func TestPayingWithATokenGivesTheOutcomeAndKeepsTheCardOnTheServer(t *testing.T) {
	for _, tt := range []struct{ name, answer, status, detail, redirect string }{
		{"a success is shown with brand and last4", `{"status":2,"responseType":"SUCCESS"}`, "success", "Visa •••• 3010 paid 10.00 EUR.", ""},
		{"a decline shows its code", `{"status":-1,"responseType":"FAIL","err":"PLATFORM_ERROR_GATE_NOT_FOUND"}`, "declined", "Visa •••• 3010: PLATFORM_ERROR_GATE_NOT_FOUND.", ""},
		{"a challenge sends the shopper to the bank's page", `{"status":1,"responseType":"REDIRECT","form_url":"http://127.0.0.1:8083/sandbox/challenge/abc"}`, "redirect", "Your bank asks you to confirm the payment.", "http://127.0.0.1:8083/sandbox/challenge/abc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fwd := &fakeForward{payment: tt.answer}
			srv, c := shop(t, fwd)
			status, got := call(t, c, srv, "/api/pay", srv.URL, `{"token":"`+testToken+`"}`)
			if status != http.StatusOK || got["status"] != tt.status || got["detail"] != tt.detail || (got["redirect"] != nil) != (tt.redirect != "") {
				t.Fatalf("got %d %v, want status %q, detail %q", status, got, tt.status, tt.detail)
			}
			if len(fwd.bodies) != 1 || fwd.bodies[0]["card_number"] != testToken || fwd.bodies[0]["card_cvv"] != testToken ||
				!strings.HasPrefix(fwd.bodies[0]["success_url"].(string), srv.URL+"/return?order=demo-") {
				t.Errorf("initPaymentHost2Host body: got %v, want the token as card_number and card_cvv and a return URL on the demo", fwd.bodies)
			}
			for _, g := range fwd.got {
				if !strings.Contains(g, " Bearer "+testSK+" Basic dGVzdDpxd2VydHk=") {
					t.Errorf("forward call %q: want the secret key in Proxy-Authorization and the merchant's Basic auth", g)
				}
			}
			if saved, _ := got["saved"].(map[string]any); (tt.status == "success") != (saved != nil) || (saved != nil && saved["token"] != nil) {
				t.Errorf("saved: got %v, want brand and last4 after a success only, never the token id", got["saved"])
			}
		})
	}
}

// TestTheBackendRefusesOtherOriginsAndAnythingButATokenID: a page elsewhere cannot
// make the shop pay, and a card number never leaves the backend.
func TestTheBackendRefusesOtherOriginsAndAnythingButATokenID(t *testing.T) {
	fwd := &fakeForward{payment: `{"status":2}`}
	srv, c := shop(t, fwd)
	for _, tt := range []struct{ name, origin, body, code string }{
		{"another origin", "http://evil.example", `{"token":"` + testToken + `"}`, "origin_not_allowed"},
		{"no origin", "", `{"token":"` + testToken + `"}`, "origin_not_allowed"},
		{"a card number instead of a token", srv.URL, `{"token":"4012000000003010"}`, "invalid_request"},
		{"another merchant's or an unknown token", srv.URL, `{"token":"tok_unknownunknownunknown"}`, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, got := call(t, c, srv, "/api/pay", tt.origin, tt.body)
			if e, _ := got["error"].(map[string]any); status < 400 || e["code"] != tt.code {
				t.Errorf("got %d %v, want the code %s", status, got, tt.code)
			}
		})
	}
	if len(fwd.bodies) != 0 {
		t.Errorf("got %d payments, want none", len(fwd.bodies))
	}
}

// TestTheChallengeReturnAsksCheckAndSavesTheCardThenPayAgainUsesACVVSession
func TestTheChallengeReturnAsksCheckAndSavesTheCardThenPayAgainUsesACVVSession(t *testing.T) {
	fwd := &fakeForward{payment: `{"status":1,"responseType":"REDIRECT","form_url":"http://127.0.0.1:8083/sandbox/challenge/abc"}`, checkAns: `{"status":2}`}
	srv, c := shop(t, fwd)
	if status, got := call(t, c, srv, "/api/saved/cvv-session", srv.URL, `{}`); status != http.StatusNotFound {
		t.Fatalf("CVV session before any card: got %d %v, want 404 no_saved_card", status, got)
	}
	call(t, c, srv, "/api/pay", srv.URL, `{"token":"`+testToken+`"}`)
	back, _ := url.Parse(fwd.bodies[0]["success_url"].(string))
	resp, err := c.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `data-status="success"`) || !strings.Contains(string(page), "after 3-D Secure") {
		t.Fatalf("return page: want a success after the challenge, got\n%s", page)
	}
	resp, _ = c.Get(back.String()) // the same return URL again: the order was settled
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `data-status="failed"`) {
		t.Errorf("a second return: want unknown order, got\n%s", page)
	}

	status, got := call(t, c, srv, "/api/saved/cvv-session", srv.URL, `{}`)
	if status != http.StatusOK || got["session"] != "cvs_abc" {
		t.Fatalf("CVV session: got %d %v, want the session of the saved card", status, got)
	}
	fwd.payment = `{"status":2}`
	status, got = call(t, c, srv, "/api/saved/pay", srv.URL, `{}`)
	if status != http.StatusOK || got["status"] != "success" || fwd.bodies[1]["card_number"] != testToken {
		t.Fatalf("pay again: got %d %v (sent %v), want a success with the saved token", status, got, fwd.bodies[1])
	}
}
