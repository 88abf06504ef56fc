package proxy_test

// The harness's clients, request bodies and assertions (harness_test.go builds
// the proxy they talk to).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// testClient plays the browser and the backend: no proxy from the environment,
// no compression, and no redirect followed, so a test sees exactly what the
// proxy answered.
var testClient = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// headers are request headers: a "" value removes a header set by default, and
// "Host" sets the request's Host.
type headers = map[string]string

// withHeaders sets hdr's headers in all and returns it.
func withHeaders(all, hdr headers) headers {
	for k, v := range hdr {
		all[k] = v
	}
	return all
}

// response is one answer a test received, and how long it took.
type response struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

// code returns the stable error code of an error body, or "".
func (r *response) code() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// object decodes a JSON object body.
func (r *response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object (status %d): %v", r.status, err)
	}
	return m
}

// record keeps an answer (headers and body) for assertNoCardData.
func (h *harness) record(b []byte) {
	h.mu.Lock()
	h.seen = append(h.seen, b)
	h.mu.Unlock()
}

// dumpResponse is an answer as the card-data check reads it: header, then body.
func dumpResponse(header http.Header, body []byte) []byte {
	var dump bytes.Buffer
	header.Write(&dump)
	dump.Write(body)
	return dump.Bytes()
}

// do sends one request and records the answer. body is nil, a string, []byte,
// url.Values (sent form-encoded), or anything else (sent as JSON).
func (h *harness) do(t testing.TB, method, rawURL string, body any, hdr headers) *response {
	t.Helper()
	var b []byte
	ct := "application/json"
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case url.Values:
		b, ct = []byte(v.Encode()), "application/x-www-form-urlencoded"
	default:
		b = mustJSON(t, v)
	}
	if body != nil && b == nil {
		b = []byte{}
	}
	r, err := h.send(method, rawURL, b, ct, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

// send is do for any goroutine: it reports errors instead of failing a test. A
// nil body sends none; a body goes with contentType unless hdr names another.
func (h *harness) send(method, rawURL string, body []byte, contentType string, hdr headers) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		switch {
		case strings.EqualFold(k, "Host"):
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	start := time.Now()
	resp, err := testClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	h.record(dumpResponse(resp.Header, b))
	return &response{status: resp.StatusCode, header: resp.Header, body: b, elapsed: time.Since(start)}, nil
}

// bearer is an Authorization header with merchant's key of role.
func (h *harness) bearer(merchant string, role proxy.Role) headers {
	return headers{"Authorization": "Bearer " + h.keys[merchant][role]}
}

// col posts body to the collect listener with merchant's publishable key.
func (h *harness) col(t testing.TB, merchant string, body any, hdr headers) *response {
	t.Helper()
	return h.do(t, http.MethodPost, h.collect+"/v1/tokens", body, withHeaders(h.bearer(merchant, proxy.RolePublishable), hdr))
}

// fwd calls the forward listener as merchant's backend: its sk_ key in
// Proxy-Authorization, the SmartPayments Basic credentials in Authorization.
func (h *harness) fwd(t testing.TB, merchant, method, path string, body any, hdr headers) *response {
	t.Helper()
	return h.do(t, method, h.forward+path, body, h.fwdHeaders(merchant, hdr))
}

// fwdSend is fwd for any goroutine.
func (h *harness) fwdSend(merchant, method, path string, body []byte, hdr headers) (*response, error) {
	return h.send(method, h.forward+path, body, "application/json", h.fwdHeaders(merchant, hdr))
}

// fwdHeaders are merchant's backend credentials, with hdr's headers added.
func (h *harness) fwdHeaders(merchant string, hdr headers) headers {
	return withHeaders(headers{
		"Proxy-Authorization": "Bearer " + h.keys[merchant][proxy.RoleSecret],
		"Authorization":       testcards.BasicAuth,
	}, hdr)
}

// post posts body to path on the forward listener as merchant A.
func (h *harness) post(t testing.TB, path string, body any) *response {
	t.Helper()
	return h.fwd(t, merchantA, http.MethodPost, path, body, nil)
}

// ---------------------------------------------------------------------------
// Tokens.

// tokenMeta is the collect listener's answer.
type tokenMeta struct {
	Token string `json:"token"`
	Kind  string `json:"kind"`
	Card  *struct {
		BIN      string `json:"bin"`
		Last4    string `json:"last4"`
		Brand    string `json:"brand"`
		ExpMonth string `json:"exp_month"`
		ExpYear  string `json:"exp_year"`
	} `json:"card"`
	Network     string `json:"network"`
	Fingerprint string `json:"fingerprint"`
	HasCVV      bool   `json:"has_cvv"`
	ExpiresAt   string `json:"expires_at"`
}

// tokenize posts fields to the collect listener as merchant and expects 201
// with a token id.
func (h *harness) tokenize(t testing.TB, merchant string, fields map[string]string) tokenMeta {
	t.Helper()
	r := h.col(t, merchant, fields, nil)
	wantStatus(t, r, http.StatusCreated)
	var m tokenMeta
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("tokenize answer: %v", err)
	}
	if !vault.ValidTokenID(m.Token) {
		t.Fatalf("tokenize answer: got token %q, want a tok_ id", m.Token)
	}
	return m
}

