// Package deploy holds chdproxy's deployment files. Go code sees the default
// policy, embedded so that the binary (and `chdproxy dev`) always carries the
// policy it was built and reviewed with, and the Vault policy, for its test.
package deploy

import _ "embed"

// PolicyYAML is deploy/policy.yaml, byte for byte. Its SHA-256 is the policy
// hash shown in docs/pci/policy-report.md. Do not modify it at run time.
//
//go:embed policy.yaml
var PolicyYAML []byte

// VaultPolicyHCL is deploy/vault-policy.hcl, the Vault policy of chdproxy's
// token; embedded so that the test on a real Vault loads the shipped file.
//
//go:embed vault-policy.hcl
var VaultPolicyHCL []byte

// VaultPolicyRewrapHCL is deploy/vault-policy-rewrap.hcl, the Vault policy of
// the operator token `chdproxy rewrap` runs with.
//
//go:embed vault-policy-rewrap.hcl
var VaultPolicyRewrapHCL []byte
