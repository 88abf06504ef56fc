package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
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
	shutdown shutdown // how serve stops; the zero value stops at once
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
		srv := proxy.NewServer(l.addr, l.handler, log, proxy.DefaultTimeouts)
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
