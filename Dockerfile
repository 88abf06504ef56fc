# chdproxy image: a static binary on distroless, non-root, no shell.
# docker build --build-arg VERSION=$(git describe --always --dirty) -t chdproxy .
# Where no registry is reachable, `make image` builds the same layout with buildah
# from the local Go toolchain (deploy/image/build.sh); `make image-check` inspects it.

FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
# TAGS= (empty) builds the test-only commands in: only for a sandbox image, never to serve cards.
ARG TAGS=production
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# -tags production: no dev or sandbox command, no miniredis, sandbox or dev cipher (PCI DSS 6.5.6)
RUN CGO_ENABLED=0 go build -trimpath -tags "${TAGS}" -ldflags "-s -w -X main.version=${VERSION}" -o /out/chdproxy ./cmd/chdproxy

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="chdproxy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/chdproxy/chdproxy"
COPY --from=build /out/chdproxy /chdproxy
USER nonroot
# collect, forward, admin as in deploy/chdproxy.example.yaml
EXPOSE 8443 9443 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/chdproxy", "healthcheck", "--url", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/chdproxy"]
CMD ["serve", "--config", "/etc/chdproxy/chdproxy.yaml"]
