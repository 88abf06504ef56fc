package smartpay

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chdproxy/chdproxy/internal/testcards"

	"github.com/sirupsen/logrus"
)

// Test cards from the documentation, and ordinary Luhn-valid cards that fail.
var (
	panFrictionless = testcards.Success
	panChallenge    = testcards.Challenge
	panDecline      = "4123540003981114" // the documentation's withdrawal example
	panMastercard   = testcards.Decline
	testCVV         = testcards.CVV
)

var testPANs = []string{panFrictionless, panChallenge, panDecline, panMastercard}

// testNow is the sandbox clock in tests: cards expiring 12/30 are valid,
// the documentation's 02/25 has expired.
var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return testNow }

// syncBuffer is a log sink safe for the callback goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t    *testing.T
	sb   *Sandbox
	srv  *httptest.Server
	logs *syncBuffer
}

// newEnv starts a sandbox behind an httptest server. Its log is captured and,
// at the end of the test, asserted to hold no test PAN, CVV or secret.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	logs := &syncBuffer{}
	l := logrus.New()
	l.SetOutput(logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetLevel(logrus.DebugLevel)
	opts.Logger = l
	if opts.Now == nil {
		opts.Now = fixedClock
	}
	sb := NewSandbox(opts)
	srv := httptest.NewServer(sb.Handler())
	e := &env{t: t, sb: sb, srv: srv, logs: logs}
	t.Cleanup(func() {
		srv.Close()
		_ = sb.Close()
		out := logs.String()
		for _, p := range testPANs {
			if strings.Contains(out, p) {
				t.Errorf("log output contains a test PAN")
			}
		}
		if strings.Contains(out, `"`+testCVV+`"`) || strings.Contains(out, DefaultMerchantSecret) {
			t.Errorf("log output contains a CVV or the secret")
		}
	})
	return e
}

func basic(key, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret))
}

var defaultAuth = basic(DefaultMerchantKey, DefaultMerchantSecret)

// do sends body (raw []byte/string, or marshalled as JSON) and returns the
// status and response body.
func (e *env) do(method, path, auth string, body any) (int, []byte) {
	e.t.Helper()
	resp := e.doResp(method, path, auth, "application/json", body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read response: %v", err)
	}
	return resp.StatusCode, b
}

func (e *env) doResp(method, path, auth, contentType string, body any) *http.Response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" && body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// post sends an authenticated JSON POST and decodes a 2xx answer into out.
func (e *env) post(path string, body, out any) {
	e.t.Helper()
	status, b := e.do(http.MethodPost, path, defaultAuth, body)
	if status != http.StatusOK {
		e.t.Fatalf("POST %s: got status %d, want 200; body %s", path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("POST %s: decode %s: %v", path, b, err)
		}
	}
}

// refuse sends an authenticated JSON POST that must fail with status and code.
func (e *env) refuse(path string, body any, status int, code string) errorResponse {
	e.t.Helper()
	got, b := e.do(http.MethodPost, path, defaultAuth, body)
	var er errorResponse
	if err := json.Unmarshal(b, &er); err != nil {
		e.t.Fatalf("POST %s: error body %s: %v", path, b, err)
	}
	if got != status || er.Err != code || er.Status != statusFail {
		e.t.Fatalf("POST %s: got %d %q, want %d %q; body %s", path, got, er.Err, status, code, b)
	}
	return er
}

func (e *env) checkOrder(orderID string) checkResponse {
	e.t.Helper()
	var c checkResponse
	e.post("/check", map[string]any{"order_id": orderID}, &c)
	return c
}

// customer holds the documentation's example customer, with its numeric zip code.
func customer(orderID string) map[string]any {
	return map[string]any{
		"account":             defaultPaymentAccount,
		"amount":              1000,
		"currency":            "EUR",
		"order_id":            orderID,
		"merchant_site":       "https://merchant.site",
		"recurrent":           false,
		"purpose":             "description",
		"customer_first_name": "John",
		"customer_last_name":  "Doe",
		"customer_address":    "10 Downing Street",
		"customer_city":       "London",
		"customer_zip_code":   121165,
		"customer_country":    "GB",
		"customer_phone":      "+442079460612",
		"customer_email":      "john@example.com",
		"customer_ip_address": "127.0.0.1",
	}
}

// cardPayment is an initPaymentHost2Host/authorize body for pan, valid to 12/30.
func cardPayment(orderID, pan string) map[string]any {
	m := customer(orderID)
	m["payment_method"] = methodCard
	m["card_holder"] = "John Doe"
	m["card_number"] = pan
	m["card_exp_month"] = "12"
	m["card_exp_year"] = "30"
	m["card_cvv"] = testCVV
	return m
}

// examplePayload is a wallet payload shaped like the documentation's.
var examplePayload = base64.StdEncoding.EncodeToString([]byte(`{"paymentData":{"onlinePaymentCryptogram":"***","eciIndicator":"7"}}`))

func walletPayment(orderID, method, network string) map[string]any {
	m := customer(orderID)
	m["payment_method"] = method
	if method == methodApplePay {
		m["apple_pay_dpan"] = examplePayload
		m["apple_pay_payment_method_network"] = network
	} else {
		m["google_pay_dpan"] = examplePayload
		m["google_pay_payment_method_network"] = network
	}
	return m
}

func withdrawal(orderID, pan string, amount int64) map[string]any {
	return map[string]any{
		"account":              defaultPayoutAccount,
		"order_id":             orderID,
		"amount":               amount,
		"payment_method":       methodCard,
		"customer_card_number": pan,
		"merchant_site":        "https://merchant.site",
		"customer_first_name":  "John",
		"customer_middle_name": "Jerom",
		"customer_last_name":   "Doe",
		"customer_phone":       "+442079460612",
		"customer_birthdate":   "06.06.1997",
		"customer_zip_code":    "121165",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
