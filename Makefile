# chdproxy — see README.md. `make run` and `make test` are the whole set-up.
SHELL := /bin/bash
GO ?= go
VAULT_VERSION := v1.21.0
CACHE_DIR ?= $(HOME)/.cache/chdproxy
VAULT_BIN ?= $(CACHE_DIR)/vault-$(VAULT_VERSION)
STATE_DIR ?= .dev
FUZZTIME ?= 15s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

export CHDPROXY_VAULT_BIN := $(VAULT_BIN)

.PHONY: run test unit lint fuzz bench deps vault docs image image-check diagrams evidence

## run: the embedded default (miniredis, dev cipher, sandbox upstream) in one process
run:
	$(GO) run ./cmd/chdproxy dev --state-dir $(STATE_DIR)

## test: vet + the whole suite, real redis-server and real Vault server included, then the
## hostile suite again on a redis-server per test and one Vault dev server (issue 11)
test: deps vault
	$(GO) vet ./...
	$(GO) test -race -shuffle=on -count=1 ./...
	CHDPROXY_SUITE_BACKEND=real $(GO) test -race -count=1 -run 'TestHostile' ./proxy/

## unit: the suite without building Vault (integration tests skip unless CI=true)
unit:
	$(GO) vet ./...
	$(GO) test -race -shuffle=on ./...

## deps: the system packages the tests need (redis-server, redis-sentinel, promtool, chromium
## and a font for the browser tests; jq, curl and openssl for the tests that run the docs), installed when missing
deps:
	@pkgs=""; \
	command -v redis-server >/dev/null || pkgs="$$pkgs redis-server"; \
	command -v redis-sentinel >/dev/null || pkgs="$$pkgs redis-sentinel"; \
	command -v promtool >/dev/null || pkgs="$$pkgs prometheus"; \
	command -v chromium >/dev/null || pkgs="$$pkgs chromium"; \
	for c in jq curl openssl; do command -v $$c >/dev/null || pkgs="$$pkgs $$c"; done; \
	[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || pkgs="$$pkgs fonts-dejavu-core"; \
	[ -z "$$pkgs" ] || { \
	  echo "installing$$pkgs"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkgs; }

## vault: build the pinned Vault server for integration tests, once, into $(CACHE_DIR)
vault: $(VAULT_BIN)
# The version is in the file name: a new pin builds a new binary; a fresh clone reuses the cache.
$(VAULT_BIN): | tools/vault/go.mod tools/vault/go.sum
	@mkdir -p $(CACHE_DIR)
	@echo "building Vault $(VAULT_VERSION) into $@ (about 9 minutes on 2 cores, once)"
	cd tools/vault && $(GO) build -o $@.tmp github.com/hashicorp/vault && mv $@.tmp $@

lint:
	$(GO) vet ./...
	$(GO) vet -tags production ./...
	$(GO) run $(STATICCHECK) ./...

## fuzz: every fuzz target, briefly
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s $$pkg; \
	  done; done

## bench: Go micro-benchmarks, then the load generator on a real Vault, redis-server,
## the sandbox and `chdproxy serve` (writes docs/bench.md and docs/bench.json; not in CI)
bench: deps vault
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) build -o bin/chdproxy ./cmd/chdproxy
	$(GO) run ./cmd/chdbench -chdproxy bin/chdproxy -out docs

## image: the container image chdproxy:latest, the Dockerfile's layout built with the local
## Go and buildah, pulling nothing (deploy/image/build.sh; VERSION=… stamps it)
image:
	GO=$(GO) deploy/image/build.sh chdproxy:latest

## image-check: inspect chdproxy:latest without running it (non-root, no shell, size)
image-check:
	GO=$(GO) deploy/image/check.sh chdproxy:latest

## docs: regenerate docs/pci/policy-report.md from deploy/policy.yaml
docs:
	$(GO) test ./policy -run TestExplainGolden -update

## evidence: a dated bundle for an assessor in evidence/<UTC date-time>/ (not committed):
## the redaction, hostile (real Vault and redis-server) and leak suites, the policy report,
## a CycloneDX SBOM and build info of the production binary, the Vault policies, the image's
## files (when `make image` ran) and index.md, read first. Exit 1 when a suite failed.
evidence: deps vault
	$(GO) run ./tools/evidence -out evidence

## diagrams: render docs/pci/diagrams/*.mmd to SVG with mermaid-cli (npm) on the system
## Chromium (apt-get install chromium; puppeteer downloads no browser). Each SVG starts with
## the SHA-256 of its source; internal/doccheck fails the tests when one is stale.
MMDC_DIR ?= /tmp/mmdc
MMDC_VERSION := 11.17.0
CHROMIUM ?= /usr/bin/chromium
diagrams:
	@test -x $(CHROMIUM) || { echo "diagrams: $(CHROMIUM) missing (apt-get install chromium)" >&2; exit 1; }
	@test -x $(MMDC_DIR)/node_modules/.bin/mmdc || \
	  PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix $(MMDC_DIR) @mermaid-js/mermaid-cli@$(MMDC_VERSION)
	printf '{"executablePath":"%s","args":["--no-sandbox","--disable-gpu"]}\n' $(CHROMIUM) > $(MMDC_DIR)/puppeteer.json
	@set -e; for src in docs/pci/diagrams/*.mmd; do \
	  svg=$${src%.mmd}.svg; sum=$$(sha256sum "$$src" | cut -d' ' -f1); \
	  echo "mmdc $$src -> $$svg"; \
	  $(MMDC_DIR)/node_modules/.bin/mmdc -q -p $(MMDC_DIR)/puppeteer.json -i "$$src" -o $(MMDC_DIR)/out.svg; \
	  { echo "<!-- source-sha256: $$sum -->"; cat $(MMDC_DIR)/out.svg; echo; } > "$$svg"; \
	done
