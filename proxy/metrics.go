package proxy

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chdproxy/chdproxy/token"
	"github.com/chdproxy/chdproxy/vault"
)

// metrics is one proxy's Prometheus registry (one per New: tests build many
// proxies in one process, so never the global default registry), served at
// GET /metrics on the admin listener.
//
// Labels carry fixed words only: listener and route names (the policy's route
// NAME, never the path), our stable error codes, operation names, token kinds,
// and merchant ids of the configured keys. Never card data, token ids, keys,
// client addresses, paths, idempotency keys, origins or anything else a caller
// wrote; label values are checked against safeLabel on the way in as well.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	upstream   *prometheus.CounterVec
	limiter    *prometheus.CounterVec
	summarised *prometheus.CounterVec
	transit    *prometheus.HistogramVec
	redis      *prometheus.HistogramVec
	batch      *prometheus.HistogramVec
	batchCalls *prometheus.HistogramVec
	tokens     map[vault.TokenEvent]*prometheus.CounterVec
	auditSync  prometheus.Observer
	auditBatch prometheus.Observer
	auditFail  prometheus.Counter
	certExpiry *prometheus.GaugeVec
}

// Buckets: requests up to the forward listener's write timeout; dependency calls
// from sub-millisecond Redis round trips to the vault deadline; batch sizes up to
// the coalescer's default MaxBatch and beyond.
var (
	requestBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	dependencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	sizeBuckets       = prometheus.ExponentialBuckets(1, 2, 10) // 1 … 512
)

// Label values fixed in advance, so their series exist at zero from the start:
// rate() and absent-series alerts need no first event.
var (
	limiterReasons = []string{"key", "client", "upstream_busy", "vault_busy"}
	transitCalls   = [][2]string{{"encrypt", "card"}, {"encrypt", "cvv"}, {"decrypt", "card"}, {"decrypt", "cvv"}, {"hmac", "fingerprint"}}
	storeOps       = []string{"put", "get", "take_cvv", "take_wallet", "del", "ping", "restore_cvv", "restore_wallet", "put_session", "take_session", "attach_cvv"}
)

// observe makes d's metrics and connects the vault, the limiter and the audit
// trail to them.
func observe(d *deps) *metrics {
	m := newMetrics(d)
	d.Vault.Observe(m)
	d.Limiter.refused = m.limited
	if a, ok := d.Audit.(SyncObservable); ok {
		a.ObserveSync(m.auditSynced)
	}
	return m
}

// SyncObservable is an Auditor that reports each group commit (JSONLAudit does):
// how many records, how long the write and fsync took, and its error.
type SyncObservable interface {
	ObserveSync(func(records int, took time.Duration, err error))
}

