package smartpay

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"
)

// Defaults: the documentation's example merchant and accounts.
const (
	DefaultMerchantKey    = "test"
	DefaultMerchantSecret = "qwerty" // public example secret from the documentation
	defaultPaymentAccount = "EUR-sandbox"
	defaultPayoutAccount  = "EUR-sandbox-payout"
	// defaultPayoutBalance is the starting balance of defaultPayoutAccount in
	// cents: 10 000.00 EUR, enough for the documentation's 100.00 EUR payout
	// many times over, small enough to test an insufficient balance.
	defaultPayoutBalance int64 = 1_000_000
)

// Limits.
const (
	// maxBodyBytes is the largest request body the sandbox reads.
	maxBodyBytes = 1 << 20
	// defaultMaxRecorded is how many requests Received keeps by default.
	defaultMaxRecorded = 1000
	// defaultCallbackTimeout bounds one callback delivery.
	defaultCallbackTimeout = 5 * time.Second
	// defaultMaxCallbacksInFlight bounds concurrent callback deliveries; a
	// callback that finds no free slot is dropped (and logged).
	defaultMaxCallbacksInFlight = 32
)

// AccountType tells what an account may be used for.
type AccountType string

// Account types.
const (
	AccountPayment AccountType = "payment" // initPayment, initPaymentHost2Host, authorize
	AccountPayout  AccountType = "payout"  // withdrawal/tokenize-form, withdrawal/init, balance
)

// Account is a merchant account. Balances are in cents and only meaningful for
// payout accounts; payments do not credit them.
type Account struct {
	Name           string
	Type           AccountType
	Currency       string // ISO 4217 alpha-3, e.g. "EUR"
	Balance        int64
	HoldBalance    int64
	RollingBalance int64
}

// Merchant is a SmartPayments merchant: its Basic-auth key and secret and its
// accounts. Account names are unique per merchant.
type Merchant struct {
	Key      string
	Secret   string
	Accounts []Account
}

// Format prints the key and whether a secret is set, never the secret.
func (m Merchant) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "Merchant{key:%q secret:%t accounts:%d}", m.Key, m.Secret != "", len(m.Accounts))
}

// defaultMerchants is the documentation's example merchant test:qwerty with a
// EUR payment account and a EUR payout account holding defaultPayoutBalance.
func defaultMerchants() []Merchant {
	return []Merchant{{
		Key:    DefaultMerchantKey,
		Secret: DefaultMerchantSecret,
		Accounts: []Account{
			{Name: defaultPaymentAccount, Type: AccountPayment, Currency: "EUR"},
			{Name: defaultPayoutAccount, Type: AccountPayout, Currency: "EUR", Balance: defaultPayoutBalance},
		},
	}}
}

// Options configure a Sandbox. The zero value is usable.
type Options struct {
	// Merchants known to the sandbox; when empty, test:qwerty with the
	// accounts EUR-sandbox (payment) and EUR-sandbox-payout (payout).
	Merchants []Merchant
	// Now is the clock (expiry checks, endDate, export date filters); time.Now when nil.
	Now func() time.Time
	// BaseURL prefixes the links the sandbox hands out (form_url, acsurl), e.g.
	// "https://127.0.0.1:8083". When empty, each link is built from the request
	// that asked for it (scheme from TLS, host from the Host header).
	BaseURL string
	// Callbacks turns callback delivery to callback_url on. Off by default so a
	// sandbox never calls out unless asked to.
	Callbacks bool
	// HTTPClient delivers callbacks. When nil, a client that follows no
	// redirects and times out after CallbackTimeout is used.
	HTTPClient *http.Client
	// CallbackTimeout bounds one delivery; 5 s when zero.
	CallbackTimeout time.Duration
	// MaxCallbacksInFlight bounds concurrent deliveries; 32 when zero.
	MaxCallbacksInFlight int
	// DisableRecording stops Received from recording requests (for a
	// long-running sandbox: recorded bodies hold card data).
	DisableRecording bool
	// MaxRecorded bounds the requests kept for Received (oldest dropped);
	// 1000 when zero.
	MaxRecorded int
	// Logger receives one line per request (route name, status, error code)
	// and callback outcomes; never bodies, URLs or card data. Discarded when nil.
	Logger logrus.FieldLogger
}

