# metalsync — make help lists the targets.
SHELL := /bin/bash
GO ?= go
# Debian packages the tests drive for real: IPMI simulator and client, ISO
# reader, cloud-init's config-drive/NoCloud readers and renderers, git, Chromium (the fleet page in a real browser) and a font for its screenshots.
DEB_PACKAGES := openipmi ipmitool xorriso cloud-init git qemu-system-x86 qemu-utils ovmf kmod dosfstools mtools gdisk chromium fonts-dejavu-core
BENCH_TIME ?= 1x

.PHONY: help demo demo-vm test deps bench verify build fuzz agent-image

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/metalsync
	$(GO) build -o bin/metalsync ./cmd/metalsync

agent-image: build ## build (or take from the cache) the deploy agent template ISO; AGENT_OUT=DIR copies it there
	./bin/metalsync agent-image build -v $(if $(AGENT_OUT),--out $(AGENT_OUT))

demo: build ## run the whole loop on the embedded example: simulated BMCs, a local Git remote, the daemon
	./bin/metalsync validate inventory-example
	./bin/metalsync demo

demo-vm: build ## deploy one emulated machine for real (QEMU, the agent ISO, RAID-1, boot from disk)
	./bin/metalsync demo --vm

deps: ## install the Debian packages the tests need (as root) and download Go modules
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run make test as root to install them)"; fi; \
	fi
	$(GO) mod download

test: deps ## install what the tests need, then run every test with the race detector
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...

fuzz: ## run each fuzz target for a short while (the seed corpus runs in make test)
	$(GO) test ./schema -run '^$$' -fuzz FuzzLoad -fuzztime 60s
	$(GO) test ./imagecache/qcow2 -run "^$$" -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 2s

bench: build ## run the benchmarks (figures go to stdout; see README "Performance")
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -benchmem ./...
	./test/bench/validate.sh
	./test/bench/plan.sh
	./test/bench/agent.sh
	./test/bench/review.sh

verify: ## gofmt, go vet, go mod tidy leave no diff
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy && git diff --exit-code go.mod go.sum
