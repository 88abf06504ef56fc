package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

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

// listenAll binds every address first, so a port in use fails before anything serves,
// then serves until ctx ends or one server fails, and shuts all of them down.
func listenAll(ctx context.Context, log *logrus.Logger, ls []listener) error {
	lns := make([]net.Listener, 0, len(ls))
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("%s listener: %w", l.name, err)
		}
		if l.wrapLn != nil {
			ln = l.wrapLn(ln)
		}
		lns = append(lns, ln)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(ls))
	for i, l := range ls {
		srv := proxy.NewServer(l.addr, l.handler, log, proxy.DefaultTimeouts)
		go func() {
			err := proxy.Serve(ctx, srv, lns[i])
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
	for range ls {
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
