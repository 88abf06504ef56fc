// Package hosted serves chdproxy's hosted card fields on the collect listener:
// collect.js (the SDK a merchant page loads, pinned with Subresource Integrity),
// its TypeScript declarations, and the field frames it mounts.
//
// One frame holds the whole card group (number, expiry, CVV, holder) and a
// CVV-only mode re-collects a CVV for a card on file. One frame, not one per
// field: the frame that tokenizes holds every value, so no card value ever
// crosses a frame boundary (a frame per field would have to pass the number and
// CVV between frames, each one more postMessage channel to verify), and there is
// one frame to check against its embedder. The frame posts the card to
// /v1/tokens on its own origin and tells the merchant page only the field
// states and the token with its metadata.
//
// A frame answers only to the origin it was loaded for, which must be one its
// publishable key's merchant registered: CSP frame-ancestors names exactly that
// origin, and the frame's script exchanges messages with that origin only. An
// unknown key or an unregistered origin gets a page without fields that no one
// may frame.
package hosted

import (
	"bytes"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/chdproxy/chdproxy/vault"
)

// Version is collect.js's version; /collect/v{Version}/collect.js never changes.
const Version = "1.0.0"

var (
	//go:embed assets/collect.js
	collectJS []byte
	//go:embed assets/collect.d.ts
	collectDTS []byte
	//go:embed assets/frame.js
	frameJSSource []byte
	//go:embed assets/frame.css
	frameCSS []byte
	//go:embed assets/frame.html
	frameHTML string
	//go:embed assets/refused.html
	refusedHTML []byte

	frameJS   = append(brandsJS(), frameJSSource...)
	frameTmpl = template.Must(template.New("frame").Parse(frameHTML))
)

// SRI is collect.js's Subresource Integrity value ("sha384-…"), as README publishes it.
func SRI() string {
	sum := sha512.Sum384(collectJS)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Lookup returns the registered browser origins of the merchant of publishable key
// pk; ok is false when pk is not a valid publishable key.
type Lookup func(pk string) (origins []string, ok bool)

// Route is one route of the hosted fields, for the collect listener's router.
type Route struct {
	Method, Path, Name string
	Handler            http.Handler
}

// Routes are the hosted-field routes; lookup resolves a frame's publishable key.
func Routes(lookup Lookup) []Route {
	const js, ts = "text/javascript; charset=utf-8", "application/typescript; charset=utf-8"
	pin := "/collect/v" + Version
	return []Route{
		{http.MethodGet, "/collect.js", "collect_js", static(collectJS, js, cacheShort, true)},
		{http.MethodGet, "/collect/v1/collect.js", "collect_js_v1", static(collectJS, js, cacheShort, true)},
		{http.MethodGet, pin + "/collect.js", "collect_js_pinned", static(collectJS, js, cachePinned, true)},
		{http.MethodGet, "/collect/v1/collect.d.ts", "collect_dts_v1", static(collectDTS, ts, cacheShort, true)},
		{http.MethodGet, pin + "/collect.d.ts", "collect_dts_pinned", static(collectDTS, ts, cachePinned, true)},
		{http.MethodGet, "/collect/v1/frame.js", "hosted_frame_js", static(frameJS, js, cacheShort, false)},
		{http.MethodGet, "/collect/v1/frame.css", "hosted_frame_css", static(frameCSS, "text/css; charset=utf-8", cacheShort, false)},
		{http.MethodGet, "/collect/v1/card", "hosted_card_frame", frameHandler(lookup, "card")},
		{http.MethodGet, "/collect/v1/cvv", "hosted_cvv_frame", frameHandler(lookup, "cvv")},
	}
}

const (
	cacheShort  = "public, max-age=300"
	cachePinned = "public, max-age=31536000, immutable" // a versioned path never changes
)

// static serves one of our files. crossOrigin: collect.js and its declarations,
// public files any page reads with CORS (crossorigin="anonymous" is what lets the
// browser check the SRI hash); otherwise the frame's own script and style, which
// only our frame loads.
func static(body []byte, ct, cache string, crossOrigin bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", cache)
		if crossOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		} else {
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
		}
		_, _ = w.Write(body)
	})
}

// safeOrigin is a serialised origin that can stand in a CSP header as it is:
// scheme, host and optional port, nothing else.
var safeOrigin = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$`)

// permissionsPolicy turns off the powerful features; the frame needs none.
const permissionsPolicy = "accelerometer=(), autoplay=(), camera=(), display-capture=(), fullscreen=(), geolocation=(), " +
	"gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), usb=()"

// FrameCSP is the Content-Security-Policy of a field frame loaded for origin: its
// own script, style and API only (styles come through the CSSOM, which
// style-src 'self' allows, never inline), no form submission, no base URL, DOM
// sinks closed by Trusted Types, and framed by origin alone.
func FrameCSP(origin string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'none'; " +
		"base-uri 'none'; require-trusted-types-for 'script'; trusted-types 'none'; frame-ancestors " + origin
}

// RefusedCSP is the policy of the page served instead of fields: nothing loads and
// no one may frame it.
const RefusedCSP = "default-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

type frameData struct {
	Mode, Key, Origin, Session string
	CVV, Holder                bool
}

// frameHandler serves the card or CVV frame for ?key=pk_…&origin=<page origin>
// (and &session=cvs_… for the CVV frame). frame-ancestors names that one origin,
// not all of the merchant's: the frame talks to the origin it was loaded for, so
// it must not render under any other.
func frameHandler(lookup Lookup, mode string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		key, origin := q.Get("key"), q.Get("origin")
		origins, ok := lookup(key)
		if !ok || !safeOrigin.MatchString(origin) || !slices.Contains(origins, origin) {
			refuse(w, http.StatusForbidden)
			return
		}
		d := frameData{Mode: mode, Key: key, Origin: origin, CVV: true}
		if mode == "cvv" {
			if d.Session = q.Get("session"); !vault.ValidCVVSessionID(d.Session) {
				refuse(w, http.StatusBadRequest)
				return
			}
		} else if f := q.Get("fields"); f != "" {
			list := strings.Split(f, ",")
			d.CVV, d.Holder = slices.Contains(list, "cvv"), slices.Contains(list, "holder")
		} else {
			d.Holder = true
		}
		var b bytes.Buffer
		if err := frameTmpl.Execute(&b, d); err != nil {
			refuse(w, http.StatusInternalServerError)
			return
		}
		frameHeaders(w, FrameCSP(origin))
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		_, _ = w.Write(b.Bytes())
	})
}

// frameHeaders are the headers of every frame document, fields or not.
func frameHeaders(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Permissions-Policy", permissionsPolicy)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// refuse serves the page without fields: an unknown key, an origin its merchant did
// not register, a malformed session.
func refuse(w http.ResponseWriter, status int) {
	frameHeaders(w, RefusedCSP)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cross-Origin-Resource-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(refusedHTML)
}