// cardFields are the collect fields of a card with CVV, expiry and holder.
func cardFields(pan, cvv string) map[string]string {
	return map[string]string{
		"card_number": pan, "card_exp_month": testcards.ExpMonth, "card_exp_year": testcards.ExpYear,
		"card_cvv": cvv, "card_holder": testcards.Holder,
	}
}

// cardToken tokenizes pan with cvv for merchant A and returns the token id.
func (h *harness) cardToken(t testing.TB, pan, cvv string) string {
	t.Helper()
	return h.tokenize(t, merchantA, cardFields(pan, cvv)).Token
}

// walletToken tokenizes a wallet payload for merchant A.
func (h *harness) walletToken(t testing.TB, method, dpan, network string) string {
	t.Helper()
	prefix := walletPrefix(method)
	return h.tokenize(t, merchantA, map[string]string{
		"payment_method": method, prefix + "dpan": dpan, prefix + "payment_method_network": network,
	}).Token
}

// walletPrefix is the prefix of the collect fields of a wallet payment method.
func walletPrefix(method string) string {
	if method == "googlePayDPan" {
		return "google_pay_"
	}
	return "apple_pay_"
}

// hasCVV asks the forward listener whether merchant's tok still has its CVV.
func (h *harness) hasCVV(t testing.TB, merchant, tok string) bool {
	t.Helper()
	r := h.fwd(t, merchant, http.MethodGet, "/v1/tokens/"+tok, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("token metadata: got %d %q, want 200", r.status, r.code())
	}
	v, _ := r.object(t)["has_cvv"].(bool)
	return v
}

// randomTokenID returns a well-formed token id, as long as like, that was
// never issued.
func randomTokenID(t testing.TB, like string) string {
	t.Helper()
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, len(like)-4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	id := "tok_" + string(b)
	if !vault.ValidTokenID(id) {
		t.Fatalf("random token id %q is not well-formed", id)
	}
	return id
}

// ---------------------------------------------------------------------------
// Request bodies.

// orderID returns an order id unique in the harness, without digit runs that
// could be taken for card numbers.
func (h *harness) orderID() string { return orderName("order-", h.orderN.Add(1)) }

// orderName is prefix and n in letters: no digit run that could be taken for
// a card number.
func orderName(prefix string, n int64) string {
	var b strings.Builder
	b.WriteString(prefix)
	for ; n > 0; n /= 26 {
		b.WriteByte(byte('a' + n%26))
	}
	return b.String()
}

