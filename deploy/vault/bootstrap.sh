#!/usr/bin/env bash
# Sets a Vault up for chdproxy; safe to run again (it changes only what is missing).
#   VAULT_ADDR=https://vault:8200 VAULT_TOKEN=<operator token> [VAULT_CACERT=ca.pem] \
#     deploy/vault/bootstrap.sh OUT_DIR
# 1. transit engine at transit/ (enabled when missing)
# 2. keys as vault/transit_keys.go EnsureKeys makes them: chdproxy-card and
#    chdproxy-cvv derived aes256-gcm96, chdproxy-fingerprint hmac (32 bytes); an
#    existing card or CVV key of another type stops the script
# 3. policy "chdproxy" from deploy/vault-policy.hcl (encrypt, decrypt, hmac; nothing else)
# 4. AppRole auth at approle/, role "chdproxy" bound to that policy only
# 5. OUT_DIR/role_id and OUT_DIR/secret_id (mode 0600), the AppRole login of chdproxy
#    or of its Vault Agent; a run writes a new secret_id and keeps the old ones valid
#    until their TTL (CHDPROXY_SECRET_ID_TTL, default 0 = none)
# 6. with CHDPROXY_K8S_HOST set: Kubernetes auth at kubernetes/, role "chdproxy" bound to
#    the service account CHDPROXY_K8S_SERVICE_ACCOUNT (default chdproxy) in namespace
#    CHDPROXY_K8S_NAMESPACE (default chdproxy), audience CHDPROXY_K8S_AUDIENCE (default
#    vault), the same policy and TTLs. Vault reviews each login's JWT with that API
#    server's TokenReview (CA: CHDPROXY_K8S_CA_FILE); disable_local_ca_jwt, so a Vault
#    outside the cluster works too: the reviewer is CHDPROXY_K8S_REVIEWER_JWT_FILE's
#    token, else the login JWT itself (its service account then needs the
#    system:auth-delegator ClusterRole).
# The `vault` CLI is $VAULT (default: vault on PATH); the Vault server binary is it too.
set -euo pipefail
out=${1:?usage: bootstrap.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
VAULT=${VAULT:-vault}
policy_file=${CHDPROXY_VAULT_POLICY:-$here/../vault-policy.hcl}
: "${VAULT_ADDR:?VAULT_ADDR is required}" "${VAULT_TOKEN:?VAULT_TOKEN (an operator token) is required}"
export VAULT_ADDR VAULT_TOKEN

# enabled secrets|auth PATH: whether PATH/ is mounted (the list is read whole first: under
# pipefail, grep -q closing the pipe early would fail the CLI with SIGPIPE).
enabled() {
  local list
  list=$("$VAULT" "$1" list -format=json)
  grep -q "\"$2/\"" <<<"$list"
}

enabled secrets transit || "$VAULT" secrets enable -path=transit transit >/dev/null

# key NAME TYPE [ARGS…]: create when missing, else check its type (and derivation).
key() {
  local name=$1 type=$2; shift 2
  local info
  if ! info=$("$VAULT" read -format=json "transit/keys/$name" 2>/dev/null); then
    "$VAULT" write -f "transit/keys/$name" type="$type" "$@" >/dev/null
    return
  fi
  grep -q "\"type\": \"$type\"" <<<"$info" || { echo "bootstrap: transit/keys/$name exists and is not $type" >&2; exit 1; }
  if [[ $* == *derived=true* ]] && ! grep -q '"derived": true' <<<"$info"; then
    echo "bootstrap: transit/keys/$name exists and is not derived (ciphertexts would not be bound to the merchant)" >&2
    exit 1
  fi
}
key chdproxy-card aes256-gcm96 derived=true
key chdproxy-cvv aes256-gcm96 derived=true
key chdproxy-fingerprint hmac key_size=32

"$VAULT" policy write chdproxy "$policy_file" >/dev/null

enabled auth approle || "$VAULT" auth enable approle >/dev/null
# Short, renewable tokens with the one policy plus Vault's default policy, which holds
# what renewal needs (auth/token/lookup-self, renew-self) and grants no secret.
"$VAULT" write auth/approle/role/chdproxy \
  token_policies=chdproxy \
  token_ttl=1h token_max_ttl=24h token_type=service \
  secret_id_ttl="${CHDPROXY_SECRET_ID_TTL:-0}" >/dev/null

if [[ -n ${CHDPROXY_K8S_HOST:-} ]]; then
  enabled auth kubernetes || "$VAULT" auth enable kubernetes >/dev/null
  k8s=(kubernetes_host="$CHDPROXY_K8S_HOST" disable_local_ca_jwt=true)
  if [[ -n ${CHDPROXY_K8S_CA_FILE:-} ]]; then k8s+=(kubernetes_ca_cert=@"$CHDPROXY_K8S_CA_FILE"); fi
  if [[ -n ${CHDPROXY_K8S_REVIEWER_JWT_FILE:-} ]]; then k8s+=(token_reviewer_jwt=@"$CHDPROXY_K8S_REVIEWER_JWT_FILE"); fi
  "$VAULT" write auth/kubernetes/config "${k8s[@]}" >/dev/null
  "$VAULT" write auth/kubernetes/role/chdproxy \
    bound_service_account_names="${CHDPROXY_K8S_SERVICE_ACCOUNT:-chdproxy}" \
    bound_service_account_namespaces="${CHDPROXY_K8S_NAMESPACE:-chdproxy}" \
    audience="${CHDPROXY_K8S_AUDIENCE:-vault}" \
    token_policies=chdproxy token_ttl=1h token_max_ttl=24h token_type=service >/dev/null
  echo "bootstrap: Kubernetes auth role chdproxy ready" >&2
fi

umask 077
mkdir -p "$out"
"$VAULT" read -field=role_id auth/approle/role/chdproxy/role-id >"$out/role_id"
"$VAULT" write -f -field=secret_id auth/approle/role/chdproxy/secret-id >"$out/secret_id"
echo "bootstrap: transit keys, policy chdproxy and AppRole chdproxy ready; role_id and secret_id in $out" >&2
