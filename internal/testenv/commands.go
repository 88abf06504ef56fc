package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// Commands skips t (fails it under CI=true) unless every named program is on
// PATH: the shell tools a documented walk-through uses (openssl, jq, curl…).
func Commands(t testing.TB, names ...string) {
	t.Helper()
	var absent []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			absent = append(absent, n)
		}
	}
	if len(absent) > 0 {
		missing(t, "not on PATH: "+strings.Join(absent, ", "))
	}
}
