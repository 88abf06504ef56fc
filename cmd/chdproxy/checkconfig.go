package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/redact"
	"github.com/chdproxy/chdproxy/vault"
)

// serveFlags are serve's flags.
type serveFlags struct {
	config      string
	checkConfig bool
}

func parseServeFlags(args []string) (serveFlags, error) {
	var f serveFlags
	fs := newFlagSet("serve", "serve --config FILE [--check-config]")
	fs.StringVar(&f.config, "config", "", "configuration file (example: deploy/chdproxy.example.yaml)")
	fs.BoolVar(&f.checkConfig, "check-config", false, "check the configuration and its policy, print ok or every problem, and exit (binds and connects to nothing)")
	if err := fs.parse(args, 0); err != nil {
		return f, err
	}
	if f.config == "" {
		return f, fs.failf("--config FILE is required")
	}
	return f, nil
}

// runServeCommand is `serve`: with --check-config only the checks, else serve itself.
func runServeCommand(args []string, stdout, stderr io.Writer) error {
	f, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	if f.checkConfig {
		return checkConfig(f.config, stdout, stderr)
	}
	return runServe(args)
}

// checkConfig prints "FILE: ok" when serve would start with FILE as far as can
// be told without binding or connecting, or else every problem and exits 1.
func checkConfig(file string, stdout, stderr io.Writer) error {
	problems, hash := configProblems(file)
	if len(problems) == 0 {
		fmt.Fprintf(stdout, "%s: ok (policy sha256 %s)\n", file, hash)
		return nil
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "%s: %s\n", file, p)
	}
	fmt.Fprintf(stderr, "%s: %d problem(s)\n", file, len(problems))
	return exitCode(1)
}

// configProblems runs what serve checks before it binds, in serve's own
// functions, and collects every problem instead of stopping at the first. Vault
// keys are not created and nothing is dialled: the Vault and Redis clients are
// built (files read, addresses and TLS settings checked) and dropped. When the
// policy fails, the embedded default stands in for it so the other checks still run.
func configProblems(file string) (problems []string, policyHash string) {
	add := func(err error) {
		if err == nil {
			return
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			problems = append(problems, strings.TrimPrefix(line, file+": "))
		}
	}
	cfg, err := loadServeConfig(file)
	if err != nil {
		add(err)
		return problems, ""
	}
	pol, lint, err := policy.LintFile(cfg.Policy, policy.LintOptions{})
	for _, p := range lint {
		problems = append(problems, fmt.Sprintf("policy %s: %s", cfg.Policy, p))
	}
	if err != nil || len(lint) > 0 {
		if err != nil {
			add(fmt.Errorf("policy: %w", err))
		}
		if pol, err = policy.LoadDefault(); err != nil {
			add(err)
			return problems, ""
		}
	}
	rdb, err := cfg.redisClient()
	if err != nil {
		add(err)
		rdb = vault.NewRedisClient(vault.RedisOptions{Addrs: cfg.Redis.Addrs})
	}
	defer rdb.Close()
	v, vaultErr := cfg.vault(context.Background(), pol, rdb, nil) // no logger: no login, no key creation
	add(vaultErr)
	pc, pcErr := cfg.proxyConfig()
	add(pcErr)
	for _, l := range []struct {
		name string
		lc   listenConfig
	}{{"collect", cfg.Listen.Collect}, {"forward", cfg.Listen.Forward}, {"admin", cfg.Listen.Admin}} {
		_, err := tlsListener(l.name, l.lc)
		add(err)
	}
	add(auditProblem(cfg.Audit))
	if vaultErr == nil && pcErr == nil {
		pc.Policy, pc.Vault, pc.Redis = pol, v, rdb
		pc.Log = redact.NewLogger(io.Discard, redact.New(pol.RedactRules()), pol.Hash)
		pc.Audit = proxy.NewJSONLAudit(io.Discard, pol.Hash)
		ls, err := proxy.New(pc)
		add(err)
		if ls != nil {
			ls.Close()
		}
	}
	return problems, pol.Hash
}

// auditProblem says why serve could not append to the audit file, without
// creating it: its folder must exist, and an existing file must open for appending.
func auditProblem(where string) error {
	if where == "stdout" {
		return nil
	}
	if fi, err := os.Stat(filepath.Dir(where)); err != nil || !fi.IsDir() {
		return fmt.Errorf("audit: the folder of %s does not exist", where)
	}
	f, err := os.OpenFile(where, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return f.Close()
}
