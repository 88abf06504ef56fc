package main

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/chdproxy/chdproxy/policy"
	"github.com/chdproxy/chdproxy/proxy"
)

// reloader re-reads serve's configuration file at SIGHUP and swaps the merchants and
// keys of the running listeners, so that a leaked key is revoked without a restart.
// Everything else in the file is read once, at start-up.
type reloader struct {
	path       string
	started    *serveConfig // as serve started: what a reload does not change
	policyHash string       // of the policy serve runs
	ls         *proxy.Listeners
	log        *logrus.Logger
	audit      proxy.Auditor
}

// reload checks the file as start-up does (its policy and every unsafe setting
// included) and swaps the keys and merchants. A file that fails changes nothing.
// Changes that need a restart are logged (names of settings only). Either way the
// outcome is audited, with counts and never a digest.
func (rl *reloader) reload() error {
	ev := proxy.AdminEvent{Event: "reload", Source: "process"}
	restart, pc, err := rl.load()
	if err == nil {
		err = rl.ls.Reload(pc.Keys, pc.Merchants)
	}
	if err != nil {
		ev.Outcome, ev.Code = "failure", "invalid_config"
		rl.log.WithError(err).Error("SIGHUP: the configuration was not reloaded; the keys and merchants in force stay")
	} else {
		ev.Detail = map[string]any{"merchants": len(pc.Merchants), "keys": pc.Keys.Len()}
		fields := logrus.Fields{"merchants": len(pc.Merchants), "keys": pc.Keys.Len()}
		if len(restart) > 0 {
			ev.Detail["restart_needed"], fields["restart_needed"] = restart, strings.Join(restart, ",")
			rl.log.WithFields(fields).Warn("SIGHUP: these settings changed and take effect at the next restart only")
		}
		rl.log.WithFields(fields).Info("SIGHUP: keys and merchants reloaded")
	}
	// The swap is not undone when its record fails: a revoked key must stay revoked.
	if aerr := proxy.WriteAdminEvent(rl.audit, ev); aerr != nil {
		rl.log.WithError(aerr).Error("audit: the reload record was not written")
	}
	return err
}

// load reads and checks the file; restart names the settings that differ from the
// running ones (top-level keys of the file, "policy" for the policy's content).
func (rl *reloader) load() (restart []string, _ proxy.Config, _ error) {
	cfg, err := loadServeConfig(rl.path)
	if err != nil {
		return nil, proxy.Config{}, err
	}
	pol, err := policy.Load(cfg.Policy, policy.LintOptions{})
	if err != nil {
		return nil, proxy.Config{}, err
	}
	pc, err := cfg.proxyConfig()
	if err != nil {
		return nil, proxy.Config{}, err
	}
	restart = restartNeeded(rl.started, cfg)
	if pol.Hash != rl.policyHash && !slices.Contains(restart, "policy") {
		restart = append(restart, "policy")
	}
	return restart, pc, nil
}

// restartNeeded names the top-level settings other than merchants that differ.
func restartNeeded(running, next *serveConfig) []string {
	var changed []string
	a, b := reflect.ValueOf(*running), reflect.ValueOf(*next)
	for i := range a.NumField() {
		name, _, _ := strings.Cut(a.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "merchants" && !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			changed = append(changed, name)
		}
	}
	return changed
}

// serveRecorded serves b between a start and a stop record (PCI DSS 10.2.1.6: the
// audit trail records its own start and stop; the policy hash is on every record).
// Without its start record nothing is served. The stop record comes after the
// listeners' last records (ls.Close writes the refusal summaries).
func serveRecorded(ctx context.Context, b *bound, ls *proxy.Listeners, log *logrus.Logger, audit proxy.Auditor, mode string, merchants, keys int) error {
	start := proxy.AdminEvent{Event: "start", Source: "process", Detail: map[string]any{
		"mode": mode, "version": shortVersion(), "merchants": merchants, "keys": keys,
	}}
	if err := proxy.WriteAdminEvent(audit, start); err != nil {
		b.close()
		return fmt.Errorf("audit: the start record was not written: %w", err)
	}
	served := b.serve(ctx, log)
	ls.Close()
	stop := proxy.AdminEvent{Event: "stop", Source: "process", Detail: map[string]any{"mode": mode}}
	if served != nil {
		stop.Outcome, stop.Code = "failure", "listener_failed"
	}
	if err := proxy.WriteAdminEvent(audit, stop); err != nil {
		log.WithError(err).Error("audit: the stop record was not written")
	}
	return served
}

// shortVersion is the version line's version alone ("v1.2.3", "(devel)").
func shortVersion() string {
	first, _, _ := strings.Cut(versionText(), "\n")
	return strings.TrimPrefix(first, "chdproxy ")
}
