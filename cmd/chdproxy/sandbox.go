//go:build !production

package main

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/smartpay"
)

// runSandbox serves the SmartPayments sandbox alone.
func runSandbox(args []string) error {
	fs := newFlagSet("sandbox", "sandbox [--addr ADDR] [--base-url URL] [--callbacks] [--tls-cert FILE --tls-key FILE]")
	addr := fs.String("addr", "127.0.0.1:8083", "listen address")
	base := fs.String("base-url", "", "URL the sandbox's links use (default http(s)://ADDR)")
	callbacks := fs.Bool("callbacks", false, "deliver callbacks to callback_url")
	// TLS lets serve use the sandbox as its upstream (deploy/compose.yaml): serve calls https only.
	lc := listenConfig{}
	fs.StringVar(&lc.TLSCert, "tls-cert", "", "PEM certificate: serve https (with --tls-key)")
	fs.StringVar(&lc.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	scheme := "http://"
	var wrap func(net.Listener) net.Listener
	if lc.TLSCert != "" || lc.TLSKey != "" {
		lc.Addr, scheme = *addr, "https://"
		var err error
		if wrap, err = tlsListener("sandbox", lc); err != nil {
			return err
		}
	}
	if *base == "" {
		*base = scheme + *addr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := redact.NewLogger(os.Stderr, redact.New(redact.Rules{}), "")
	sb := smartpay.NewSandbox(smartpay.Options{BaseURL: *base, Callbacks: *callbacks, Logger: log})
	defer sb.Close()
	b, err := bind([]listener{{name: "sandbox", addr: *addr, handler: sb.Handler(), wrapLn: wrap}})
	if err != nil {
		return err
	}
	log.WithField("addr", *addr).Info("SmartPayments sandbox is up (merchant test:qwerty)")
	return b.serve(ctx, log)
}
