#!/usr/bin/env bash
# Inspects the image built by build.sh without running it (containers cannot run on
# our CI machines): it runs as uid 65532, holds exactly its four files (so no shell),
# its binary is static, built with -tags production (it refuses `dev` and `sandbox`: no
# test-only code in it, PCI DSS 6.5.6) and answers `version` with the image's version label, its
# entrypoint, command, ports and healthcheck are the Dockerfile's, and it is < 40 MB.
#
#   deploy/image/check.sh [IMAGE]        (default chdproxy:latest)
set -euo pipefail
IMAGE=${1:-chdproxy:latest}
MAX_BYTES=$((40 * 1000 * 1000))
GO=${GO:-go}

failures=0
fail() { echo "image-check: FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "image-check: ok: $*"; }
inspect() { buildah inspect --type image --format "$1" "$IMAGE"; }

buildah inspect --type image "$IMAGE" >/dev/null 2>&1 || { echo "image-check: FAIL: no image $IMAGE (make image)" >&2; exit 1; }

user=$(inspect '{{.Docker.Config.User}}')
uid=${user%%:*}
if [[ $uid =~ ^[0-9]+$ && $uid -ne 0 && $uid -eq 65532 ]]; then pass "user $user (nonroot)"; else fail "user is '$user', want 65532 (never root)"; fi

words() { inspect "{{range $1}}\"{{.}}\" {{end}}"; } # a string list, each item quoted
entrypoint=$(words .Docker.Config.Entrypoint)
cmd=$(words .Docker.Config.Cmd)
health=$(words .Docker.Config.Healthcheck.Test)
[ "$entrypoint" = '"/chdproxy" ' ] && pass "entrypoint $entrypoint" || fail "entrypoint is '$entrypoint', want \"/chdproxy\""
[ "$cmd" = '"serve" "--config" "/etc/chdproxy/chdproxy.yaml" ' ] && pass "cmd $cmd" || fail "cmd is '$cmd'"
[[ $health == '"CMD" "/chdproxy" "healthcheck" '* ]] && pass "healthcheck $health" || fail "healthcheck is '$health', want an exec-form chdproxy healthcheck"
ports=$(inspect '{{range $p, $_ := .Docker.Config.ExposedPorts}}{{$p}} {{end}}')
[ "$ports" = "8443 9090 9443 " ] && pass "ports $ports" || fail "exposed ports are '$ports', want 8443 9443 9090"
version_label=$(inspect '{{index .Docker.Config.Labels "org.opencontainers.image.version"}}')
for l in version revision source; do
  v=$(inspect "{{index .Docker.Config.Labels \"org.opencontainers.image.$l\"}}")
  [ -n "$v" ] && pass "label org.opencontainers.image.$l=$v" || fail "label org.opencontainers.image.$l missing"
done

ctr=$(buildah from --pull-never "$IMAGE")
trap 'buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$ctr")

files=$(cd "$root" && find . -mindepth 1 ! -type d -printf '/%P %m %U:%G\n' | sort)
want=$'/chdproxy 755 0:0\n/etc/group 644 0:0\n/etc/passwd 644 0:0\n/etc/ssl/certs/ca-certificates.crt 644 0:0'
if [ "$files" = "$want" ]; then pass "exactly 4 files: $(echo "$files" | cut -d' ' -f1 | tr '\n' ' ')"; else fail "files are not the expected four:"$'\n'"$files"; fi
shells=$(cd "$root" && find . \( -name sh -o -name bash -o -name dash -o -name ash -o -name zsh -o -name busybox \) -printf '/%P ')
[ -z "$shells" ] && pass "no shell" || fail "shells in the image: $shells"
grep -q '^nonroot:x:65532:65532:' "$root/etc/passwd" && pass "/etc/passwd names nonroot 65532" || fail "/etc/passwd lacks nonroot 65532"

out=$("$root/chdproxy" version 2>&1) || fail "/chdproxy version exited $?: $out"
if [ "$(head -1 <<<"$out")" = "chdproxy $version_label" ]; then pass "/chdproxy version: $(tr '\n' ' ' <<<"$out")"; else fail "/chdproxy version said '$out', want 'chdproxy $version_label' first"; fi
if command -v "$GO" >/dev/null; then
  info=$("$GO" version -m "$root/chdproxy")
  grep -q $'build\tCGO_ENABLED=0' <<<"$info" && grep -q $'build\t-trimpath=true' <<<"$info" \
    && pass "static (CGO_ENABLED=0) and -trimpath" || fail "not built with CGO_ENABLED=0 and -trimpath:"$'\n'"$info"
  grep -q $'build\t-tags=production' <<<"$info" && pass "built with -tags production" || fail "not built with -tags production (go version -m)"
  grep -q 'alicebob/miniredis' <<<"$info" && fail "the binary holds miniredis" || pass "no miniredis module in the binary"
fi
# --help: a default build answers it and exits 0 instead of starting the command.
for cmd in dev sandbox; do
  if out=$("$root/chdproxy" "$cmd" --help 2>&1); then fail "/chdproxy $cmd exists (a default build, not -tags production)"
  elif grep -q "unknown command \"$cmd\"" <<<"$out"; then pass "/chdproxy $cmd: unknown command (production build)"
  else fail "/chdproxy $cmd: $(head -1 <<<"$out")"; fi
done

size=$(du -sb "$root" | cut -f1)
if [ "$size" -lt "$MAX_BYTES" ]; then pass "size $((size / 1000)) kB (< 40 MB)"; else fail "size $size bytes, want < $MAX_BYTES"; fi

if [ "$failures" -gt 0 ]; then
  echo "image-check: $failures check(s) FAILED for $IMAGE" >&2
  exit 1
fi
echo "image-check: $IMAGE passed"
