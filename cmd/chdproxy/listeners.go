package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/proxy"
)

// listener is one server the process runs.
type listener struct {
	name    string
	addr    string
	handler http.Handler
	wrapLn  func(net.Listener) net.Listener // TLS, when configured
}

// bound is listeners bound to their addresses and not serving yet: what a
// command announces (dev.json, "serving") is true only once bind succeeded.
type bound struct {
	ls       []listener
	lns      []net.Listener
	shutdown shutdown       // how serve stops; the zero value stops at once
	timeouts proxy.Timeouts // of every server; zero: proxy.DefaultTimeouts
}

// shutdown is how a bound set of listeners stops when its context ends.
type shutdown struct {
	drain func()        // readiness goes false (proxy.Listeners.Drain)
	delay time.Duration // then the listeners go on serving this long, so a load balancer notices
	// timeout is how long requests in flight get to finish once the listeners stop
	// accepting; proxy.ServeDrain raises it to the write timeout.
	timeout time.Duration
	probes  string // the listener that stops last, so probes read "draining" until the end
}

// bind binds every address, so a port in use fails before anything serves or is
// announced; on an error nothing stays bound.
func bind(ls []listener) (*bound, error) {
	b := &bound{ls: ls, lns: make([]net.Listener, 0, len(ls))}
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("%s listener: %w", l.name, err)
		}
		if l.wrapLn != nil {
			ln = l.wrapLn(ln)
		}
		b.lns = append(b.lns, ln)
	}
	return b, nil
}

// close releases the addresses of listeners that will not be served.
func (b *bound) close() {
	for _, ln := range b.lns {
		ln.Close()
	}
}

// serve serves until ctx ends or one server fails, then shuts every server down
// as b.shutdown says: readiness false, the delay, then stop accepting and finish
// the requests in flight (the probes listener last).
func (b *bound) serve(ctx context.Context, log *logrus.Logger) error {
	traffic, stopTraffic := context.WithCancel(context.Background())
	probes, stopProbes := context.WithCancel(context.Background())
	defer stopTraffic()
	defer stopProbes()
	failed := make(chan struct{}, len(b.ls))
	errs := make([]error, len(b.ls))
	var trafficWG, probesWG sync.WaitGroup
	for i, l := range b.ls {
		srv := proxy.NewServer(l.addr, l.handler, log, cmp.Or(b.timeouts, proxy.DefaultTimeouts))
		sctx, wg := traffic, &trafficWG
		if l.name == b.shutdown.probes {
			sctx, wg = probes, &probesWG
		}
		wg.Go(func() {
			if err := proxy.ServeDrain(sctx, srv, b.lns[i], b.shutdown.timeout); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs[i] = fmt.Errorf("%s listener: %w", l.name, err)
				failed <- struct{}{}
			}
		})
	}
	select {
	case <-failed:
	case <-ctx.Done():
		b.startDrain(log, failed)
	}
	stopTraffic()
	trafficWG.Wait()
	stopProbes()
	probesWG.Wait()
	return errors.Join(errs...)
}

// startDrain makes readiness false and waits the delay (or until a server fails).
func (b *bound) startDrain(log *logrus.Logger, failed <-chan struct{}) {
	if b.shutdown.drain == nil {
		return
	}
	b.shutdown.drain()
	log.WithField("delay", b.shutdown.delay.String()).Info("draining: /readyz answers 503; the listeners stop accepting after the delay")
	select {
	case <-failed:
	case <-time.After(b.shutdown.delay):
	}
}

// redisLogger routes go-redis's own messages (dial failures, pool events) into the
// redacting logger instead of its default stderr logger.
type redisLogger struct{ l *logrus.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.WithField("logger", "go-redis").Warnf(format, v...)
}

