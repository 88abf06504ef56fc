# Vault policy for `chdproxy rewrap` (key rotation), held by an operator token,
# never by chdproxy's serving token (deploy/vault-policy.hcl). Rewrap reads each
# key's newest version (metadata only: the keys are not exportable), then decrypts
# and encrypts again with the record's context and associated data. Vault's own
# transit/rewrap cannot be used: it takes no associated_data (Vault 1.21), and every
# chdproxy ciphertext is bound to its record by it. No rotation, configuration,
# export or deletion: the operator rotates with another token. Tested on a real
# Vault by vault/vaultpolicy_integration_test.go.
path "transit/keys/chdproxy-card"    { capabilities = ["read"] }
path "transit/keys/chdproxy-cvv"     { capabilities = ["read"] }
path "transit/encrypt/chdproxy-card" { capabilities = ["update"] }
path "transit/decrypt/chdproxy-card" { capabilities = ["update"] }
path "transit/encrypt/chdproxy-cvv"  { capabilities = ["update"] }
path "transit/decrypt/chdproxy-cvv"  { capabilities = ["update"] }

#   vault policy write chdproxy-rewrap deploy/vault-policy-rewrap.hcl
#   vault token create -policy=chdproxy-rewrap -no-default-policy -ttl=2h
