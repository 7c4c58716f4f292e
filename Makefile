SHELL := /bin/bash
GO ?= go
FUZZTIME ?= 30s

.PHONY: all build test unit e2e fuzz demo deps vet bench clean

all: build

build:
	$(GO) build -o bin/promgate ./cmd/promgate

deps:
	bash scripts/install-deps.sh

vet:
	$(GO) vet ./...

# Unit tests (with the committed fuzz corpus as seeds) and the end-to-end
# suite against real Prometheus servers.
test: deps vet
	$(GO) test -count=1 ./internal/... ./cmd/...
	$(GO) test -count=1 -timeout 30m -v ./e2e/

unit:
	$(GO) test -short ./...

fuzz:
	$(GO) test ./internal/promql/ -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME)

demo: deps
	$(GO) run ./tools/demo

clean:
	rm -rf bin
