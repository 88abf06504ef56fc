#!/usr/bin/env bash
# Builds the image chdproxy:latest with the layout of the top-level Dockerfile, without
# pulling anything: the static binary from the local Go toolchain, then buildah assembles
# an image FROM scratch holding only /chdproxy, the CA bundle of the build machine's
# ca-certificates package, and /etc/passwd and /etc/group naming nonroot (uid 65532),
# the user it runs as. Needs buildah and root (or rootless buildah set up for this user);
# STORAGE_DRIVER=vfs selects buildah's vfs driver where overlay is not available.
#
#   deploy/image/build.sh [IMAGE]        (default chdproxy:latest; VERSION=… to stamp)
#
# Built with -tags production: no dev or sandbox command, no miniredis, sandbox or dev
# cipher in the binary (PCI DSS 6.5.6). TAGS= (empty) builds them in, for an image that
# runs only the sandbox (compose's sandbox service); check.sh fails such an image.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${1:-chdproxy:latest}
GO=${GO:-go}
TAGS=${TAGS-production}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE=https://github.com/chdproxy/chdproxy
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

command -v buildah >/dev/null || { echo "build.sh: buildah is not installed (apt-get install buildah)" >&2; exit 1; }
[ -s "$CA_BUNDLE" ] || { echo "build.sh: $CA_BUNDLE missing (apt-get install ca-certificates)" >&2; exit 1; }

work=$(mktemp -d)
ctr=""
cleanup() {
  [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "build.sh: go build chdproxy $VERSION (static, -trimpath, -tags '$TAGS')"
CGO_ENABLED=0 "$GO" build -trimpath -tags "$TAGS" -buildvcs=auto -ldflags "-s -w -X main.version=$VERSION" -o "$work/chdproxy" ./cmd/chdproxy

cat >"$work/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
PASSWD
cat >"$work/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP

export BUILDAH_FORMAT=docker # the OCI image config has no HEALTHCHECK
ctr=$(buildah from scratch)
buildah copy --quiet --chown 0:0 --chmod 0755 "$ctr" "$work/chdproxy" /chdproxy
buildah copy --quiet --chown 0:0 --chmod 0644 "$ctr" "$CA_BUNDLE" /etc/ssl/certs/ca-certificates.crt
buildah copy --quiet --chown 0:0 --chmod 0644 "$ctr" "$work/passwd" /etc/passwd
buildah copy --quiet --chown 0:0 --chmod 0644 "$ctr" "$work/group" /etc/group
# The Dockerfile's runtime settings, one for one (EXPOSE: the ports of deploy/chdproxy.example.yaml).
buildah config \
  --user 65532:65532 \
  --workingdir / \
  --entrypoint '["/chdproxy"]' \
  --cmd '["serve", "--config", "/etc/chdproxy/chdproxy.yaml"]' \
  --port 8443 --port 9443 --port 9090 \
  --healthcheck 'CMD /chdproxy healthcheck --url http://127.0.0.1:9090/readyz' \
  --healthcheck-interval 10s --healthcheck-timeout 5s --healthcheck-start-period 10s --healthcheck-retries 3 \
  --label org.opencontainers.image.title=chdproxy \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$REVISION" \
  --label "org.opencontainers.image.source=$SOURCE" \
  "$ctr"
buildah commit --quiet --format docker --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
echo "build.sh: built $IMAGE ($VERSION, $REVISION)"