// SandboxOptions is Options under the name used in the team's contract.
type SandboxOptions = Options

// validate lists every problem in o; nil when o is usable.
func (o Options) validate() error {
	var errs []error
	keys := map[string]bool{}
	for i, m := range o.Merchants {
		if m.Key == "" || strings.ContainsRune(m.Key, ':') {
			errs = append(errs, fmt.Errorf("merchants[%d]: key must be non-empty and contain no colon", i))
		}
		if keys[m.Key] {
			errs = append(errs, fmt.Errorf("merchants[%d]: duplicate key", i))
		}
		keys[m.Key] = true
		if m.Secret == "" {
			errs = append(errs, fmt.Errorf("merchants[%d]: secret must be non-empty", i))
		}
		names := map[string]bool{}
		for j, a := range m.Accounts {
			if a.Name == "" || names[a.Name] {
				errs = append(errs, fmt.Errorf("merchants[%d].accounts[%d]: name must be non-empty and unique", i, j))
			}
			names[a.Name] = true
			if a.Type != AccountPayment && a.Type != AccountPayout {
				errs = append(errs, fmt.Errorf("merchants[%d].accounts[%d]: type must be %q or %q", i, j, AccountPayment, AccountPayout))
			}
			if !validCurrency(a.Currency) {
				errs = append(errs, fmt.Errorf("merchants[%d].accounts[%d]: currency must be three upper-case letters", i, j))
			}
			if a.Balance < 0 || a.HoldBalance < 0 || a.RollingBalance < 0 {
				errs = append(errs, fmt.Errorf("merchants[%d].accounts[%d]: balances must not be negative", i, j))
			}
		}
	}
	if o.BaseURL != "" && !validHTTPURL(o.BaseURL) {
		errs = append(errs, errors.New("base URL must be an absolute http or https URL"))
	}
	if o.CallbackTimeout < 0 || o.MaxCallbacksInFlight < 0 || o.MaxRecorded < 0 {
		errs = append(errs, errors.New("callback timeout, callbacks in flight and max recorded must not be negative"))
	}
	return errors.Join(errs...)
}

// Received is one request as it arrived at the sandbox, for tests to assert
// on. Body is the raw body and may hold card data: it prints as a placeholder
// in every fmt verb, and Received is never logged.
type Received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// Format prints method, path and body length, never the body.
func (r Received) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "Received{%s %s body:%d bytes}", r.Method, r.Path, len(r.Body))
}

// Sandbox is an in-memory SmartPayments upstream that behaves as the API
// documentation says. It serves the chd-api, api-gateway and
// service.magua-pay.com paths on one handler, plus the browser pages it links
// to (payment form, 3-D Secure challenge, withdrawal tokenization form) under
// /sandbox/. It is safe for concurrent use.
type Sandbox struct {
	opts    Options
	log     logrus.FieldLogger
	handler http.Handler

	mu        sync.Mutex
	merchants map[string]*merchantState
	byID      map[string]*txn // transaction ids and refund/payment UUIDs
	tasks     map[string]*exportTask
	recorded  []Received
	outbox    []callback

	cbMu     sync.Mutex
	cbClosed bool
	cbWG     sync.WaitGroup
	cbSem    chan struct{}
}

type merchantState struct {
	key          string
	secretDigest [sha256.Size]byte
	accounts     map[string]*Account
	orders       map[string]*txn // by merchant order_id (and refund_id)
}

