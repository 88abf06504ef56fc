package proxy_test

// Hostile-input suite (see hostile_body_test.go): request smuggling, slow clients,
// odd paths and methods, CONNECT (raw TCP against the real server).

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"
	"github.com/chdproxy/chdproxy/proxy"
)

// smuggledRequest builds a valid, authenticated /check request that would reach
// the upstream if a server read it as a request of its own.
func (h *harness) smuggledRequest() string {
	body := `{"order_id":"smuggled-order"}`
	return rawRequest("POST /check HTTP/1.1", []string{
		"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth,
		"Content-Type: application/json", "Content-Length: " + strconv.Itoa(len(body)),
	}, body)
}

func TestHostile_SmugglingContentLengthAndTransferEncoding(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	inner := "0\r\n\r\n" + h.smuggledRequest()
	auth := []string{"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth, "Content-Type: application/json"}
	for name, hdrs := range map[string][]string{
		"CL then TE": {"Content-Length: " + strconv.Itoa(len(inner)), "Transfer-Encoding: chunked"},
		"TE then CL": {"Transfer-Encoding: chunked", "Content-Length: " + strconv.Itoa(len(inner))},
	} {
		resps, closed := h.raw(t, h.fwdAddr, rawRequest("POST /check HTTP/1.1", append(slices.Clone(auth), hdrs...), inner), 2*time.Second)
		if len(resps) != 1 || !closed {
			t.Errorf("%s: got %d answers %v, closed %v; want one answer and the connection closed", name, len(resps), statuses(resps), closed)
		}
		if len(resps) > 0 && (resps[0].status != http.StatusBadRequest || resps[0].code() != "transfer_encoding_not_allowed") {
			t.Errorf("%s: got %d %q, want 400 %q", name, resps[0].status, resps[0].code(), "transfer_encoding_not_allowed")
		}
	}
	if n := h.upstreamCalls(""); n != 0 {
		t.Errorf("upstream calls: got %d, want 0 (a smuggled request was processed)", n)
	}
}

func TestHostile_SmugglingTwoContentLengths(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := `{"order_id":"x"}` + h.smuggledRequest()
	req := rawRequest("POST /check HTTP/1.1", []string{
		"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth,
		"Content-Type: application/json", "Content-Length: 16", "Content-Length: " + strconv.Itoa(len(body)),
	}, body)
	resps, closed := h.raw(t, h.fwdAddr, req, 2*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusBadRequest || !closed {
		t.Errorf("got %d answers %v, closed %v; want one 400 and the connection closed", len(resps), statuses(resps), closed)
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_SmugglingObfuscatedTransferEncoding(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	inner := "0\r\n\r\n" + h.smuggledRequest()
	auth := []string{"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth, "Content-Type: application/json"}
	for _, c := range []struct {
		te     string
		status int
		code   string // "" for net/http's own plain-text refusal
	}{
		{"Transfer-Encoding: xchunked", http.StatusNotImplemented, ""},
		{"Transfer-Encoding: chunked, identity", http.StatusNotImplemented, ""},
		{"Transfer-Encoding: gzip, chunked", http.StatusNotImplemented, ""},
		{"Transfer-Encoding : chunked", http.StatusBadRequest, ""},
		{"Transfer-Encoding:\tchunked", http.StatusBadRequest, "transfer_encoding_not_allowed"},
		{"transfer-encoding: CHUNKED", http.StatusBadRequest, "transfer_encoding_not_allowed"},
	} {
		req := rawRequest("POST /check HTTP/1.1", append(slices.Clone(auth), "Content-Length: "+strconv.Itoa(len(inner)), c.te), inner)
		resps, closed := h.raw(t, h.fwdAddr, req, 2*time.Second)
		if len(resps) != 1 || resps[0].status != c.status || resps[0].code() != c.code || !closed {
			t.Errorf("%q: got %d answers %v, closed %v; want one %d %q and the connection closed", c.te, len(resps), statuses(resps), closed, c.status, c.code)
		}
	}
	h.wantUpstreamCalls(t, "", 0)
}

func TestHostile_SlowlorisHeaders(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// ReadTimeout is long: only ReadHeaderTimeout can end this connection early.
	addr := h.serve(h.listeners.Collect, proxy.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 4 * time.Second, Write: 4 * time.Second, Idle: time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\n")
	// One more header line every 50ms, never the blank line.
	got, timedOut, elapsed := dripUntilClosed(c, 50*time.Millisecond, 5*time.Second, func(i int) (string, bool) {
		return fmt.Sprintf("X-Slow-%d: 1\r\n", i), true
	})
	if timedOut {
		t.Fatalf("the server kept a connection whose headers never ended for 5s")
	}
	if elapsed > 2*time.Second {
		t.Errorf("connection closed after %s, want about ReadHeaderTimeout (300ms)", elapsed.Round(time.Millisecond))
	}
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408")) && !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) {
		t.Errorf("got an answer %.40q, want none or a 408", got)
	}
	if n := len(h.requestLines(t)); n != 0 {
		t.Errorf("got %d access-log lines, want 0", n)
	}
	h.record(got)
}

func TestHostile_SlowBody(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	addr := h.serve(h.listeners.Collect, proxy.Timeouts{ReadHeader: time.Second, Read: 700 * time.Millisecond, Write: 3 * time.Second, Idle: time.Second})
	body := string(mustJSON(t, cardFields(testcards.Success, testcards.CVV)))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		h.keys[merchantA][proxy.RolePublishable], len(body)+200)
	// The body a few bytes at a time, and never all of it.
	got, timedOut, elapsed := dripUntilClosed(c, 100*time.Millisecond, 6*time.Second, func(i int) (string, bool) {
		j := 4 * i
		return body[min(j, len(body)):min(j+4, len(body))], j < len(body)
	})
	if timedOut {
		t.Fatalf("the server kept reading a slow body for 6s")
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("request ended after %s, want about ReadTimeout (700ms)", elapsed.Round(time.Millisecond))
	}
	h.record(got)
	if len(got) > 0 {
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) || !bytes.Contains(got, []byte(`"body_unreadable"`)) {
			t.Errorf("got an answer %.60q, want none or 400 body_unreadable", got)
		}
	}
	h.wantTokenKeys(t, 0)
	if n := h.transit.calls.Load(); n != 0 {
		t.Errorf("transit calls: got %d, want 0", n)
	}
}

func TestHostile_HeaderTooLarge(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	big := strings.Repeat("A", 40<<10)
	r := h.col(t, merchantA, cardFields(testcards.Success, testcards.CVV), headers{"X-Big": big})
	wantStatus(t, r, http.StatusRequestHeaderFieldsTooLarge)
	r = h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "x"}, headers{"Cookie": big})
	wantStatus(t, r, http.StatusRequestHeaderFieldsTooLarge)
	h.wantUpstreamCalls(t, "", 0)
	h.wantTokenKeys(t, 0)
}

func TestHostile_CONNECTRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	evil := startTrapListener(t)
	auth := []string{"Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Connection: close"}
	for _, c := range []struct {
		target string
		status int
		code   string
	}{
		{evil.addr(), http.StatusNotFound, "not_found"},
		{"/initPaymentHost2Host", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		req := rawRequest("CONNECT "+c.target+" HTTP/1.1", append([]string{"Host: " + evil.addr()}, auth...), "")
		resps, _ := h.raw(t, h.fwdAddr, req, 3*time.Second)
		if len(resps) != 1 || resps[0].status != c.status || resps[0].code() != c.code {
			t.Errorf("CONNECT %s: got %v, want %d %q", c.target, statuses(resps), c.status, c.code)
		}
	}
	for _, srv := range []string{h.colAddr, h.admAddr} {
		resps, _ := h.raw(t, srv, rawRequest("CONNECT "+evil.addr()+" HTTP/1.1", []string{"Host: " + evil.addr(), "Connection: close"}, ""), 3*time.Second)
		if len(resps) != 1 || resps[0].status != http.StatusNotFound {
			t.Errorf("CONNECT on another listener: got %v, want 404", statuses(resps))
		}
	}
	h.wantUpstreamCalls(t, "", 0)
	evil.assertNoConnection(t)
}

func TestHostile_NonCanonicalPaths(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/initPaymentHost2Host/", http.StatusNotFound},
		{"/INITPAYMENTHOST2HOST", http.StatusNotFound},
		{"/initPaymentHost2Host;x=1", http.StatusNotFound},
		{"/initPaymentHost2Host%2F", http.StatusNotFound},
		{"/check/../initPaymentHost2Host", http.StatusNotFound},
		{"//initPaymentHost2Host", http.StatusNotFound},
		{"/./initPaymentHost2Host", http.StatusNotFound},
	} {
		r := h.post(t, c.path, cardPayment(h.orderID(), tok))
		if r.status != c.status {
			t.Errorf("%s: got %d %q, want %d", c.path, r.status, r.code(), c.status)
		}
		if r.status == http.StatusNotFound && r.code() != "not_found" {
			t.Errorf("%s: got code %q, want %q", c.path, r.code(), "not_found")
		}
	}
	h.wantUpstreamCalls(t, "", 0)
	if !h.hasCVV(t, merchantA, tok) {
		t.Error("the CVV was consumed")
	}
}