func newMetrics(d *deps) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.requests = f.counter("chdproxy_http_requests_total", "Requests answered, by listener, route name, error code (none: no error of ours), status class and merchant (of the caller's key; empty without one).", "listener", "route", "code", "status_class", "merchant")
	m.duration = f.histogram("chdproxy_http_request_duration_seconds", "Time from a request's arrival to its answer, by listener and route name.", requestBuckets, "listener", "route")
	m.upstream = f.counter("chdproxy_upstream_requests_total", "Requests towards an upstream by outcome: answered_2xx…answered_5xx, not_sent (refused before a byte left), or the error code (upstream_unavailable: nothing sent; upstream_result_unknown, upstream_timeout: check before retrying); card_data_sent says an injected request was written.", "route", "outcome", "card_data_sent")
	m.limiter = f.counter("chdproxy_limiter_refusals_total", "Requests refused by a limit: key, client (address), upstream_busy, vault_busy (no in-flight slot in time).", "reason")
	m.summarised = f.counter("chdproxy_audit_summarised_refusals_total", "Refusals of requests without a known key, audited as periodic summary records instead of one record each.", "listener", "code")
	m.transit = f.histogram("chdproxy_vault_transit_duration_seconds", "Vault transit calls (one HTTP request each, batch or not), by operation, key purpose and outcome.", dependencyBuckets, "op", "key", "outcome")
	m.redis = f.histogram("chdproxy_redis_duration_seconds", "Redis round trips of the token store, by operation and outcome.", dependencyBuckets, "op", "outcome")
	m.batch = f.histogram("chdproxy_vault_coalesced_batch_items", "Items per transit call made by the coalescer.", sizeBuckets, "op", "key")
	m.batchCalls = f.histogram("chdproxy_vault_coalesced_batch_callers", "Callers served by one transit call of the coalescer.", sizeBuckets, "op", "key")
	m.tokens = map[vault.TokenEvent]*prometheus.CounterVec{
		vault.TokenCreated:  f.counter("chdproxy_tokens_created_total", "Tokens created, by kind.", "kind"),
		vault.TokenRevealed: f.counter("chdproxy_tokens_revealed_total", "Tokens decrypted for injection, by kind.", "kind"),
		vault.TokenDeleted:  f.counter("chdproxy_tokens_deleted_total", "Tokens deleted on request."),
		vault.CVVConsumed:   f.counter("chdproxy_cvvs_consumed_total", "CVVs deleted at their one use."),
		vault.CVVAttached:   f.counter("chdproxy_cvvs_attached_total", "Fresh CVVs attached to card tokens through CVV re-collection."),
	}
	m.auditSync = f.histogram("chdproxy_audit_fsync_duration_seconds", "Write and fsync of one group-committed batch of audit records.", dependencyBuckets).WithLabelValues()
	m.auditBatch = f.histogram("chdproxy_audit_batch_records", "Audit records per group commit.", sizeBuckets).WithLabelValues()
	m.auditFail = f.counter("chdproxy_audit_write_failures_total", "Audit batches whose write or fsync failed (their operations were refused).").WithLabelValues()
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chdproxy_tls_certificate_expiry_timestamp_seconds", Help: "When the TLS certificate of a listener expires (Unix time)."}, []string{"listener"})
	m.reg.MustRegister(m.certExpiry, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&dependencies{d: d, desc: prometheus.NewDesc("chdproxy_dependency_up", "Whether a dependency answers now (1) or not (0), checked at each scrape: vault (transit), redis, audit (the audit trail can be written).", []string{"dependency"}, nil)})
	m.zeroes()
	return m
}

// zeroes creates the series of every fixed label value.
func (m *metrics) zeroes() {
	for _, r := range limiterReasons {
		m.limiter.WithLabelValues(r)
	}
	for _, c := range transitCalls {
		m.transit.WithLabelValues(c[0], c[1], "ok")
		m.batch.WithLabelValues(c[0], c[1])
		m.batchCalls.WithLabelValues(c[0], c[1])
	}
	for _, op := range storeOps {
		m.redis.WithLabelValues(op, "ok")
	}
	for ev, c := range m.tokens {
		if !byKind(ev) {
			c.WithLabelValues()
			continue
		}
		for _, k := range token.Kinds() {
			c.WithLabelValues(string(k))
		}
	}
}

// byKind says which token events are counted per kind: a delete does not read
// the record, and a CVV is always a card's.
func byKind(ev vault.TokenEvent) bool { return ev == vault.TokenCreated || ev == vault.TokenRevealed }

// factory registers collectors on one registry.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// handler serves the registry in the Prometheus text (or protobuf) format.
func (m *metrics) handler(d *deps) handlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: d.Log, Timeout: 10 * time.Second})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// safeLabel is what any label value taken from a request must look like: a route
// name, an error code, a merchant id. Anything else is counted as "other".
var safeLabel = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func label(v, empty string) string {
	switch {
	case v == "":
		return empty
	case !safeLabel.MatchString(v):
		return "other"
	}
	return v
}

// request counts one answered request (wrap calls it for every request).
func (m *metrics) request(ri *reqInfo, status int, code string, took time.Duration) {
	route := label(ri.route, "unmatched")
	m.requests.WithLabelValues(ri.listener, route, label(code, "none"), statusClass(status), label(ri.merchant, "")).Inc()
	m.duration.WithLabelValues(ri.listener, route).Observe(took.Seconds())
	if out := upstreamOutcome(ri, code); out != "" {
		m.upstream.WithLabelValues(route, out, strconv.FormatBool(ri.injected && ri.sent.Load())).Inc()
	}
}

