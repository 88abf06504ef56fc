package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runHealthcheck is the probe of a shell-less image: GET the admin listener's
// /readyz and exit 0 on 200, 1 on anything else, with one line saying which.
func runHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", "healthcheck [--url URL] [--ca FILE] [--timeout DURATION]")
	rawURL := fs.String("url", "http://127.0.0.1:8082/readyz", "readiness URL of the admin listener (http or https)")
	caFile := fs.String("ca", "", "PEM CA bundle for an https URL, added to the system roots")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fs.failf("--url: want an http:// or https:// URL")
	}
	roots, err := certPool(*caFile) // nil without --ca: the system roots
	if err != nil {
		return fmt.Errorf("--ca: %w", err)
	}
	client := &http.Client{
		Timeout: *timeout,
		// No Proxy: a probe goes straight to the listener, whatever HTTPS_PROXY says.
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Get(u.String())
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return exitCode(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // /readyz names each dependency's state
	body = bytes.Join(bytes.Fields(body), []byte(" "))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s %s\n", resp.Status, body)
		return exitCode(1)
	}
	fmt.Fprintf(stdout, "healthy: %s %s\n", resp.Status, body)
	return nil
}