func TestHostile_UnknownRoutesAndMethods(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, p := range []string{"/.env", "/debug/pprof/", "/metrics", "/v1/tokens", "/admin", "/aggregation-service/public/transaction/excel/task"} {
		wantError(t, h.fwd(t, merchantA, http.MethodGet, p, nil, nil), http.StatusNotFound, "not_found")
	}
	wantError(t, h.fwd(t, merchantA, http.MethodPatch, "/initPaymentHost2Host", map[string]any{}, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	wantError(t, h.fwd(t, merchantA, http.MethodPut, "/check", map[string]any{}, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	wantError(t, h.do(t, http.MethodGet, h.collect+"/v1/tokens", nil, nil), http.StatusMethodNotAllowed, "method_not_allowed")
	h.listeners.Close() // writes the summaries of requests refused before any key
	recs := h.waitAudit(t, func(r []map[string]any) bool { return len(r) >= 3 })
	probes := 0.0
	for _, r := range recs {
		if r["event"] == "unknown_route" && r["outcome"] == "denied" {
			n, _ := r["count"].(float64)
			probes += n
		}
	}
	if probes != 9 {
		t.Errorf("unknown_route audit summaries count %v probes, want 9: probing is an access attempt", probes)
	}
	h.wantUpstreamCalls(t, "", 0)
}

// dripUntilClosed writes piece(0), piece(1), … to c, one every gap, while piece
// has more, and meanwhile reads c until the server closes it; timedOut reports
// that wait passed first.
func dripUntilClosed(c net.Conn, gap, wait time.Duration, piece func(i int) (string, bool)) (got []byte, timedOut bool, elapsed time.Duration) {
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			s, more := piece(i)
			if !more {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
			if _, err := io.WriteString(c, s); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(c)
	var ne net.Error
	return got, errors.As(err, &ne) && ne.Timeout(), time.Since(start)
}

func TestHostile_HugeContentLengthAnsweredBeforeBody(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	fwd := []string{"Host: x", "Proxy-Authorization: Bearer " + h.keys[merchantA][proxy.RoleSecret], "Authorization: " + testcards.BasicAuth, "Content-Type: application/json"}
	col := []string{"Host: x", "Authorization: Bearer " + h.keys[merchantA][proxy.RolePublishable], "Origin: " + originA, "Content-Type: application/json"}
	for _, c := range []struct {
		name, addr, line string
		hdrs             []string
	}{
		{"3 MB to a payment route", h.fwdAddr, "POST /initPaymentHost2Host HTTP/1.1", append(slices.Clone(fwd), "Content-Length: 3000000")},
		{"3 MB through the idempotency layer", h.fwdAddr, "POST /check HTTP/1.1", append(slices.Clone(fwd), "Content-Length: 3000000", "Idempotency-Key: huge-1")},
		{"40 KiB to collect, whose limit is 32 KiB", h.colAddr, "POST /v1/tokens HTTP/1.1", append(slices.Clone(col), "Content-Length: 40960")},
	} {
		// Headers only: a server that waits for the body, or asks for it with
		// 100 Continue, never answers with 413.
		resps, _ := h.raw(t, c.addr, rawRequest(c.line, append(c.hdrs, "Expect: 100-continue"), ""), time.Second)
		if len(resps) == 0 {
			t.Errorf("%s: no answer without the body, want 413 at once", c.name)
			continue
		}
		if resps[0].status == http.StatusContinue {
			t.Errorf("%s: got 100 Continue, want 413 before the body is asked for", c.name)
			continue
		}
		wantError(t, resps[0], http.StatusRequestEntityTooLarge, "body_too_large")
	}
	h.wantUpstreamCalls(t, "", 0)
}

// headerRecorder is an upstream that keeps the headers of the last request.
type headerRecorder struct {
	mu  sync.Mutex
	got http.Header
}

func (u *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.got = r.Header.Clone()
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":1}`))
}

func (u *headerRecorder) last() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got
}

func TestHostile_RequestHeadersGoUpstreamByAllowlist(t *testing.T) {
	up := &headerRecorder{}
	h := newHarness(t, harnessOptions{upstream: up})
	sent := headers{
		"Accept": "application/json", "Cookie": "session=s3cr3t", "Forwarded": "for=10.1.2.3", "X-Forwarded-For": "10.1.2.3",
		"X-Forwarded-Host": "internal.example", "X-Real-Ip": "10.1.2.3", "X-Api-Key": "key-0123", "Idempotency-Key": "hdr-1",
		"X-Request-Id": "req-from-client", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-Http-Method-Override": "DELETE", "X-Original-Url": "/admin", "Accept-Language": "de",
	}
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "o-1"}, sent), http.StatusOK)
	got := up.last()
	want := map[string]string{"Authorization": testcards.BasicAuth, "Content-Type": "application/json", "Accept": "application/json"}
	for k, v := range want {
		if g := got.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("upstream %s: got %q, want %q", k, g, v)
		}
	}
	// What net/http's client adds itself may be there too; nothing else.
	for k := range got {
		if _, ok := want[k]; !ok && k != "User-Agent" && k != "Accept-Encoding" && k != "Content-Length" {
			t.Errorf("upstream received %s: got %q, want it dropped", k, got.Values(k))
		}
	}
	// Authorization goes upstream only as the merchant's Basic credential.
	wantStatus(t, h.fwd(t, merchantA, http.MethodPost, "/check", map[string]any{"order_id": "o-2"}, headers{"Authorization": "Bearer other-service-token"}), http.StatusOK)
	if g := up.last().Values("Authorization"); len(g) != 0 {
		t.Errorf("upstream Authorization: got %q, want none for a non-Basic scheme", g)
	}
}

