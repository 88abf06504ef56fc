# Vault server for deploy/compose.yaml: server mode (not -dev), file storage on a
# volume, TLS on its listener (the encrypt calls carry card data and every call the
# token). Initialise and unseal once (docs/operations.md, "From an empty host to a
# first payment"); then deploy/vault/bootstrap.sh.
storage "file" {
  path = "/vault/file"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  tls_cert_file   = "/run/secrets/vault_tls_crt"
  tls_key_file    = "/run/secrets/vault_tls_key"
  tls_min_version = "tls12"
}

api_addr      = "https://vault:8200"
ui            = false
disable_mlock = true # the container has no IPC_LOCK; swap is off on the hosts we run it on
