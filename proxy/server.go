package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/redact"
)

// Timeouts bounds every server: slow clients cannot hold connections open.
type Timeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Write      time.Duration
	Idle       time.Duration
}

// DefaultTimeouts leave room for the forward listener's upstream call inside Write.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 15 * time.Second, Write: 45 * time.Second, Idle: 60 * time.Second}

// maxHeaderBytes caps request headers on every listener.
const maxHeaderBytes = 16 << 10

// NewServer returns an http.Server with every timeout set and the standard library's
// own error log routed into our redacting logger.
func NewServer(addr string, h http.Handler, log *logrus.Logger, t Timeouts) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          redact.StdLogger(log),
	}
}

// Serve runs srv on ln until ctx ends, then shuts it down gracefully (ServeDrain
// with the shortest drain it allows).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	return ServeDrain(ctx, srv, ln, 0)
}

// ServeDrain runs srv on ln until ctx ends, then stops accepting and gives the
// requests in flight until drain to finish. drain is never shorter than
// srv.WriteTimeout, the longest a request runs: a payment waiting on a slow upstream
// gets its answer instead of a cut connection. What is still running at the
// deadline is cut, and the error says so.
func ServeDrain(ctx context.Context, srv *http.Server, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	drain = max(drain, srv.WriteTimeout, time.Second)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("the drain cut requests still in flight after %v: %w", drain, err)
	}
	return nil
}

// reqInfo is what the access log and audit records learn about a request as it runs.
type reqInfo struct {
	id             string
	listener       string
	event          string // of the audit records; "" for none
	route          string
	merchant       string
	keyID          string
	token          string
	upstreamHost   string
	upstreamStatus int
	client         netip.Addr  // resolved once by wrap (clientAddr): limits and audit use it
	injected       bool        // the outbound body carries card data
	sent           atomic.Bool // the outbound request was written
	dir            *directory  // the keys and merchants in force when it started (deps.directory)
}

// clientString is the client address for records, "" when unknown.
func (ri *reqInfo) clientString() string {
	if !ri.client.IsValid() {
		return ""
	}
	return ri.client.String()
}

type ctxKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// errTransferEncoding refuses request bodies framed by Transfer-Encoding (see wrap).
var errTransferEncoding = newError(http.StatusBadRequest, "transfer_encoding_not_allowed", "request bodies must be sent with Content-Length, not Transfer-Encoding")

// handlerFunc is a handler that returns its error; wrap writes the error response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// wrap turns a handlerFunc into an http.Handler with a request id, panic recovery,
// one error writer, an access log line that names the route (never the URL) and,
// when event is not empty, an audit record.
func wrap(d *deps, listener, event string, h handlerFunc) http.Handler {
	log := d.Log
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{id: "req_" + randomBase62(16), listener: listener, event: event}
		ri.client = clientAddr(r, d.Limiter.trusted)
		if rt := mux.CurrentRoute(r); rt != nil {
			ri.route = rt.GetName()
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Request-Id", ri.id)
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					log.WithFields(logrus.Fields{"request_id": ri.id, "route": ri.route}).Error("handler panic")
					err = errInternal
				}
			}()
			if len(r.TransferEncoding) > 0 {
				// net/http honours a chunked body and silently drops a Content-Length
				// sent with it (RFC 9112 §6.3); a front end that reads the Content-Length
				// instead would see another request boundary (request smuggling). Our
				// bodies are small JSON: refuse framing by Transfer-Encoding, and close
				// the connection so nothing behind this body is read as a request.
				sw.Header().Set("Connection", "close")
				err = errTransferEncoding
				return
			}
			err = h(sw, r)
		}()
		code := ""
		if err != nil {
			ae := classify(err)
			if sw.status == 0 { // not answered yet (the idempotency layer answers itself)
				ae = writeErr(sw, err)
			}
			code = ae.code
			if ae == errInternal {
				log.WithFields(logrus.Fields{"request_id": ri.id, "route": ri.route}).WithError(err).Error("internal error")
			}
		}
		d.answered(ri, sw.status, code, time.Since(start))
		if event == "" {
			return
		}
		if ri.merchant == "" && sw.status >= 400 && sw.status < 500 {
			// Refused before any key was known: counted, not one fsync each.
			d.metrics.refusalSummarised(listener, code)
			d.refusals.add(refusalKey{listener: listener, event: event, route: ri.route, code: code, source: ri.clientString(), status: sw.status})
			return
		}
		// The outcome record is queued, not awaited: the access itself was recorded
		// before the operation (see deps.attempt and forward.detokenize), and the
		// connection's next request need not wait for this fsync.
		rec := auditRecord(r, listener, event)
		rec.Outcome, rec.Status, rec.Code = outcome(sw.status, ri.upstreamStatus != 0), sw.status, code
		d.Audit.Enqueue(rec, func(aerr error) {
			// The answer is out; the access is in the log above.
			log.WithFields(logrus.Fields{"request_id": ri.id, "event": event}).WithError(aerr).Error("audit write failed")
		})
	})
}

// answered writes a request's access log line and counts it in the metrics.
func (d *deps) answered(ri *reqInfo, status int, code string, took time.Duration) {
	f := logrus.Fields{
		"listener":    ri.listener,
		"route":       ri.route,
		"status":      status,
		"duration_ms": float64(took.Microseconds()) / 1000,
		"request_id":  ri.id,
	}
	if ri.merchant != "" {
		f["merchant"], f["key_id"] = ri.merchant, ri.keyID
	}
	if ri.token != "" {
		f["token"] = ri.token
	}
	if code != "" {
		f["code"] = code
	}
	d.Log.WithFields(f).Info("request")
	d.metrics.request(ri, status, code, took)
}

// auditRecord fills what the request has learnt so far.
func auditRecord(r *http.Request, listener, event string) AuditRecord {
	ri := info(r)
	return AuditRecord{
		Time: time.Now().UTC(), Event: event, Listener: listener, Route: ri.route,
		Merchant: ri.merchant, KeyID: ri.keyID, Token: ri.token,
		UpstreamHost: ri.upstreamHost, UpstreamStatus: ri.upstreamStatus,
		CardDataSent: ri.injected && ri.sent.Load(), SourceIP: ri.clientString(), RequestID: ri.id,
	}
}

// newRouter returns a router whose 404 and 405 answers use our error format.
// Unknown routes are audited too: probing is an access attempt.
func newRouter(d *deps, listener string) *mux.Router {
	// Paths match exactly as sent: no redirect to a cleaned path (which mux would answer
	// itself, unlogged and unaudited, also to CONNECT with its authority-form target).
	rt := mux.NewRouter().SkipClean(true)
	rt.NotFoundHandler = wrap(d, listener, "unknown_route", d.clientLimited(func(http.ResponseWriter, *http.Request) error { return errNotFound }))
	rt.MethodNotAllowedHandler = wrap(d, listener, "unknown_route", d.clientLimited(func(http.ResponseWriter, *http.Request) error { return errMethodNotAllowed }))
	return rt
}
