package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/chdproxy/chdproxy/vault"
)

// runRewrap is `rewrap`: after a transit key rotation, re-encrypt every stored
// record (card, wallet and CVV ciphertexts) under the newest key versions.
// It runs with an operator token (deploy/vault-policy-rewrap.hcl), beside a
// serving chdproxy; interrupted, it is finished by running it again.
func runRewrap(args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("rewrap", "rewrap --config FILE --token-file FILE [--batch N]")
	config := fs.String("config", "", "serve's configuration file (Vault and Redis settings)")
	// Not the config's Vault identity: the serving policy cannot read key versions.
	tokenFile := fs.String("token-file", "", "file with the operator's Vault token (policy deploy/vault-policy-rewrap.hcl)")
	batch := fs.Int("batch", 100, "records per Vault call")
	if err := fs.parse(args, 0); err != nil {
		return err
	}
	if *config == "" || *tokenFile == "" || *batch < 1 || *batch > 1000 {
		return fs.failf("--config FILE and --token-file FILE are required, --batch must be 1 to 1000")
	}
	cfg, err := loadServeConfig(*config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return rewrap(ctx, cfg, *tokenFile, *batch, stdout)
}

// rewrap runs the rewrap with a progress bar on a terminal and prints the final count.
func rewrap(ctx context.Context, cfg *serveConfig, tokenFile string, batch int, stdout io.Writer) error {
	rdb, err := cfg.redisClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	token, err := readSecretFile(tokenFile)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	tr, err := vault.NewVaultTransit(vault.VaultTransitConfig{
		Address: cfg.Vault.Address, Token: token, Mount: cfg.Vault.Mount, CACertFile: cfg.Vault.CAFile,
		CardKey: cfg.Vault.CardKey, CVVKey: cfg.Vault.CVVKey, Timeout: cfg.Vault.Timeout,
	})
	if err != nil {
		return err
	}
	v, err := vault.New(vault.Config{Transit: tr, Store: vault.NewStore(rdb, vault.StoreOptions{Prefix: cfg.Redis.Prefix})})
	if err != nil {
		return err
	}
	total, err := v.CountRecords(ctx)
	if err != nil {
		return err
	}
	bar := progressBar(stdout, total)
	c, err := v.Rewrap(ctx, tr, vault.RewrapOptions{Batch: batch, Progress: func(c vault.RewrapCount) {
		if bar != nil {
			_ = bar.Set(min(c.Scanned, total)) // the store may grow while it runs
		}
	}})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "rewrap: %d scanned, %d rewrapped, %d already current, %d skipped (changed meanwhile), %d failed\n",
		c.Scanned, c.Rewrapped, c.Current, c.Changed, c.Failed)
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("rewrap: interrupted; run it again to finish (records already rewrapped are skipped)")
	case err != nil:
		return err
	case c.Failed > 0:
		return fmt.Errorf("rewrap: %d records do not decrypt (tampered, or below min_decryption_version); they were left as they are", c.Failed)
	}
	return nil
}

// progressBar is a bar with ETA on a terminal, nil elsewhere (logs and
// pipes get the final count line only).
func progressBar(w io.Writer, total int) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("rewrap"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
}