// reopenOnHUP reopens the audit file at each SIGHUP (logrotate moves the file, then
// sends HUP) and then calls reload when not nil (serve re-reads its keys and
// merchants), instead of letting the signal end the process, until stop is called.
// Requests go on meanwhile: the auditor switches files between two group commits.
func reopenOnHUP(log *logrus.Logger, audit *proxy.JSONLAudit, reload func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := audit.Reopen(); err != nil {
					log.WithError(err).Error("SIGHUP: the audit file could not be reopened; still writing to the old one")
				} else {
					log.Info("SIGHUP: audit file reopened")
				}
				if reload != nil {
					reload()
				}
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// clientAuthRequire is listen.forward.client_auth asking every connection for a client
// certificate; "off" (or nothing) asks none.
const clientAuthRequire = "require"

// clientAuthProblem says what is wrong with a listener's client_auth and client_ca:
// only the forward listener takes them, require needs a CA bundle and chdproxy's own
// TLS, and a bundle without require would look like protection that is not there.
func clientAuthProblem(name string, lc listenConfig) error {
	switch {
	case lc.ClientAuth == "" && lc.ClientCA == "" || lc.ClientAuth == "off" && lc.ClientCA == "":
		return nil
	case name != "forward":
		return fmt.Errorf("listen.%s: client_auth and client_ca are for listen.forward only", name)
	case lc.ClientAuth != clientAuthRequire && lc.ClientAuth != "off" && lc.ClientAuth != "":
		return fmt.Errorf("listen.%s.client_auth: %q is neither require nor off", name, lc.ClientAuth)
	case lc.ClientAuth != clientAuthRequire:
		return fmt.Errorf("listen.%s: client_ca is set but client_auth is not require: no certificate would be asked for", name)
	case lc.ClientCA == "":
		return fmt.Errorf("listen.%s: client_auth: require needs client_ca (the PEM bundle of the CAs that issue the backends' certificates)", name)
	case lc.TLSCert == "" || lc.TLSKey == "":
		return fmt.Errorf("listen.%s: client_auth: require needs tls_cert and tls_key (chdproxy's own TLS checks the certificates)", name)
	}
	return nil
}

// requireClientCerts makes conf refuse a handshake without a client certificate issued
// by a CA of lc.ClientCA (that bundle only, not the system roots) when lc asks for it.
// Which merchant a certificate may act for is proxy's check (proxy.Merchant.ClientCerts).
func requireClientCerts(conf *tls.Config, name string, lc listenConfig) error {
	if lc.ClientAuth != clientAuthRequire {
		return nil
	}
	pem, err := os.ReadFile(lc.ClientCA)
	if err != nil {
		return fmt.Errorf("listen.%s.client_ca: %w", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("listen.%s.client_ca: %s holds no PEM certificate", name, lc.ClientCA)
	}
	conf.ClientAuth, conf.ClientCAs = tls.RequireAndVerifyClientCert, pool
	return nil
}

// clientCertProblems lists the merchants' client_certs that are not digests, and, when
// the forward listener requires client certificates, every merchant with a secret key
// (in the file or in env, CHDPROXY_KEYS) that lists none: its backends could not call.
func (cfg *serveConfig) clientCertProblems(env string) []error {
	var errs []error
	listed := map[string]bool{}
	secret := map[string]bool{}
	for i, m := range cfg.Merchants {
		for j, d := range m.ClientCerts {
			if raw, err := hex.DecodeString(strings.TrimPrefix(d, "sha256:")); err != nil || len(raw) != sha256.Size || !strings.HasPrefix(d, "sha256:") {
				errs = append(errs, fmt.Errorf("merchants[%d].client_certs[%d]: use sha256:<64 hex digits> of the certificate's SubjectPublicKeyInfo", i, j))
			}
		}
		listed[m.ID] = listed[m.ID] || len(m.ClientCerts) > 0
		for _, k := range m.Keys {
			secret[m.ID] = secret[m.ID] || k.Role == proxy.RoleSecret
		}
	}
	for item := range strings.SplitSeq(env, ",") {
		if parts := strings.SplitN(strings.TrimSpace(item), ":", 3); len(parts) == 3 && proxy.Role(parts[1]) == proxy.RoleSecret {
			secret[parts[0]] = true
		}
	}
	if cfg.Listen.Forward.ClientAuth != clientAuthRequire {
		return errs
	}
	for _, id := range slices.Sorted(maps.Keys(secret)) {
		if !listed[id] {
			errs = append(errs, fmt.Errorf("merchant %s: listen.forward.client_auth is require but it lists no client_certs: its secret keys could not be used", id))
		}
	}
	return errs
}
