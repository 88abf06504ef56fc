package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/vault"
)

// Idempotency makes a retried request with the same Idempotency-Key return the first
// answer instead of doing the work twice (a second token, a second payment). Records
// live in Redis, so every replica sees them: the first request claims the key with
// SET NX (state in_flight), duplicates wait for its answer, and a different request
// under the same key is a conflict. A record is bound to its request by a digest that
// holds no card data and no hash of card data under a key outside Vault (see the
// binders below); its stored answer is token metadata or a redacted upstream answer.
type Idempotency struct {
	c      redis.UniversalClient
	secret []byte
	ttl    time.Duration
	wait   time.Duration // how long a duplicate waits for the first request's answer
	prefix string
}

// newIdempotency stores records in c for ttl (default 24h). secret keys the request
// digests and must be the same on every replica.
func newIdempotency(c redis.UniversalClient, secret []byte, ttl time.Duration) *Idempotency {
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	return &Idempotency{c: c, secret: secret, ttl: ttl, wait: 35 * time.Second, prefix: "chd:idem:"}
}

var (
	errIdemKey        = newError(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
	errIdemReused     = newError(http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
	errIdemInProgress = newError(http.StatusConflict, "idempotency_in_progress", "a request with this Idempotency-Key is still in progress")
	errIdemStore      = newError(http.StatusServiceUnavailable, "idempotency_unavailable", "idempotency records cannot be read or written")
)

// A record's state. in_flight is the claim of a running request; done holds the
// answer to replay. Issue 16 gives in_flight a renewed lease and replays "result
// unknown" outcomes as done records; the shape stays.
const (
	idemInFlight = "in_flight"
	idemDone     = "done"
)

type idemRecord struct {
	State       string `json:"state"`
	Binding     string `json:"binding"` // what the request is bound to (a binder's digest)
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// binder returns the digest a record of this request is bound to, or "" for a
// request the handler refuses anyway (it then runs without a record). r.Body holds
// body, and is put back for the handler afterwards.
type binder func(w http.ResponseWriter, r *http.Request, key Key, body []byte) (string, error)

// middleware guards a forward route, behind the authentication layer: records are
// per key. Without an Idempotency-Key it is h itself.
func (id *Idempotency) middleware(log *logrus.Logger, maxBody int64, h keyedFunc) keyedFunc {
	return id.guard(log, maxBody, id.ttl, id.bodyBinding, h)
}

// tokenizeIdempotency guards POST /v1/tokens. Its records live only as long as the
// CVV of the token they answer with: the stored answer is a card's BIN, last 4 and
// expiry, worth nothing to a retry once the CVV is gone.
func (d *deps) tokenizeIdempotency(h keyedFunc) keyedFunc {
	return d.Idempotency.guard(d.Log, maxCollectBody, d.Vault.CVVTTL(), d.tokenizeBinding, h)
}

func (id *Idempotency) guard(log *logrus.Logger, maxBody int64, ttl time.Duration, bind binder, h keyedFunc) keyedFunc {
	return func(w http.ResponseWriter, r *http.Request, key Key) error {
		ik := r.Header.Get("Idempotency-Key")
		if ik == "" {
			return h(w, r, key)
		}
		if !validIdemKey(ik) {
			return errIdemKey
		}
		body, err := readBody(w, r, maxBody)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		binding, err := bind(w, r, key, body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return err
		}
		if binding == "" {
			return h(w, r, key)
		}
		ikHash := sha256.Sum256([]byte(ik))
		rk := id.prefix + key.Merchant + ":" + key.ID + ":" + hex.EncodeToString(ikHash[:16])
		claim, _ := json.Marshal(idemRecord{State: idemInFlight, Binding: binding})
		ok, err := id.c.SetNX(r.Context(), rk, claim, ttl).Result()
		if err != nil {
			return errIdemStore
		}
		if !ok {
			return id.replay(w, r, rk, binding)
		}
		rec := &recorder{header: http.Header{}}
		herr := h(rec, r, key)
		own := herr != nil && rec.status == 0 // chdproxy's own refusal or failure, nothing else written
		if herr != nil {
			writeErr(rec, herr)
		}
		id.finish(log, r, rk, binding, ttl, rec, own)
		rec.flush(w)
		return herr
	}
}

// finish keeps the answers worth replaying: 2xx and the upstream's own answers.
// chdproxy's own refusals (a validation error, a 409, token_not_found …) and answers
// that say "try again" (5xx, 429) free the key, so a corrected or later retry runs.
func (id *Idempotency) finish(log *logrus.Logger, r *http.Request, rk, binding string, ttl time.Duration, rec *recorder, own bool) {
	ctx := context.WithoutCancel(r.Context())
	if own || rec.status >= 500 || rec.status == http.StatusTooManyRequests {
		id.c.Del(ctx, rk)
		return
	}
	done, _ := json.Marshal(idemRecord{State: idemDone, Binding: binding, Status: rec.status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()})
	if err := id.c.Set(ctx, rk, done, ttl).Err(); err != nil {
		log.WithField("request_id", info(r).id).WithError(err).Error("idempotency record not stored")
	}
}

// mac is the local digest of parts (each ended by a NUL). It never sees card data.
func (id *Idempotency) mac(parts ...[]byte) string {
	m := hmac.New(sha256.New, id.secret)
	for _, part := range parts {
		m.Write(part)
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// bodyBinding binds a forward request to its whole body: forward bodies name card
// data by token id only. A body with card data in the clear is refused before
// anything is hashed (the handler would refuse it after the claim).
func (id *Idempotency) bodyBinding(_ http.ResponseWriter, r *http.Request, _ Key, body []byte) (string, error) {
	if containsRawPAN(body) || queryHasPAN(r.URL.RawQuery) || secretInClear(body) {
		return "", errRawCardData
	}
	return id.mac([]byte(r.Method), []byte(r.URL.Path), []byte(r.URL.RawQuery), body), nil
}

// clearSecretFields are the SmartPayments fields that carry a PAN, CVV or DPAN: in a
// forward body they hold a token id, or nothing.
var clearSecretFields = map[string]bool{
	"card_number": true, "customer_card_number": true, "card_cvv": true, "apple_pay_dpan": true, "google_pay_dpan": true,
}

// secretInClear reports a top-level card field holding anything but a token id,
// "" or null (a CVV is too short for the PAN detector). A body that is not a JSON
// object is the handler's to refuse.
func secretInClear(body []byte) bool {
	fields, err := parseObject(body)
	if err != nil {
		return false
	}
	for _, f := range fields {
		if !clearSecretFields[strings.ToLower(f.key)] {
			continue
		}
		if f.isString && f.str != "" && !vault.ValidTokenID(f.str) || !f.isString && string(body[f.start:f.end]) != "null" {
			return true
		}
	}
	return false
}

// collectCardFields are the tokenize fields bound through Vault. card_cvv is not
// among them: only whether a CVV was sent is bound, never its value (PCI DSS 3.3.1
// allows no hash of it).
var collectCardFields = map[string]bool{
	"card_number": true, "card_exp_month": true, "card_exp_year": true, "card_holder": true,
	"apple_pay_dpan": true, "google_pay_dpan": true,
}

// tokenizeBinding binds a tokenize request without a card-derived value under a key
// outside Vault: the card fields go through Vault's transit HMAC (per merchant, key
// never leaves Vault) and only that MAC enters the local digest, with method, path,
// query, payment method and network. The same card with another CVV binds the same.
func (d *deps) tokenizeBinding(w http.ResponseWriter, r *http.Request, key Key, _ []byte) (string, error) {
	f, err := readFields(w, r, collectFields)
	if err != nil {
		return "", nil // the handler refuses it the same way
	}
	var cardPart, shape []byte
	for _, k := range slices.Sorted(maps.Keys(f)) {
		switch {
		case k == "card_cvv":
			shape = append(shape, "card_cvv\x00sent\x00"...)
		case collectCardFields[k]:
			cardPart = append(append(append(append(cardPart, k...), 0), f[k]...), 0)
		default:
			shape = append(append(append(append(shape, k...), 0), f[k]...), 0)
		}
	}
	defer clear(cardPart)
	ctx, done, err := d.vaultCall(r.Context())
	if err != nil {
		return "", err
	}
	defer done()
	sum, err := d.Vault.Digest(ctx, key.Merchant, cardPart)
	if err != nil {
		return "", err
	}
	return d.Idempotency.mac([]byte(r.Method), []byte(r.URL.Path), []byte(r.URL.RawQuery), shape, sum), nil
}

// replay answers a duplicate: the stored answer, or a conflict.
func (id *Idempotency) replay(w http.ResponseWriter, r *http.Request, rk, binding string) error {
	deadline := time.Now().Add(id.wait)
	for {
		b, err := id.c.Get(r.Context(), rk).Bytes()
		if errors.Is(err, redis.Nil) {
			return errIdemInProgress // the first attempt failed and freed the key: retry
		}
		if err != nil {
			return errIdemStore
		}
		var rec idemRecord
		if json.Unmarshal(b, &rec) != nil {
			return errIdemStore
		}
		if !hmac.Equal([]byte(rec.Binding), []byte(binding)) {
			return errIdemReused
		}
		if rec.State == idemDone {
			w.Header().Set("Content-Type", rec.ContentType)
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(rec.Status)
			_, err := w.Write(rec.Body)
			return err
		}
		if time.Now().After(deadline) {
			return errIdemInProgress
		}
		select {
		case <-r.Context().Done():
			return errIdemInProgress
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func validIdemKey(k string) bool {
	if len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// recorder holds a handler's answer so it can be stored before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rc *recorder) Header() http.Header { return rc.header }
func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 {
		rc.status = code
	}
}
func (rc *recorder) Write(b []byte) (int, error) {
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	return rc.body.Write(b)
}

func (rc *recorder) flush(w http.ResponseWriter) {
	for k, v := range rc.header {
		w.Header()[k] = v
	}
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	w.WriteHeader(rc.status)
	_, _ = w.Write(rc.body.Bytes())
}