// upstreamOutcome is what became of a request meant for an upstream, "" for one
// that never was.
func upstreamOutcome(ri *reqInfo, code string) string {
	switch {
	case ri.upstreamStatus != 0:
		return "answered_" + statusClass(ri.upstreamStatus)
	case code == errUpstreamFailed.code, code == errUpstreamUnknown.code, code == errUpstreamTimeout.code,
		code == errEgress.code, code == errUpstreamBody.code:
		return code
	case ri.upstreamHost != "":
		return "not_sent"
	}
	return ""
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// refusalSummarised counts a refusal that went into a summary audit record.
func (m *metrics) refusalSummarised(listener, code string) {
	m.summarised.WithLabelValues(listener, label(code, "none")).Inc()
}

// limited counts a refusal by a limit (Limiter.refused).
func (m *metrics) limited(reason string) { m.limiter.WithLabelValues(reason).Inc() }

// auditSynced hears one group commit of the audit trail (JSONLAudit.ObserveSync).
func (m *metrics) auditSynced(records int, took time.Duration, err error) {
	m.auditSync.Observe(took.Seconds())
	m.auditBatch.Observe(float64(records))
	if err != nil {
		m.auditFail.Inc()
	}
}

// TransitCall implements vault.Observer.
func (m *metrics) TransitCall(op, key string, _ int, took time.Duration, err error) {
	m.transit.WithLabelValues(op, key, outcomeLabel(err)).Observe(took.Seconds())
}

// StoreCall implements vault.Observer.
func (m *metrics) StoreCall(op string, took time.Duration, err error) {
	m.redis.WithLabelValues(op, outcomeLabel(err)).Observe(took.Seconds())
}

// Batch implements vault.Observer.
func (m *metrics) Batch(op, key string, items, callers int) {
	m.batch.WithLabelValues(op, key).Observe(float64(items))
	m.batchCalls.WithLabelValues(op, key).Observe(float64(callers))
}

// Token implements vault.Observer.
func (m *metrics) Token(ev vault.TokenEvent, kind token.Kind) {
	c, ok := m.tokens[ev]
	switch {
	case !ok:
	case byKind(ev):
		c.WithLabelValues(label(string(kind), "unknown")).Inc()
	default:
		c.WithLabelValues().Inc()
	}
}

func outcomeLabel(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// certificateExpires sets the expiry of a listener's TLS certificate.
func (m *metrics) certificateExpires(listener string, notAfter time.Time) {
	m.certExpiry.WithLabelValues(label(listener, "unknown")).Set(float64(notAfter.Unix()))
}

// CertificateExpires publishes when the TLS certificate served on listener
// ("collect", "forward", "admin") expires, as
// chdproxy_tls_certificate_expiry_timestamp_seconds; serve calls it for each.
func (l *Listeners) CertificateExpires(listener string, notAfter time.Time) {
	l.deps.metrics.certificateExpires(listener, notAfter)
}

// dependencies reports chdproxy_dependency_up at each scrape, so an idle replica's
// outage shows too; each check is bounded like /readyz's.
type dependencies struct {
	d    *deps
	desc *prometheus.Desc
}

func (c *dependencies) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *dependencies) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	auditc := make(chan error, 1)
	go func() { auditc <- c.d.Audit.Health() }() // a hung disk must not hang the scrape
	h := c.d.Vault.Health(ctx)
	var aerr error
	select {
	case aerr = <-auditc: // first: a Vault check that used the whole deadline must not fail the audit's
	default:
		select {
		case aerr = <-auditc:
		case <-ctx.Done():
			aerr = errAuditStuck
		}
	}
	for _, dep := range []struct {
		name string
		err  error
	}{{"vault", h.Transit}, {"redis", h.Store}, {"audit", aerr}} {
		up := 1.0
		if dep.err != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up, dep.name)
	}
}
