# Vault policy for chdproxy: exactly the calls it makes (vault/transit_vault.go),
# nothing else. Encrypt and decrypt with the card and CVV keys; HMAC-SHA256 with the
# fingerprint key, which is also the readiness check (/readyz calls VaultTransit.Ping,
# one HMAC). No key read, creation, rotation, export, backup, configuration or
# deletion, no data keys: operators do that with their own token. Tested on a real
# Vault by vault/vaultpolicy_integration_test.go.
path "transit/encrypt/chdproxy-card"              { capabilities = ["update"] }
path "transit/decrypt/chdproxy-card"              { capabilities = ["update"] }
path "transit/encrypt/chdproxy-cvv"               { capabilities = ["update"] }
path "transit/decrypt/chdproxy-cvv"               { capabilities = ["update"] }
path "transit/hmac/chdproxy-fingerprint/sha2-256" { capabilities = ["update"] }

# Key set-up, run once by an operator (not by chdproxy):
#   vault secrets enable transit
#   vault write transit/keys/chdproxy-card type=aes256-gcm96 derived=true
#   vault write transit/keys/chdproxy-cvv  type=aes256-gcm96 derived=true
#   vault write transit/keys/chdproxy-fingerprint type=hmac key_size=32
#   vault policy write chdproxy deploy/vault-policy.hcl
