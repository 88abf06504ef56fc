# Vault policy for chdproxy: the least it needs. Encrypt and decrypt with the card and
# CVV keys, HMAC with the fingerprint key, read key metadata (for readiness). No key
# creation, rotation, export, deletion or backup: operators do that with their own token.
path "transit/encrypt/chdproxy-card" { capabilities = ["update"] }
path "transit/decrypt/chdproxy-card" { capabilities = ["update"] }
path "transit/encrypt/chdproxy-cvv"  { capabilities = ["update"] }
path "transit/decrypt/chdproxy-cvv"  { capabilities = ["update"] }
path "transit/hmac/chdproxy-fingerprint" { capabilities = ["update"] }

# Key set-up, run once by an operator (not by chdproxy):
#   vault secrets enable transit
#   vault write transit/keys/chdproxy-card type=aes256-gcm96 derived=true
#   vault write transit/keys/chdproxy-cvv  type=aes256-gcm96 derived=true
#   vault write transit/keys/chdproxy-fingerprint type=hmac key_size=32