// paymentBody is a documented initPaymentHost2Host/authorize request without
// card fields; set adds fields, and a nil value removes one.
func paymentBody(orderID string, set map[string]any) map[string]any {
	m := map[string]any{
		"account": "EUR-sandbox", "amount": 1000, "currency": "EUR", "order_id": orderID,
		"merchant_site": "https://merchant.site", "recurrent": false, "purpose": "description",
		"customer_first_name": "John", "customer_last_name": "Doe",
		"customer_address": "10 Downing Street", "customer_city": "London",
		"customer_zip_code": 121165, "customer_country": "GB",
		"customer_phone": "+442079460612", "customer_email": "john.doe@example.com",
		"customer_ip_address": "127.0.0.1",
		"success_url":         "https://site.com/success", "fail_url": "https://site.com/fail",
		"callback_url": "https://site.com/callback", "status_url": "https://site.com/redir",
	}
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

// cardPayment is a card payment naming tok for the PAN and the CVV.
func cardPayment(orderID, tok string) map[string]any {
	return paymentBody(orderID, map[string]any{"payment_method": "card", "card_number": tok, "card_cvv": tok})
}

// mustJSON marshals v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withRaw returns the JSON of the object v with raw appended as further
// members (`"k":v,...` text written by hand: duplicates, escapes, odd values).
func withRaw(t testing.TB, v any, raw string) []byte {
	t.Helper()
	b := mustJSON(t, v)
	return append(append(b[:len(b)-1], ","+raw...), '}')
}

// ---------------------------------------------------------------------------
// What the upstream and Redis hold.

// received returns what the sandbox received on path, decoded.
func (h *harness) received(t testing.TB, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range h.sandbox.Received(path) {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("the sandbox received a body that is not JSON on %s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

// upstreamCalls counts what the sandbox received on path ("" for all).
func (h *harness) upstreamCalls(path string) int {
	if h.sandbox == nil {
		return 0
	}
	return len(h.sandbox.Received(path))
}

// checkStatus asks /check through the forward listener's passthrough.
func (h *harness) checkStatus(t testing.TB, orderID string) float64 {
	t.Helper()
	r := h.post(t, "/check", map[string]any{"order_id": orderID})
	wantStatus(t, r, http.StatusOK)
	st, ok := r.object(t)["status"].(float64)
	if !ok {
		t.Fatalf("check: no numeric status")
	}
	return st
}

// redisKeys returns every key in Redis (for miniredis also while it is down).
func (h *harness) redisKeys(t testing.TB) []string {
	t.Helper()
	if h.mr != nil {
		return h.mr.Keys()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	it := h.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		out = append(out, it.Val())
	}
	if err := it.Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Errorf("redis SCAN: %v", err)
	}
	return out
}

// recKeys returns the token record and CVV keys in Redis.
func (h *harness) recKeys() []string {
	var out []string
	for _, k := range h.redisKeys(h.t) {
		if strings.Contains(k, ":rec:") || strings.Contains(k, ":cvv:") {
			out = append(out, k)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Assertions.

// wantError checks an error answer of chdproxy's own: status, stable code,
// the documented shape with a fixed message, and no caching.
func wantError(t testing.TB, r *response, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Errorf("got %d %q, want %d %q", r.status, r.code(), status, code)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type: got %q, want %q", ct, "application/json")
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error Cache-Control: got %q, want %q", cc, "no-store")
	}
	var b map[string]map[string]string
	if err := json.Unmarshal(r.body, &b); err != nil || len(b) != 1 || len(b["error"]) != 2 || b["error"]["message"] == "" {
		t.Errorf("error body: got %q, want {\"error\":{\"code\",\"message\"}}", r.body)
	}
}

// wantStatus checks a status code and shows the error code, if any, on failure.
func wantStatus(t testing.TB, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d (code %q), want %d", r.status, r.code(), status)
	}
}

// wantFast fails when a request took longer than d.
func wantFast(t testing.TB, r *response, d time.Duration) {
	t.Helper()
	if r.elapsed > d {
		t.Errorf("answer took %s, want under %s", r.elapsed.Round(time.Millisecond), d)
	}
}

// wantUpstreamCalls checks how many requests the sandbox received on path
// ("" for any path).
func (h *harness) wantUpstreamCalls(t testing.TB, path string, n int) {
	t.Helper()
	if got := h.upstreamCalls(path); got != n {
		t.Errorf("upstream calls: got %d, want %d", got, n)
	}
}

// wantTokenKeys checks how many token record and CVV keys Redis holds.
func (h *harness) wantTokenKeys(t testing.TB, n int) {
	t.Helper()
	if k := h.recKeys(); len(k) != n {
		t.Errorf("got %d token keys in Redis, want %d", len(k), n)
	}
}

// wantCVVKept checks that merchant A's tokens still have their CVV: the
// requests the test made were refused before any CVV was consumed.
func (h *harness) wantCVVKept(t testing.TB, toks ...string) {
	t.Helper()
	for _, tok := range toks {
		if !h.hasCVV(t, merchantA, tok) {
			t.Error("the CVV was consumed by a refused request")
		}
	}
}

// wantReceived compares fields the sandbox received with want.
func wantReceived(t testing.TB, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			// The values are test card data; printing them is fine in a test.
			t.Errorf("the sandbox received %s = %v, want %v", k, g, w)
		}
	}
}

// ---------------------------------------------------------------------------
// Logs and audit records.

// logLines parses the captured logs: one JSON object per line.
func (h *harness) logLines(t testing.TB) []map[string]any {
	t.Helper()
	return jsonLines(t, "log", h.logs.Bytes())
}

// auditRecords parses the audit trail: one JSON object per line.
func (h *harness) auditRecords(t testing.TB) []map[string]any {
	t.Helper()
	return jsonLines(t, "audit", h.audit.Bytes())
}

func jsonLines(t testing.TB, what string, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s output does not end with a newline", what)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" && len(b) == 0 {
			break
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s line %d is not one JSON object (%v): %.120q", what, i+1, err, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// requestLines returns the access-log entries ("msg":"request").
func (h *harness) requestLines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range h.logLines(t) {
		if l["msg"] == "request" {
			out = append(out, l)
		}
	}
	return out
}

// waitAudit polls the audit trail until ok accepts it or a second passes:
// wrap writes a request's record as its handler returns, which can be just
// after the client read the answer.
func (h *harness) waitAudit(t testing.TB, ok func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		recs := h.auditRecords(t)
		if ok(recs) || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitRequestLines polls the access log until it holds n request lines or a
// second passes.
func (h *harness) waitRequestLines(t testing.TB, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		l := h.requestLines(t)
		if len(l) >= n || time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keyID is the public id the proxy logs for a key: role prefix and the first
// 4 bytes of the digest.
func keyID(secret string) string {
	return secret[:3] + strings.TrimPrefix(proxy.KeyDigest(secret), "sha256:")[:8]
}

// ---------------------------------------------------------------------------
// Raw TCP, for what net/http's client will not send.

// raw writes request bytes to addr and reads every response until the server
// closes the connection or wait passes. closed reports whether the server
// closed it (EOF or reset) rather than the wait running out.
func (h *harness) raw(t testing.TB, addr, request string, wait time.Duration) (resps []*response, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatalf("raw write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return resps, !(errors.As(err, &ne) && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h.record(dumpResponse(resp.Header, b))
		resps = append(resps, &response{status: resp.StatusCode, header: resp.Header, body: b})
	}
}

// rawRequest builds an HTTP/1.1 request by hand: header lines as given (CRLF
// added), then body.
func rawRequest(requestLine string, headers []string, body string) string {
	var b strings.Builder
	b.WriteString(requestLine + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// statuses lists the statuses of raw answers for failure messages.
func statuses(rs []*response) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strconv.Itoa(r.status)+" "+r.code())
	}
	return out
}

// loopbackNames are names other than "localhost" that may resolve to a
// loopback address.
var loopbackNames = []string{"vm", "runsc", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

// loopbackHostname returns a name other than "localhost" that resolves to a
// loopback address, or "".
func loopbackHostname() string {
	cands := slices.Clone(loopbackNames)
	if h, err := os.Hostname(); err == nil {
		cands = append(cands, h)
	}
	for _, n := range cands {
		addrs, err := net.LookupHost(n)
		if err != nil || len(addrs) == 0 {
			continue
		}
		if ip := net.ParseIP(addrs[0]); ip != nil && ip.IsLoopback() {
			return n
		}
	}
	return ""
}

// hostPort returns the host:port of a URL.
func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
