package deploy

import (
	"bytes"
	"testing"
)

func TestPolicyIsEmbedded(t *testing.T) {
	if !bytes.HasPrefix(PolicyYAML, []byte("# chdproxy policy")) || !bytes.Contains(PolicyYAML, []byte("\nversion: 1\n")) {
		t.Fatal("deploy/policy.yaml is not embedded")
	}
}
