package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

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
	ls  []listener
	lns []net.Listener
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

// serve serves until ctx ends or one server fails, and shuts all of them down.
func (b *bound) serve(ctx context.Context, log *logrus.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(b.ls))
	for i, l := range b.ls {
		srv := proxy.NewServer(l.addr, l.handler, log, proxy.DefaultTimeouts)
		go func() {
			err := proxy.Serve(ctx, srv, b.lns[i])
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				err = fmt.Errorf("%s listener: %w", l.name, err)
			} else {
				err = nil
			}
			cancel()
			errc <- err
		}()
	}
	var first error
	for range b.ls {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// redisLogger routes go-redis's own messages (dial failures, pool events) into the
// redacting logger instead of its default stderr logger.
type redisLogger struct{ l *logrus.Logger }

func (r redisLogger) Printf(_ context.Context, format string, v ...any) {
	r.l.WithField("logger", "go-redis").Warnf(format, v...)
}

// reopenOnHUP reopens the audit file at each SIGHUP (logrotate moves the file, then
// sends HUP) instead of letting the signal end the process, until stop is called.
// Requests go on meanwhile: the auditor switches files between two group commits.
func reopenOnHUP(log *logrus.Logger, audit *proxy.JSONLAudit) (stop func()) {
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
					continue
				}
				log.Info("SIGHUP: audit file reopened")
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}
