SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 30s

.PHONY: all build test unit e2e e2e-oldest e2e-current upstreams fuzz demo deps vet bench bench-quick soak clean dist

all: build

build:
	$(GO) build -o bin/promgate ./cmd/promgate

deps:
	bash scripts/install-deps.sh

# The current Prometheus and Alertmanager, built once from the Go module
# proxy into ~/.cache/promgate (pinned in the script).
upstreams:
	bash scripts/build-upstreams.sh

vet:
	$(GO) vet ./...

# Unit tests (with the committed fuzz corpus as seeds) and the end-to-end
# suite against real servers of both generations: Debian's Prometheus 2.42
# and Alertmanager 0.25 (the oldest supported), then Prometheus 3.16 and
# Alertmanager 0.28.1.
test: deps vet
	$(GO) test -count=1 ./internal/... ./cmd/...
	$(MAKE) e2e

e2e: e2e-oldest e2e-current

e2e-oldest: deps
	$(GO) test -count=1 -timeout 30m -v ./e2e/

e2e-current: deps
	dir=$$(bash scripts/build-upstreams.sh) && \
	ui=$$(bash scripts/build-ui.sh) && \
	PROMGATE_UPSTREAMS_DIR=$$dir PROMGATE_PROMETHEUS_UI=$$ui $(GO) test -count=1 -timeout 30m -v ./e2e/

unit:
	$(GO) test -short ./...

# Every fuzz target, one after the other, each for FUZZTIME (their seed
# corpora are in testdata/fuzz and run with the unit tests).
FUZZ_TARGETS := \
	./internal/promql/:FuzzRewrite \
	./internal/jsonscan/:FuzzValid \
	./internal/prometheus/:FuzzFilters \
	./internal/prometheus/:FuzzFilterEnvelope \
	./internal/prometheus/:FuzzOTLP \
	./internal/prometheus/:FuzzWriteV1 \
	./internal/prometheus/:FuzzWriteV2 \
	./internal/alertmanager/:FuzzFilter

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*}"; \
		$(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME); \
	done

# The demo runs the current generation (Prometheus 3.16, Alertmanager 0.28.1).
demo: deps
	dir=$$(bash scripts/build-upstreams.sh) && \
	PROMGATE_UPSTREAMS_DIR=$$dir $(GO) run ./tools/demo

# promgate's overhead against direct Prometheus and nginx on real servers,
# printed as a table (SPEC section 9; tools/bench), after the measurement of
# basic auth against the trusted header (e2e). That one is enforced: basic
# auth under 0.9 of the header's rate means bcrypt is back on the request
# path (SPEC section 9), which costs a factor of ten or more, far beyond the
# noise of its medians; pipefail lets its failure through grep's filter.
# Then bob's p99 latency alone and while alice floods Prometheus with heavy
# queries, with her max_concurrent 1, with a share of the upstream's time
# (upstream_time) and without a limit (e2e, enforced: with the share at
# most 10 % above alone plus the baseline's own noise, a clear rise
# without a limit; about 2 minutes).
# The tool ends with its cost curves and write cases (about 3 minutes).
# Under 15 minutes.
bench: deps
	set -o pipefail; PROMGATE_BENCH=1 $(GO) test -count=1 -v -run '^TestTrustedHeaderVsBasicAuthThroughput$$' ./e2e/ | grep -E 'basic auth|^(ok|FAIL|--- )'
	set -o pipefail; PROMGATE_BENCH=1 $(GO) test -count=1 -v -run '^TestNoisyNeighbourP99$$' ./e2e/ | grep -E "bob's p99|raises bob|alice under upstream_time|^ *noisy.*goal|^(ok|FAIL|--- )"
	PROMGATE_UPSTREAMS_DIR=$$(bash scripts/build-upstreams.sh) $(GO) run ./tools/bench

# CI's smoke run of the same: one short repetition; fails only when a
# target answers wrong data or errors, never on the figures.
bench-quick: deps
	PROMGATE_UPSTREAMS_DIR=$$(bash scripts/build-upstreams.sh) $(GO) run ./tools/bench -quick

# promgate under load and faults (tools/soak): 8 tenants x 8 connections
# while Prometheus restarts and the configuration reloads; fails on any
# cross-tenant answer or resource growth. CI runs SOAK_DURATION=2m.
SOAK_DURATION ?= 8m
soak: deps
	$(GO) run ./tools/soak -duration=$(SOAK_DURATION)

# Release tarballs for Linux, static and reproducible (no cgo, no local
# paths), with the version, revision and date in --version, and their
# SHA-256 sums, in dist/ (DIST).
DIST ?= dist
DIST_ARCHS ?= amd64 arm64
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) -X $(VERSION_PKG).BuildDate=$(BUILD_DATE) -X $(VERSION_PKG).BuildUser=promgate-make

dist:
	@set -e; rm -rf $(DIST); mkdir -p $(DIST); \
	for arch in $(DIST_ARCHS); do \
		name=promgate-$(VERSION).linux-$$arch; \
		mkdir -p $(DIST)/$$name; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$name/promgate ./cmd/promgate; \
		cp README.md $(DIST)/$$name/; \
		cp -r examples $(DIST)/$$name/; \
		tar -C $(DIST) --owner=0 --group=0 --numeric-owner --sort=name -czf $(DIST)/$$name.tar.gz $$name; \
		rm -rf $(DIST)/$$name; \
		echo "$(DIST)/$$name.tar.gz"; \
	done; \
	cd $(DIST) && sha256sum *.tar.gz > sha256sums.txt

clean:
	rm -rf bin $(DIST)
