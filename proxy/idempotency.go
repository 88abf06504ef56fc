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
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// Idempotency makes a retried request with the same Idempotency-Key return the first
// answer instead of doing the work twice (a second token, a second payment). Records
// live in Redis, so every replica sees them: the first request claims the key with
// SET NX, duplicates wait for its answer, and a different body under the same key is a
// conflict. Stored answers carry no card data (token metadata, redacted upstream
// responses); request bodies are kept only as an HMAC under a secret key, because a
// tokenize body holds a PAN.
type Idempotency struct {
	c      redis.UniversalClient
	secret []byte
	ttl    time.Duration
	wait   time.Duration // how long a duplicate waits for the first request's answer
	prefix string
}

// newIdempotency stores records in c for ttl (default 24h). secret keys the body HMAC
// and must be the same on every replica.
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

type idemRecord struct {
	Done        bool   `json:"done"`
	MAC         string `json:"mac"`
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

// middleware wraps h, behind the authentication layer: records are per key. Without
// an Idempotency-Key it is h itself.
func (id *Idempotency) middleware(log *logrus.Logger, maxBody int64, h keyedFunc) keyedFunc {
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
		m := hmac.New(sha256.New, id.secret)
		for _, part := range [][]byte{[]byte(r.Method), []byte(r.URL.Path), []byte(r.URL.RawQuery), body} {
			m.Write(part)
			m.Write([]byte{0})
		}
		mac := hex.EncodeToString(m.Sum(nil))
		ikHash := sha256.Sum256([]byte(ik))
		rk := id.prefix + key.Merchant + ":" + key.ID + ":" + hex.EncodeToString(ikHash[:16])

		claim, _ := json.Marshal(idemRecord{MAC: mac})
		ok, err := id.c.SetNX(r.Context(), rk, claim, id.ttl).Result()
		if err != nil {
			return errIdemStore
		}
		if !ok {
			return id.replay(w, r, rk, mac)
		}
		rec := &recorder{header: http.Header{}}
		herr := h(rec, r, key)
		if herr != nil {
			writeErr(rec, herr)
		}
		// Answers that say "try again" free the key; every other answer is final.
		ctx := context.WithoutCancel(r.Context())
		if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
			id.c.Del(ctx, rk)
		} else {
			done, _ := json.Marshal(idemRecord{Done: true, MAC: mac, Status: rec.status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()})
			if err := id.c.Set(ctx, rk, done, id.ttl).Err(); err != nil {
				log.WithField("request_id", info(r).id).WithError(err).Error("idempotency record not stored")
			}
		}
		rec.flush(w)
		return herr
	}
}

// replay answers a duplicate: the stored answer, or a conflict.
func (id *Idempotency) replay(w http.ResponseWriter, r *http.Request, rk, mac string) error {
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
		if !hmac.Equal([]byte(rec.MAC), []byte(mac)) {
			return errIdemReused
		}
		if rec.Done {
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
