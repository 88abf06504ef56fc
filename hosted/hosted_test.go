package hosted

import (
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

const (
	pkA     = "pk_testA"
	originA = "https://shop-a.example"
	originC = "http://127.0.0.1:9000" // merchant A's second origin
	originB = "https://shop-b.example"
	session = "cvs_ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

func testLookup(pk string) ([]string, bool) {
	switch pk {
	case pkA:
		return []string{originA, originC}, true
	case "pk_testB":
		return []string{originB}, true
	}
	return nil, false
}

func testServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range Routes(testLookup) {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, srv *httptest.Server, path string) answer {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func frameURL(kind string, q map[string]string) string {
	v := url.Values{}
	for k, s := range q {
		v.Set(k, s)
	}
	return "/collect/v1/" + kind + "?" + v.Encode()
}

func wantHeaders(t *testing.T, a answer, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := a.header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
}

var inputTag = regexp.MustCompile(`<input id="(\w+)"[^>]*>`)

func inputs(body string) map[string]string {
	out := map[string]string{}
	for _, m := range inputTag.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[0]
	}
	return out
}

func TestCardFrameHasStrictHeadersAndFramedByItsOriginOnly(t *testing.T) {
	srv := testServer(t)
	for _, origin := range []string{originA, originC} {
		a := get(t, srv, frameURL("card", map[string]string{"key": pkA, "origin": origin}))
		if a.status != http.StatusOK {
			t.Fatalf("got %d, want 200", a.status)
		}
		wantCSP := "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'none'; " +
			"base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'; frame-ancestors " + origin
		wantHeaders(t, a, map[string]string{
			"Content-Security-Policy": wantCSP, "Content-Type": "text/html; charset=utf-8",
			"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
			"Cross-Origin-Resource-Policy": "cross-origin", "Permissions-Policy": permissionsPolicy,
		})
		csp := a.header.Get("Content-Security-Policy")
		if strings.Contains(csp, "*") || strings.Contains(csp, "unsafe") || strings.Count(csp, "frame-ancestors") != 1 {
			t.Errorf("CSP %q has a wildcard, an unsafe source or several frame-ancestors", csp)
		}
		for _, other := range []string{originA, originC, originB} {
			if other != origin && strings.Contains(csp, other) {
				t.Errorf("CSP of the frame for %s names %s", origin, other)
			}
		}
		if !strings.Contains(a.body, `data-origin="`+origin+`"`) || !strings.Contains(a.body, `data-key="`+pkA+`"`) {
			t.Error("the frame does not carry its key and origin")
		}
	}
}

func TestCardFrameFieldsAreLabelledAndAutocompleted(t *testing.T) {
	srv := testServer(t)
	a := get(t, srv, frameURL("card", map[string]string{"key": pkA, "origin": originA}))
	want := map[string][]string{
		"number": {`autocomplete="cc-number"`, `inputmode="numeric"`},
		"expiry": {`autocomplete="cc-exp"`, `inputmode="numeric"`, `placeholder="MM / YY"`},
		"cvv":    {`autocomplete="cc-csc"`, `inputmode="numeric"`},
		"holder": {`autocomplete="cc-name"`},
	}
	got := inputs(a.body)
	if len(got) != len(want) {
		t.Fatalf("got inputs %v, want number, expiry, cvv, holder", got)
	}
	for id, attrs := range want {
		tag := got[id]
		for _, attr := range append(attrs, `aria-describedby="`+id+`-error"`, `aria-invalid="false"`) {
			if !strings.Contains(tag, attr) {
				t.Errorf("input %s: got %s, want %s", id, tag, attr)
			}
		}
		if !strings.Contains(a.body, `<label for="`+id+`">`) || !strings.Contains(a.body, `id="`+id+`-error" role="alert"`) {
			t.Errorf("input %s has no label or no alert element", id)
		}
	}
	if strings.Contains(a.body, "<script>") || strings.Contains(a.body, "style=") || regexp.MustCompile(` on\w+=`).MatchString(a.body) {
		t.Error("the frame has inline script, style or handlers")
	}

	a = get(t, srv, frameURL("card", map[string]string{"key": pkA, "origin": originA, "fields": "number,expiry"}))
	if got := inputs(a.body); len(got) != 2 || got["number"] == "" || got["expiry"] == "" {
		t.Errorf("fields=number,expiry: got inputs %v, want number and expiry", got)
	}
}

func TestFrameRefusedWithoutFields(t *testing.T) {
	srv := testServer(t)
	for name, path := range map[string]string{
		"an unknown key":                         frameURL("card", map[string]string{"key": "pk_nobody", "origin": originA}),
		"no key":                                 frameURL("card", map[string]string{"origin": originA}),
		"another merchant's origin":              frameURL("card", map[string]string{"key": pkA, "origin": originB}),
		"no origin":                              frameURL("card", map[string]string{"key": pkA}),
		"a wildcard origin":                      frameURL("card", map[string]string{"key": pkA, "origin": "*"}),
		"an origin with a path":                  frameURL("card", map[string]string{"key": pkA, "origin": originA + "/"}),
		"an origin with a CSP separator":         frameURL("card", map[string]string{"key": pkA, "origin": originA + "; script-src *"}),
		"the CVV frame for an unknown key":       frameURL("cvv", map[string]string{"key": "pk_nobody", "origin": originA, "session": session}),
		"the CVV frame without session":          frameURL("cvv", map[string]string{"key": pkA, "origin": originA}),
		"the CVV frame with a malformed session": frameURL("cvv", map[string]string{"key": pkA, "origin": originA, "session": "cvs_<b>"}),
	} {
		t.Run(name, func(t *testing.T) {
			a := get(t, srv, path)
			if a.status != http.StatusForbidden && a.status != http.StatusBadRequest {
				t.Errorf("got %d, want 403 or 400", a.status)
			}
			wantHeaders(t, a, map[string]string{"Content-Security-Policy": RefusedCSP, "X-Frame-Options": "DENY", "Cache-Control": "no-store"})
			if strings.Contains(a.body, "<input") || strings.Contains(a.body, "<script") || strings.Contains(a.body, "pk_") {
				t.Errorf("the refusal page has fields, script or the key: %s", a.body)
			}
		})
	}
}

func TestCVVFrameHasOnlyTheCVVField(t *testing.T) {
	srv := testServer(t)
	a := get(t, srv, frameURL("cvv", map[string]string{"key": pkA, "origin": originA, "session": session}))
	if a.status != http.StatusOK {
		t.Fatalf("got %d, want 200", a.status)
	}
	if got := inputs(a.body); len(got) != 1 || !strings.Contains(got["cvv"], `autocomplete="cc-csc"`) {
		t.Errorf("got inputs %v, want the CVV alone", got)
	}
	if !strings.Contains(a.body, `data-mode="cvv"`) || !strings.Contains(a.body, `data-session="`+session+`"`) {
		t.Error("the CVV frame does not carry its mode and session")
	}
	wantHeaders(t, a, map[string]string{"Content-Security-Policy": FrameCSP(originA)})
}

func TestStaticAssets(t *testing.T) {
	srv := testServer(t)
	const js = "text/javascript; charset=utf-8"
	for _, tc := range []struct {
		path, ct, cache, corp, acao string
		body                        []byte
	}{
		{"/collect.js", js, "public, max-age=300", "cross-origin", "*", collectJS},
		{"/collect/v1/collect.js", js, "public, max-age=300", "cross-origin", "*", collectJS},
		{"/collect/v1.0.0/collect.js", js, "public, max-age=31536000, immutable", "cross-origin", "*", collectJS},
		{"/collect/v1/collect.d.ts", "application/typescript; charset=utf-8", "public, max-age=300", "cross-origin", "*", collectDTS},
		{"/collect/v1.0.0/collect.d.ts", "application/typescript; charset=utf-8", "public, max-age=31536000, immutable", "cross-origin", "*", collectDTS},
		{"/collect/v1/frame.js", js, "public, max-age=300", "same-origin", "", frameJS},
		{"/collect/v1/frame.css", "text/css; charset=utf-8", "public, max-age=300", "same-origin", "", frameCSS},
	} {
		a := get(t, srv, tc.path)
		if a.status != http.StatusOK || a.body != string(tc.body) {
			t.Errorf("%s: got %d and %d bytes, want 200 and the asset", tc.path, a.status, len(a.body))
		}
		wantHeaders(t, a, map[string]string{"Content-Type": tc.ct, "Cache-Control": tc.cache, "X-Content-Type-Options": "nosniff",
			"Cross-Origin-Resource-Policy": tc.corp, "Access-Control-Allow-Origin": tc.acao})
	}
}

// The README publishes the pinned URL with collect.js's SRI hash: a changed
// collect.js without a new hash (and version) there fails here.
func TestReadmePublishesCollectJSIntegrity(t *testing.T) {
	sum := sha512.Sum384(collectJS)
	want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
	if SRI() != want {
		t.Fatalf("SRI() = %q, want %q", SRI(), want)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	line := `/collect/v` + Version + `/collect.js" integrity="` + want + `" crossorigin="anonymous"`
	if !strings.Contains(string(readme), line) {
		t.Fatalf("README.md does not publish collect.js %s with integrity %s; put this in its Hosted fields section:\n%s", Version, want, line)
	}
	if !strings.Contains(string(collectJS), "var VERSION = '"+Version+"';") || !strings.Contains(string(collectDTS), "collect.js "+Version) {
		t.Fatalf("collect.js or collect.d.ts does not say version %s", Version)
	}
}
