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
	"sync"
	"sync/atomic"
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
	lease  time.Duration // of an in_flight claim, renewed while its request runs
	hold   time.Duration // the longest a claim is renewed without a request deadline
	prefix string
}

// newIdempotency stores records in c for ttl (default 24h). secret keys the request
// digests and must be the same on every replica.
func newIdempotency(c redis.UniversalClient, secret []byte, ttl time.Duration) *Idempotency {
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	return &Idempotency{c: c, secret: secret, ttl: ttl, wait: 35 * time.Second, lease: 10 * time.Second,
		hold: DefaultTimeouts.Write, prefix: idemPrefix}
}

// idemPrefix starts every record's key: idemPrefix + merchant + ":" + key id + ":" + hash.
const idemPrefix = "chd:idem:"

// IdempotencyKeyPrefix starts the key of every idempotency record of merchant (chdproxy
// purge); merchant ids hold no ':', so "m_1" never matches the records of "m_10".
func IdempotencyKeyPrefix(merchant string) string { return idemPrefix + merchant + ":" }

var (
	errIdemKey        = newError(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
	errIdemReused     = newError(http.StatusConflict, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
	errIdemInProgress = newError(http.StatusConflict, "idempotency_in_progress", "a request with this Idempotency-Key is still in progress")
	errIdemStore      = newError(http.StatusServiceUnavailable, "idempotency_unavailable", "idempotency records cannot be read or written")
)

// A record's state (README.md, "Idempotency-Key", has the whole state machine).
// in_flight is the claim of a running request: a short lease its request renews, so
// the claim of a process that died expires in seconds. sent is the same claim once
// the request is about to be written upstream: it lives as long as a done record, so
// the death of its process cannot free the key; a sent claim its owner stopped
// renewing becomes a "result unknown" outcome (abandon). done holds the outcome to
// replay, "result unknown" ones included.
const (
	idemInFlight = "in_flight"
	idemSent     = "sent"
	idemDone     = "done"
)

type idemRecord struct {
	State       string `json:"state"`
	Binding     string `json:"binding"`          // what the request is bound to (a binder's digest)
	Owner       string `json:"owner,omitempty"`  // in_flight, sent: a random id of the claim, so only its holder renews or settles it
	TTL         int64  `json:"ttl_ms,omitempty"` // sent: the lifetime each renewal gives it back (see abandon)
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
		rk := id.recordKey(key, ik)
		c, err := id.claimOrReplay(w, r, rk, binding, ttl)
		if c == nil {
			return err
		}
		rec := &recorder{header: http.Header{}}
		release := id.renew(r.Context(), c)
		herr := h(rec, r.WithContext(context.WithValue(r.Context(), claimKey{}, c)), key)
		release()
		own := herr != nil && rec.status == 0 // chdproxy's own refusal or failure, nothing else written
		if own {
			writeErr(rec, herr)
		}
		id.finish(log, r, c, binding, rec, keeps(r, rec.status, own, herr))
		rec.flush(w)
		return herr
	}
}

// claim is one request's hold on its key: the in_flight record it wrote and the sent
// record that replaces it at the point of no return (markSent).
type claim struct {
	id       *Idempotency
	rk       string
	ttl      time.Duration // of the key's records
	inFlight []byte
	sent     []byte

	once   sync.Once
	refuse atomic.Bool // markSent failed: the request must not be sent
}

type claimKey struct{}

// claimOf is the claim of the request running under ctx, nil without an Idempotency-Key.
func claimOf(ctx context.Context) *claim {
	c, _ := ctx.Value(claimKey{}).(*claim)
	return c
}

// markSent turns the claim into a sent record, once, before the first byte of the
// request is written upstream: from then on no crash can free the key, so a retry
// can never send the request a second time. An error (Redis unreachable, or the
// claim lost to a retry after its lease ran out) means the request must not be sent:
// nothing was, so the refusal is a plain 503. A nil claim marks nothing.
func (c *claim) markSent(ctx context.Context) error {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idemOpBound)
		defer cancel()
		ok, err := idemMarkSent.Run(ctx, c.id.c, []string{c.rk}, c.inFlight, c.sent, c.ttl.Milliseconds()).Int()
		c.refuse.Store(err != nil || ok != 1)
	})
	return c.failed()
}