// NewSandbox returns a Sandbox with opts applied. It panics on invalid opts
// (duplicate or empty merchant keys, bad accounts, a BaseURL that is not an
// absolute http(s) URL, negative limits).
func NewSandbox(opts Options) *Sandbox {
	if err := opts.validate(); err != nil {
		panic("smartpay: invalid sandbox options: " + err.Error())
	}
	if len(opts.Merchants) == 0 {
		opts.Merchants = defaultMerchants()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.CallbackTimeout == 0 {
		opts.CallbackTimeout = defaultCallbackTimeout
	}
	if opts.MaxCallbacksInFlight == 0 {
		opts.MaxCallbacksInFlight = defaultMaxCallbacksInFlight
	}
	if opts.MaxRecorded == 0 {
		opts.MaxRecorded = defaultMaxRecorded
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Timeout:       opts.CallbackTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Sandbox{opts: opts, log: opts.Logger, cbSem: make(chan struct{}, opts.MaxCallbacksInFlight)}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	s.reset()
	s.handler = s.record(s.routes())
	return s
}

// Handler serves every SmartPayments path of every host, and the sandbox's pages.
func (s *Sandbox) Handler() http.Handler { return s.handler }

// Received returns copies of the recorded requests whose URL path is path, in
// arrival order; every recorded request when path is "".
func (s *Sandbox) Received(path string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Received
	for _, r := range s.recorded {
		if path == "" || r.Path == path {
			r.Header = r.Header.Clone()
			r.Body = bytes.Clone(r.Body)
			out = append(out, r)
		}
	}
	return out
}

// reset forgets every transaction, export task and recorded request, and
// restores the configured balances. Callbacks already in flight still finish.
func (s *Sandbox) reset() {
	merchants := make(map[string]*merchantState, len(s.opts.Merchants))
	for _, m := range s.opts.Merchants {
		ms := &merchantState{
			key:          m.Key,
			secretDigest: sha256.Sum256([]byte(m.Secret)),
			accounts:     make(map[string]*Account, len(m.Accounts)),
			orders:       map[string]*txn{},
		}
		for _, a := range m.Accounts {
			a := a
			ms.accounts[a.Name] = &a
		}
		merchants[m.Key] = ms
	}
	s.mu.Lock()
	s.merchants = merchants
	s.byID = map[string]*txn{}
	s.tasks = map[string]*exportTask{}
	s.recorded = nil
	s.outbox = nil
	s.mu.Unlock()
}

// Close waits for callbacks in flight and stops delivering new ones. The
// handler keeps serving.
func (s *Sandbox) Close() error {
	s.cbMu.Lock()
	s.cbClosed = true
	s.cbMu.Unlock()
	s.cbWG.Wait()
	return nil
}

// record keeps a copy of every request (bounded) before routing it.
func (s *Sandbox) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
			_ = r.Body.Close()
			if err != nil {
				writeError(w, &apiError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body could not be read"})
				return
			}
			if len(b) > maxBodyBytes {
				writeError(w, &apiError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge, msg: "request body is too large"})
				return
			}
			body = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		if !s.opts.DisableRecording {
			rec := Received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: s.opts.Now()}
			s.mu.Lock()
			if len(s.recorded) >= s.opts.MaxRecorded {
				s.recorded = append(s.recorded[:0], s.recorded[len(s.recorded)-s.opts.MaxRecorded+1:]...)
			}
			s.recorded = append(s.recorded, rec)
			s.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// Paths of the transaction-list export (service.magua-pay.com).
const (
	exportPath       = "/aggregation-service/public/transaction/excel"
	exportTaskPath   = exportPath + "/task/{taskId}"
	exportResultPath = exportTaskPath + "/result"
)

func (s *Sandbox) routes() http.Handler {
	r := mux.NewRouter()
	post := func(name, path string, fn apiFunc) {
		r.Handle(path, s.api(name, true, fn)).Methods(http.MethodPost).Name(name)
	}
	// chd-api.smartcore.pro
	post("initPaymentHost2Host", "/initPaymentHost2Host", s.initPaymentHost2Host)
	post("authorize", "/authorize", s.authorize)
	post("withdrawalInit", "/withdrawal/init", s.withdrawalInit)
	// api-gateway.smartcore.pro
	post("initPayment", "/initPayment", s.initPayment)
	post("check", "/check", s.check)
	post("refund", "/refund", s.refund)
	post("recurrent", "/recurrent", s.recurrent)
	post("capture", "/capture", s.capture)
	post("cancel", "/cancel", s.cancel)
	post("withdrawalTokenizeForm", "/withdrawal/tokenize-form", s.tokenizeForm)
	post("withdrawalBalance", "/withdrawal/balance/get", s.balance)
	// service.magua-pay.com
	post("exportCreate", exportPath, s.exportCreate)
	r.Handle(exportTaskPath, s.api("exportStatus", false, s.exportStatus)).Methods(http.MethodGet).Name("exportStatus")
	r.Handle(exportResultPath, s.api("exportResult", false, s.exportResult)).Methods(http.MethodGet).Name("exportResult")
	// Browser pages the sandbox links to; no Basic auth (the id is unguessable).
	r.HandleFunc(payFormPath, s.payForm).Methods(http.MethodGet, http.MethodPost).Name("payForm")
	r.HandleFunc(challengePath, s.challenge).Methods(http.MethodGet, http.MethodPost).Name("challenge")
	r.HandleFunc(tokenizePagePath, s.tokenizePage).Methods(http.MethodGet, http.MethodPost).Name("tokenizePage")

	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: codeNotFound, msg: "no such endpoint"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, msg: "method not allowed"})
	})
	return r
}