const exportPath = "/aggregation-service/public/transaction/excel"

func TestHostile_TransactionExportReachesTheSandbox(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	r := h.fwd(t, merchantA, http.MethodPost, exportPath, map[string]any{"type": "Payment", "status": 2, "dateFrom": 0, "dateTo": time.Now().UnixMilli()}, nil)
	wantStatus(t, r, http.StatusOK)
	id, _ := r.object(t)["id"].(string)
	if id == "" {
		t.Fatalf("create task: got %s, want a task id", r.body)
	}
	st := h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/"+id, nil, nil)
	wantStatus(t, st, http.StatusOK)
	if got := st.object(t)["status"]; got != float64(2) {
		t.Errorf("task status: got %v, want 2", got)
	}
	// The xlsx is read part by part with the answer rules, and relayed as it is.
	x := h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/"+id+"/result", nil, nil)
	wantStatus(t, x, http.StatusOK)
	if _, err := zip.NewReader(bytes.NewReader(x.body), int64(len(x.body))); err != nil || !strings.Contains(x.header.Get("Content-Type"), "spreadsheetml") {
		t.Errorf("export result: got %q, %v; want the xlsx", x.header.Get("Content-Type"), err)
	}
	h.wantUpstreamCalls(t, exportPath, 1)
	h.wantUpstreamCalls(t, exportPath+"/task/"+id, 1)
	h.wantUpstreamCalls(t, exportPath+"/task/"+id+"/result", 1)
}

