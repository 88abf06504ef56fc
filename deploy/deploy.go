// Package deploy holds chdproxy's deployment files. The only thing Go code
// sees is the default policy, embedded so that the binary (and `chdproxy dev`)
// always carries the policy it was built and reviewed with.
package deploy

import _ "embed"

// PolicyYAML is deploy/policy.yaml, byte for byte. Its SHA-256 is the policy
// hash shown in docs/pci/policy-report.md. Do not modify it at run time.
//
//go:embed policy.yaml
var PolicyYAML []byte
