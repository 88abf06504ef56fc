package deploy_test

import (
	"os/exec"
	"testing"
)

// deploy/k8s/check is a module of its own (k8s.io/api stays out of chdproxy's);
// `go test ./...` here does not enter it, so this runs it.
func TestKubernetesManifestsDecodeStrictlyAndAreLockedDown(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command("go", "test", "-count=1", "./...")
	cmd.Dir = "k8s/check"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test in deploy/k8s/check: %v\n%s", err, out)
	}
}
