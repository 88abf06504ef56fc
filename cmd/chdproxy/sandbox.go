package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/smartpay"
)

// runSandbox serves the SmartPayments sandbox alone.
func runSandbox(args []string) error {
	fs := newFlagSet("sandbox", "sandbox [--addr ADDR] [--base-url URL] [--callbacks]")
	addr := fs.String("addr", "127.0.0.1:8083", "listen address")
	base := fs.String("base-url", "", "URL the sandbox's links use (default http://ADDR)")
	callbacks := fs.Bool("callbacks", false, "deliver callbacks to callback_url")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	if *base == "" {
		*base = "http://" + *addr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := redact.NewLogger(os.Stderr, redact.New(redact.Rules{}), "")
	sb := smartpay.NewSandbox(smartpay.Options{BaseURL: *base, Callbacks: *callbacks, Logger: log})
	defer sb.Close()
	b, err := bind([]listener{{name: "sandbox", addr: *addr, handler: sb.Handler()}})
	if err != nil {
		return err
	}
	log.WithField("addr", *addr).Info("SmartPayments sandbox is up (merchant test:qwerty)")
	return b.serve(ctx, log)
}
