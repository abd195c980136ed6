# amrpipe: every target installs what it needs (Go modules, Azurite through npm ci).
SHELL := /bin/bash
GO ?= go
# One module (docs/ARCHITECTURE.md says why), so ./... is every package.
PKGS = ./...
GOBIN_DIR := $(CURDIR)/bin/tools
BINARIES := ./services/planner ./services/submitter ./services/progress-relay ./services/decryptor ./services/parser ./services/spsim ./cmd/amrctl

.PHONY: all setup demo test test-short chaos cluster bench bench-scale fuzz proto lint fmt vet build clean

all: build

## setup: install Azurite (npm ci, pinned by package-lock.json), PostgreSQL (the Debian package,
## when no /usr/lib/postgresql/*/bin/initdb exists: the inventory's tests start their own server),
## Chromium (the Debian package, when no chromium is installed: the dashboard's test drives it
## headless) and download the Go modules the build and the tests need (not every module of the
## graph: their checksums are not in go.sum).
setup: node_modules/.package-lock.json postgresql chromium
	$(GO) list -deps -test ./... >/dev/null

.PHONY: postgresql
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "setup: installing postgresql"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

.PHONY: chromium
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
		echo "setup: installing chromium"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## demo: run the whole pipeline on the embedded default (JetStream, Azurite, simulator, five services).
## It needs Azurite and the binary, built side by side (npm waits on the network, the build on the CPU),
## not the test-only PostgreSQL and Chromium.
demo:
	@echo "demo: installing Azurite (npm ci) while building amrctl into bin/ (a first build compiles about 650 packages: about 2 minutes on 2 cores; later builds take seconds)"
	@$(MAKE) --no-print-directory -j2 node_modules/.package-lock.json demo-binary
	bin/amrctl dev

# demo-binary: the demo's amrctl, built without DWARF (-dwarf=false, -s -w): a tenth less compile time
# on a cold cache and nothing the demo uses; tests build with their own flags and cache entries anyway.
# The packages the demo never runs (the PostgreSQL driver, the OTLP exporters with gRPC, Entra
# sign-in) are compiled without optimisation (-N -l): the same code, a little slower should this
# binary later be pointed at PostgreSQL or a real tenant, and 16 CPU-seconds less to build
# (252 instead of 268 on 2 cores). `make build` builds every binary fully optimised.
DEMO_COLD_PKGS := github.com/jackc/... google.golang.org/grpc/... github.com/grpc-ecosystem/... \
	go.opentelemetry.io/otel/exporters/... go.opentelemetry.io/proto/... github.com/AzureAD/...
.PHONY: demo-binary
demo-binary:
	$(GO) build -gcflags=all=-dwarf=false $(foreach p,$(DEMO_COLD_PKGS),-gcflags='$(p)=-dwarf=false -N -l') \
		-ldflags="-s -w" -o bin/amrctl ./cmd/amrctl

## test: vet and run every test (race detector on), including the Azurite/JetStream integration tests.
test: setup
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## test-short: unit tests only.
test-short:
	$(GO) test -short -count=1 $(PKGS)

## cluster: the export on a 3-node JetStream cluster with leader kills, in full (two replicas of
## every stage, five kills), three times in a row; `make test` runs a shorter form.
cluster: setup
	AMRPIPE_CLUSTER=full $(GO) test -race -count=3 -timeout 60m -v -run TestClusterExportSurvivesLeaderKills ./cmd/amrctl/internal/devstack/

## chaos: the chaos suite in full mode (docs/chaos.md): the five services, nats-server and the
## simulator as processes, about 420K content objects exported while stage processes are killed
## (SIGKILL), nats-server restarts, Azure Storage answers 503 and forged events reach the report
## queue; then everything downstream is checked against the ground truth. CHAOS_SEED replays a run.
chaos: setup
	AMRPIPE_CHAOS=full $(if $(CHAOS_SEED),AMRPIPE_CHAOS_SEED=$(CHAOS_SEED)) $(GO) test -count=1 -timeout 40m -run '^TestChaos$$' -v ./internal/chaos/

## fuzz: run every fuzz target for FUZZTIME each (default 10m; FUZZ=regexp picks targets);
## failing inputs stay in testdata/fuzz as regression tests.
fuzz: setup
	bash scripts/fuzz.sh

## bench: run the benchmarks and write the table to docs/benchmarks.md.
bench: setup
	bash scripts/bench.sh

## bench-scale: the tenant-scale benchmarks (10,000 live jobs; SharePoint calls per million
## objects), about an hour on 2 cores; writes their section of docs/benchmarks.md.
bench-scale: setup mariadb
	bash scripts/bench_scale.sh

# mariadb: BenchmarkLiveJobs keeps Azurite's blob metadata in MariaDB (the Debian package, when
# no mariadbd is installed); nothing else needs it, so `make setup` does not install it.
.PHONY: mariadb
mariadb:
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then \
		echo "setup: installing mariadb-server"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null; \
	fi

## build: build every service and the CLI into ./bin.
build:
	mkdir -p bin
	$(GO) build -o bin/ $(BINARIES)

## proto: regenerate Go code from proto/ (buf and protoc-gen-go are built locally on first use).
proto: $(GOBIN_DIR)/buf $(GOBIN_DIR)/protoc-gen-go $(GOBIN_DIR)/protoc-gen-go-vtproto
	PATH=$(GOBIN_DIR):$$PATH buf lint
	PATH=$(GOBIN_DIR):$$PATH buf generate

$(GOBIN_DIR)/buf:
	GOBIN=$(GOBIN_DIR) $(GO) install github.com/bufbuild/buf/cmd/buf@v1.75.0

$(GOBIN_DIR)/protoc-gen-go:
	GOBIN=$(GOBIN_DIR) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12

# The version grpc already brings into go.mod (its runtime, protohelpers, is what the generated
# code imports).
$(GOBIN_DIR)/protoc-gen-go-vtproto:
	GOBIN=$(GOBIN_DIR) $(GO) install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10

## lint: gofmt, go vet and buf lint.
lint: $(GOBIN_DIR)/buf
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	PATH=$(GOBIN_DIR):$$PATH buf lint

clean:
	rm -rf bin node_modules

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')
