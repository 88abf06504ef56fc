package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
	"github.com/chdproxy/chdproxy/vault"
)

// purgeFlags are purge's flags.
type purgeFlags struct {
	merchant, config, operator string
	yes                        bool
	batch                      int
}

// runPurge is `purge`: offboarding. Every record (with its fingerprints), CVV,
// wallet-used marker and idempotency record of one merchant is deleted from Redis,
// and the purge is on the audit trail with who ran it and what it deleted.
func runPurge(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return purge(ctx, args, os.Stdin, isTerminal(os.Stdin), stdout, stderr)
}

// isTerminal reports whether f is a terminal (not a pipe, a file or /dev/null).
func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(fd.Fd()))
}

func parsePurgeFlags(args []string) (purgeFlags, error) {
	f := purgeFlags{operator: os.Getenv("USER")}
	fs := newFlagSet("purge", "purge --merchant ID --config FILE [--yes] [--operator NAME]")
	fs.StringVar(&f.merchant, "merchant", "", "the merchant whose data is deleted")
	fs.StringVar(&f.config, "config", "", "serve's configuration file (Redis, audit trail, policy)")
	fs.BoolVar(&f.yes, "yes", false, "do not ask; required when stdin is not a terminal")
	fs.StringVar(&f.operator, "operator", f.operator, "who runs the purge, for the audit record (default $USER)")
	fs.IntVar(&f.batch, "batch", 1000, "keys per SCAN and per UNLINK round trip")
	if err := fs.parse(args, 0); err != nil {
		return f, err
	}
	switch {
	case f.merchant == "" || f.config == "":
		return f, fs.failf("--merchant ID and --config FILE are required")
	case !vault.ValidMerchantID(f.merchant):
		return f, fs.failf("--merchant: not a merchant id (1-64 characters of A-Z, a-z, 0-9, '_', '-' and '.')")
	case strings.TrimSpace(f.operator) == "":
		return f, fs.failf("--operator NAME is required when $USER is not set")
	case f.batch < 1:
		return f, fs.failf("--batch: want at least 1")
	}
	return f, nil
}

// purge runs `purge` with in as the terminal an operator confirms on (interactive).
func purge(ctx context.Context, args []string, in io.Reader, interactive bool, stdout, stderr io.Writer) error {
	f, err := parsePurgeFlags(args)
	if err != nil {
		return err
	}
	cfg, err := loadServeConfig(f.config)
	if err != nil {
		return err
	}
	for _, m := range cfg.Merchants {
		if m.ID == f.merchant {
			return fmt.Errorf("merchant %s is still in %s: remove it and reload serve (SIGHUP) first, or its traffic writes new records while the purge runs", f.merchant, f.config)
		}
	}
	pol, err := policy.Load(cfg.Policy, policy.LintOptions{})
	if err != nil {
		return err
	}
	rdb, err := cfg.redisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := confirmPurge(f, cfg, in, interactive, stderr); err != nil {
		return err
	}
	audit, closeAudit, err := openAudit(cfg.Audit, pol.Hash)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer closeAudit()
	ev := proxy.AdminEvent{Event: "purge", Outcome: "attempt", Source: "cli", Merchant: f.merchant, Operator: f.operator}
	if err := proxy.WriteAdminEvent(audit, ev); err != nil {
		return fmt.Errorf("audit: the purge cannot be put on record, nothing was deleted: %w", err)
	}
	counts, perr := purgeMerchant(ctx, rdb, cfg.Redis.Prefix, f, isTerminal(stderr), stderr)
	ev.Outcome, ev.Detail = "success", map[string]any{"deleted": counts}
	if perr != nil {
		ev.Outcome, ev.Code = "failure", "redis_unavailable"
	}
	out := stdout
	if cfg.Audit == "stdout" { // keep the audit stream JSON lines only
		out = stderr
	}
	fmt.Fprintf(out, "purged merchant %s: %s\n", f.merchant, countLine(counts))
	aerr := proxy.WriteAdminEvent(audit, ev)
	if aerr != nil {
		aerr = fmt.Errorf("audit: the purge's outcome record was not written: %w", aerr)
	}
	return errors.Join(perr, aerr)
}

// confirmPurge goes on with --yes, or when the operator types the merchant id at
// the terminal; without a terminal, --yes is required.
func confirmPurge(f purgeFlags, cfg *serveConfig, in io.Reader, interactive bool, stderr io.Writer) error {
	if f.yes {
		return nil
	}
	if !interactive {
		return errors.New("purge deletes data for good: pass --yes (stdin is not a terminal to ask on)")
	}
	fmt.Fprintf(stderr, "This deletes every token, CVV and idempotency record of merchant %s in Redis %s (prefix %q).\nType the merchant id to go on: ",
		f.merchant, strings.Join(cfg.Redis.Addrs, ","), cmp.Or(cfg.Redis.Prefix, "chd"))
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(answer) != f.merchant {
		return errors.New("not confirmed: nothing was deleted")
	}
	return nil
}

// purgeMerchant deletes the merchant's keys, with a progress bar on a terminal.
func purgeMerchant(ctx context.Context, rdb redis.UniversalClient, prefix string, f purgeFlags, bar bool, stderr io.Writer) (map[string]int64, error) {
	spaces, err := vault.NewStore(rdb, vault.StoreOptions{Prefix: prefix}).MerchantSpaces(f.merchant)
	if err != nil {
		return nil, err
	}
	spaces = append(spaces, vault.KeySpace{Name: "idempotency", Prefix: proxy.IdempotencyKeyPrefix(f.merchant)})
	opts := vault.PurgeOptions{Batch: f.batch}
	if bar {
		pb := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("purging "+f.merchant),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
		defer pb.Finish()
		opts.Progress = func(n int64) { pb.Set64(n) }
	}
	return vault.Purge(ctx, rdb, spaces, opts)
}

// countLine is "N records, N cvvs, N wallet_used, N cvv_sessions, N idempotency (N keys)".
func countLine(counts map[string]int64) string {
	var parts []string
	var total int64
	for _, name := range []string{"records", "cvvs", "wallet_used", "cvv_sessions", "idempotency"} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[name], name))
		total += counts[name]
	}
	return fmt.Sprintf("%s (%d keys)", strings.Join(parts, ", "), total)
}
