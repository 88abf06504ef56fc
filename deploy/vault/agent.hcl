# Vault Agent beside chdproxy (deploy/compose.yaml): logs in with the AppRole that
# deploy/vault/bootstrap.sh made, keeps the token renewed, logs in again when it
# cannot, and writes it to a file on a memory volume shared with chdproxy only
# (vault.token_file in deploy/compose/chdproxy.yaml).
vault {
  address = "https://vault:8200"
  ca_cert = "/run/secrets/ca_crt"
}

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "/run/secrets/vault_role_id"
      secret_id_file_path                 = "/run/secrets/vault_secret_id"
      remove_secret_id_file_after_reading = false # a compose secret is read-only
    }
  }
  sink "file" {
    config = {
      path = "/run/vault-token/token"
      mode = 0400
    }
  }
}