// apiFunc handles an authenticated API call for merchant key. It returns the
// value to write as JSON (or a *fileResponse), or an error.
type apiFunc func(r *http.Request, merchant string) (any, error)

// fileResponse is a non-JSON answer (the xlsx export).
type fileResponse struct {
	contentType string
	filename    string
	body        []byte
}

// api wraps an API handler: Basic auth, JSON content type (POST), error
// mapping, callback flush and one log line.
func (s *Sandbox) api(name string, wantJSON bool, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		merchant, err := s.authenticate(r)
		if err == nil && wantJSON && !isJSON(r.Header.Get("Content-Type")) {
			err = &apiError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMedia, msg: "Content-Type must be application/json"}
		}
		var out any
		if err == nil {
			out, err = fn(r, merchant)
		}
		s.flush()
		entry := s.log.WithFields(logrus.Fields{"route": name, "merchant": merchant})
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Basic realm="smartpayments-sandbox"`)
			}
			status, code := writeError(w, err)
			entry.WithFields(logrus.Fields{"status": status, "code": code}).Info("sandbox request refused")
			return
		}
		if f, ok := out.(*fileResponse); ok {
			w.Header().Set("Content-Type", f.contentType)
			w.Header().Set("Content-Disposition", `attachment; filename="`+f.filename+`"`)
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(f.body)
		} else {
			writeJSON(w, http.StatusOK, out)
		}
		entry.WithField("status", http.StatusOK).Info("sandbox request")
	})
}

var errUnauthorized = &apiError{status: http.StatusUnauthorized, code: codeUnauthorized, msg: "missing or invalid Basic credentials"}

// authenticate checks Basic credentials against the merchants' secret digests
// in constant time; an unknown key costs the same comparison.
func (s *Sandbox) authenticate(r *http.Request) (string, error) {
	key, secret, ok := basicAuth(r.Header.Get("Authorization"))
	if !ok {
		return "", errUnauthorized
	}
	got := sha256.Sum256([]byte(secret))
	s.mu.Lock()
	m := s.merchants[key]
	s.mu.Unlock()
	want := sha256.Sum256([]byte("\x00unknown merchant"))
	if m != nil {
		want = m.secretDigest
	}
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || m == nil {
		return "", errUnauthorized
	}
	return key, nil
}

// basicAuth parses "Basic base64(key:secret)" (scheme case-insensitive).
func basicAuth(h string) (key, secret string, ok bool) {
	scheme, enc, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", "", false
	}
	key, secret, ok = strings.Cut(string(b), ":")
	if !ok || key == "" {
		return "", "", false
	}
	return key, secret, true
}

// newID returns a 24-hex-digit transaction id like those in the documentation.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newUUID returns a random (version 4) UUID, as refund_id and payment_id are.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// baseURL is the prefix of the links the sandbox hands out.
func (s *Sandbox) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