// failed is markSent's refusal: nil before it ran, or when it succeeded.
func (c *claim) failed() error {
	if c != nil && c.refuse.Load() {
		return errIdemStore
	}
	return nil
}

// recordKey is the Redis key of ik's record: per merchant and API key, ik hashed.
func (id *Idempotency) recordKey(key Key, ik string) string {
	sum := sha256.Sum256([]byte(ik))
	return id.prefix + key.Merchant + ":" + key.ID + ":" + hex.EncodeToString(sum[:16])
}

// Lua keeps a claim's renewal and settlement to its owner: a claim whose lease ran
// out may have been taken by a retry, whose record must not be extended, replaced or
// freed by the late first request. Each script compares whole records, so the owner
// check needs no JSON in Lua. renew gives an in_flight claim its lease again and a
// sent one its full ttl (ttl minus PTTL is then the time since the last renewal,
// which abandon reads); markSent replaces the owner's in_flight claim by its sent
// record; settle stores a final record (ARGV[2] not empty) also when the claim is
// gone, and deletes only its own claim; abandon turns a sent claim not renewed for a
// lease into its "result unknown" outcome.
var (
	idemRenew = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v == ARGV[3] then return redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 0`)
	idemMarkSent = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`)
	idemSettle   = redis.NewScript(`local v = redis.call('GET', KEYS[1])
local mine = v == ARGV[1] or v == ARGV[4]
if ARGV[2] == '' then if mine then redis.call('DEL', KEYS[1]) end return 0 end
if mine or not v then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0`)
	idemAbandon = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) return 1 end return 0`)
)

// renew extends the claim's lease every lease/3 until release is called, for at
// most the request's deadline (id.hold without one): a request that hangs past any
// deadline of its own cannot keep its key locked.
func (id *Idempotency) renew(ctx context.Context, c *claim) (release func()) {
	end, ok := ctx.Deadline()
	if !ok {
		end = time.Now().Add(id.hold)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(id.lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if now.After(end) {
					return
				}
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), id.lease/3)
				_ = idemRenew.Run(rctx, id.c, []string{c.rk}, c.inFlight, id.lease.Milliseconds(), c.sent, c.ttl.Milliseconds()).Err() // a missed renewal is retried at the next tick
				cancel()
			}
		}
	}()
	return func() { close(stop); <-stopped }
}

// finish settles the claim: the outcome is kept when a retry must not run the
// request again (keeps), otherwise the key is freed so a corrected or later retry runs.
// A settlement Redis refuses (down, restarting) is retried in the background for two
// leases: left alone, a sent claim would answer "result unknown" after its lease even
// for a request answered, or refused with nothing sent.
func (id *Idempotency) finish(log *logrus.Logger, r *http.Request, c *claim, binding string, rec *recorder, keep bool) {
	var done []byte // empty: free the key
	if keep {
		done, _ = json.Marshal(idemRecord{State: idemDone, Binding: binding, Status: rec.status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()})
	}
	if id.settle(context.WithoutCancel(r.Context()), c, done) == nil {
		return
	}
	l := log.WithField("request_id", info(r).id)
	go func() {
		for end := time.Now().Add(2 * id.lease); time.Now().Before(end); time.Sleep(id.lease / 20) {
			if id.settle(context.Background(), c, done) == nil {
				return
			}
		}
		l.Error("idempotency record not settled; its claim expires with its lease (a sent one then answers result unknown)")
	}()
}

// settle runs idemSettle once, bounded like any idempotency record operation.
func (id *Idempotency) settle(ctx context.Context, c *claim, done []byte) error {
	ctx, cancel := context.WithTimeout(ctx, idemOpBound)
	defer cancel()
	return idemSettle.Run(ctx, id.c, []string{c.rk}, c.inFlight, done, c.ttl.Milliseconds(), c.sent).Err()
}

// keeps says whether an answer is the key's outcome for good. Once a byte of the
// request was written upstream (or the answer says the result is unknown), whatever
// came back, or did not, is the outcome: a retry replays it and never sends twice.
// Before that, chdproxy's own refusals and "try again" answers (5xx, 429) free the key.
func keeps(r *http.Request, status int, own bool, herr error) bool {
	if info(r).sent.Load() {
		return true
	}
	if herr != nil {
		if ae := classify(herr); ae == errUpstreamTimeout || ae == errUpstreamUnknown {
			return true
		}
	}
	return !own && status < 500 && status != http.StatusTooManyRequests
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

// claimOrReplay claims rk for this request (nil error and a claim: run it) or
// answers a duplicate: the stored outcome, a conflict, or, once a claim held by
// another request outlives the wait, 409 idempotency_in_progress with Retry-After.
// A claim that ends without an outcome (freed, or its lease ran out) is claimed anew;
// a sent claim whose owner died becomes "result unknown" (abandon) and is replayed.
func (id *Idempotency) claimOrReplay(w http.ResponseWriter, r *http.Request, rk, binding string, ttl time.Duration) (*claim, error) {
	owner := randomBase62(16)
	c := &claim{id: id, rk: rk, ttl: ttl}
	c.inFlight, _ = json.Marshal(idemRecord{State: idemInFlight, Binding: binding, Owner: owner})
	c.sent, _ = json.Marshal(idemRecord{State: idemSent, Binding: binding, Owner: owner, TTL: ttl.Milliseconds()})
	deadline := time.Now().Add(id.wait)
	for {
		ctx, cancel := context.WithTimeout(r.Context(), idemOpBound)
		ok, err := id.c.SetNX(ctx, rk, c.inFlight, min(id.lease, ttl)).Result()
		cancel()
		if err != nil {
			return nil, errIdemStore
		}
		if ok {
			return c, nil
		}
		rec, raw, err := id.read(r.Context(), rk)
		switch {
		case errors.Is(err, redis.Nil):
			continue // freed or expired since SETNX: claim it
		case err != nil:
			return nil, err
		case !hmac.Equal([]byte(rec.Binding), []byte(binding)):
			return nil, errIdemReused
		case rec.State == idemDone:
			return nil, replay(w, rec)
		case rec.State == idemSent && id.abandon(r.Context(), rk, raw, rec):
			continue // now done: replayed at the next read
		case time.Now().After(deadline):
			w.Header().Set("Retry-After", retryAfterSeconds(max(min(id.c.PTTL(r.Context(), rk).Val(), id.lease), time.Second)))
			return nil, errIdemInProgress
		}
		select {
		case <-r.Context().Done():
			return nil, errIdemInProgress
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replay answers with a stored outcome.
func replay(w http.ResponseWriter, rec idemRecord) error {
	w.Header().Set("Content-Type", rec.ContentType)
	w.Header().Set("Cache-Control", "no-store") // an answer for this caller and key only
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(rec.Status)
	_, err := w.Write(rec.Body)
	return err
}

// abandon settles a sent claim whose owner has not renewed it for a lease (its
// process died after the point of no return, or lost Redis for that long) as the
// outcome 502 upstream_result_unknown: the request may have reached the upstream,
// so a retry is told to call /check, and never sends it again. It reports whether
// the record is now that outcome; a claim still renewed is left alone.
func (id *Idempotency) abandon(ctx context.Context, rk string, raw []byte, rec idemRecord) bool {
	if rec.TTL <= id.lease.Milliseconds() {
		return false
	}
	out := &recorder{header: http.Header{}}
	writeError(out, errUpstreamUnknown)
	done, _ := json.Marshal(idemRecord{State: idemDone, Binding: rec.Binding, Status: out.status, ContentType: out.header.Get("Content-Type"), Body: out.body.Bytes()})
	n, err := idemAbandon.Run(ctx, id.c, []string{rk}, raw, rec.TTL-id.lease.Milliseconds(), done, rec.TTL).Int()
	return err == nil && n == 1
}

// read returns the record at rk and its stored bytes (redis.Nil when there is none).
func (id *Idempotency) read(ctx context.Context, rk string) (idemRecord, []byte, error) {
	var rec idemRecord
	b, err := id.c.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, nil, err
	}
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return rec, nil, errIdemStore
	}
	return rec, b, nil
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