func TestHostile_TransactionExportAnswerIsScrubbed(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"641def1d70836759e8af7dd4","status":2,"note":"card ` + testcards.Success + `"}`))
	}}
	h := newHarness(t, harnessOptions{upstream: up})
	for _, r := range []*response{
		h.fwd(t, merchantA, http.MethodPost, exportPath, map[string]any{"type": "Payment", "status": 2, "dateFrom": 0, "dateTo": 1}, nil),
		h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/641def1d70836759e8af7dd4", nil, nil),
	} {
		wantStatus(t, r, http.StatusOK)
		if bytes.Contains(r.body, []byte(testcards.Success)) || !bytes.Contains(r.body, []byte("641def1d70836759e8af7dd4")) {
			t.Errorf("answer: got %s, want the card number masked and the task id kept", r.body)
		}
	}
}

// A document is relayed only when every part of it is clean; one with a card number
// is refused, not rewritten.
func TestHostile_TransactionExportDocumentWithCardDataIsRefused(t *testing.T) {
	doc := func(cell string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.Create("xl/sharedStrings.xml")
		_, _ = w.Write([]byte(`<sst><si><t>641def1d70836759e8af7dd4</t></si><si><t>401200******3010</t></si><si><t>` + cell + `</t></si></sst>`))
		_ = zw.Close()
		return b.Bytes()
	}
	for _, c := range []struct {
		name, cell string
		code       string
	}{
		{"a clean document", "1700000000000", ""},
		{"a full card number", "card " + testcards.Success, "upstream_response_card_data"},
		{"a card number in character references", "&#52;" + testcards.Success[1:], "upstream_response_card_data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := doc(c.cell)
			up := &fakeUpstream{respond: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
				_, _ = w.Write(body)
			}}
			h := newHarness(t, harnessOptions{upstream: up})
			r := h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/641def1d70836759e8af7dd4/result", nil, nil)
			if c.code != "" {
				wantError(t, r, http.StatusBadGateway, c.code)
				return
			}
			wantStatus(t, r, http.StatusOK)
			if !bytes.Equal(r.body, body) {
				t.Error("a clean document was not relayed byte for byte")
			}
		})
	}
}

func TestHostile_TransactionExportTaskIDs(t *testing.T) {
	up := &fakeUpstream{}
	h := newHarness(t, harnessOptions{upstream: up})
	tok := h.cardToken(t, testcards.Success, testcards.CVV)
	for _, c := range []struct {
		id     string
		status int
		code   string
	}{
		{testcards.Success, http.StatusBadRequest, "raw_card_data"}, // a PAN in the path
		{tok, http.StatusNotFound, "not_found"},                     // '_' is not in a task id
		{"..", http.StatusNotFound, "not_found"},
		{"a%2F..%2F..%2Fcheck", http.StatusNotFound, "not_found"},
		{"a.b", http.StatusNotFound, "not_found"},
		{strings.Repeat("a", 65), http.StatusNotFound, "not_found"},
	} {
		wantError(t, h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/"+c.id, nil, nil), c.status, c.code)
	}
	if n := up.arrivals(""); n != 0 {
		t.Fatalf("upstream calls: got %d, want 0", n)
	}
	wantStatus(t, h.fwd(t, merchantA, http.MethodGet, exportPath+"/task/641def1d70836759e8af7dd4/result", nil, nil), http.StatusOK)
	if n := up.arrivals(exportPath + "/task/641def1d70836759e8af7dd4/result"); n != 1 {
		t.Errorf("upstream calls at the task's result path: got %d, want 1", n)
	}
	h.wantCVVKept(t, tok)
}
