#!/usr/bin/env bash
# Makes what deploy/compose.yaml reads as secrets, into deploy/compose/secrets/
# (git-ignored; mode 0600 files): a private CA and TLS certificates for Vault, Redis,
# the sandbox (as chd-api.smartcore.pro and api-gateway.smartcore.pro, which the
# compose network resolves to it) and chdproxy's listeners; the Redis password and
# users.acl holding its SHA-256 only; the idempotency secret. Existing files are
# kept: run it again after deleting one to replace it. Needs bash and openssl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/secrets}
umask 077
mkdir -p "$out"
cd "$out"

rand() { openssl rand -hex 32; }

if [[ ! -f ca.key ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=chdproxy compose CA" -keyout ca.key -out ca.crt 2>/dev/null
fi

# leaf NAME DNS… : NAME.crt/NAME.key signed by the CA, for those names and localhost.
leaf() {
  local name=$1; shift
  [[ -f $name.crt ]] && return
  local san="DNS:localhost,IP:127.0.0.1" d
  for d in "$@"; do san+=",DNS:$d"; done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}
leaf vault vault
leaf redis redis
leaf sandbox chd-api.smartcore.pro api-gateway.smartcore.pro sandbox
leaf chdproxy chdproxy

[[ -f redis_password ]] || rand >redis_password
[[ -f idempotency_secret ]] || rand >idempotency_secret
hash=$(tr -d '\n' <redis_password | openssl dgst -sha256 -r | cut -d' ' -f1)
{
  echo "user default off"
  echo "user chdproxy on #$hash ~chd:* -@all +@read +@write +@scripting +@transaction +@connection -@dangerous"
} >users.acl
# The containers run as other users than the one running this: certificates and keys
# readable to them (compose bind-mounts secrets with the host's modes).
chmod 0644 ./*
chmod 0600 ca.key # signs certificates; no container reads it
echo "init: secrets in $out" >&2
