package testenv

import (
	"os/exec"
	"testing"
)

// Promtool returns the path of Prometheus's promtool (Debian: the prometheus
// package; .ci/run installs it). It skips t without one (fails it under CI=true).
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		missing(t, "promtool is not installed (Debian: apt-get install prometheus)")
	}
	return p
}
