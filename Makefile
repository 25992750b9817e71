# Dialtone build, code generation and test targets.
SHELL := /bin/bash
# Everything built lands in build/ (ignored by git): the binaries and the
# protoc plugins, which go.mod pins as tools.
GOBIN := $(CURDIR)/build/tools
export PATH := $(GOBIN):$(PATH)

PROTO_PUBLIC := api/proto/dialtone/v1/requests.proto api/proto/dialtone/v1/cluster.proto api/proto/dialtone/v1/portusage.proto api/proto/dialtone/v1/dialer.proto
PROTO_FSM := internal/fsm/fsmpb/fsm.proto
PROTO_CLUSTER := internal/cluster/clusterpb/internal.proto
PROTO_MEDIASIM := internal/telephony/simcall/simpb/mediasim.proto
FSMPB := github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb

.PHONY: all build dev bench-build test unit e2e lint monitoring-check monitoring-image compose-monitoring proto proto-tools proto-check bench bench-quick fuzz clean image compose-up compose-grow compose-shrink compose-down chaos chaos-sip

all: build

# build/dialtone (the server and CLI) and build/dialtone-sim (the
# simulators, which dialtone dev runs beside the nodes).
build:
	go build -o build/ ./cmd/dialtone ./cmd/dialtone-sim

# A local three-node cluster with the simulated media platform.
dev: build
	build/dialtone dev $(DEV_FLAGS)

# The whole suite: what CI runs.
test: lint monitoring-check unit e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$\|\.pb\.gw\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./test/e2e/...
	go tool staticcheck ./...
	go tool staticcheck -tags e2e ./test/e2e/...
	go build -o build/tools/ honnef.co/go/tools/cmd/staticcheck
	cd bench && go vet ./... && ../build/tools/staticcheck ./...

# The Prometheus alert rules and their unit tests (deploy/monitoring/);
# promtool comes with Debian's prometheus package.
monitoring-check:
	@if ! command -v promtool >/dev/null; then \
	  echo "monitoring-check: promtool not found (apt-get install prometheus)"; \
	  if [ -n "$$DIALTONE_REQUIRE_SIPP" ]; then exit 1; fi; echo "monitoring-check: skipped"; \
	else \
	  promtool check rules deploy/monitoring/alerts.yml && promtool test rules deploy/monitoring/tests/alerts_test.yml; \
	fi

unit:
	go test -race -count=1 -timeout 20m ./...
	cd bench && go test -race -count=1 -timeout 10m ./...

e2e:
	go test -race -count=1 -timeout 20m -tags e2e ./test/e2e/...

proto-tools:
	GOBIN=$(GOBIN) go install tool

proto: proto-tools
	protoc -I internal/fsm/fsmpb --go_out=paths=source_relative:internal/fsm/fsmpb $(PROTO_FSM)
	protoc -I internal/cluster/clusterpb -I internal/fsm/fsmpb --go_out=paths=source_relative,Mfsm.proto=$(FSMPB):internal/cluster/clusterpb --go-grpc_out=paths=source_relative,Mfsm.proto=$(FSMPB):internal/cluster/clusterpb $(PROTO_CLUSTER)
	protoc -I internal/telephony/simcall/simpb -I internal/fsm/fsmpb --go_out=paths=source_relative,Mfsm.proto=$(FSMPB):internal/telephony/simcall/simpb --go-grpc_out=paths=source_relative,Mfsm.proto=$(FSMPB):internal/telephony/simcall/simpb $(PROTO_MEDIASIM)
	protoc -I api/proto \
	  --go_out=paths=source_relative:api/dialtonev1 \
	  --go-grpc_out=paths=source_relative:api/dialtonev1 \
	  --grpc-gateway_out=paths=source_relative:api/dialtonev1 \
	  --openapiv2_out=api/openapi --openapiv2_opt=allow_merge=true,merge_file_name=dialtone,json_names_for_fields=false \
	  $(PROTO_PUBLIC)
	@# protoc writes the public package under dialtone/v1/: flatten it.
	mv api/dialtonev1/dialtone/v1/*.go api/dialtonev1/ && rm -rf api/dialtonev1/dialtone

# Fails when the committed generated code is stale.
proto-check: proto
	git diff --exit-code -- internal/fsm/fsmpb internal/cluster/clusterpb internal/telephony/simcall/simpb api/dialtonev1 api/openapi

# The benchmark harness (bench/README.md, its own Go module so that its
# chart library stays out of the server's go.mod): every scenario, full size
# (about 11 minutes), report in bench/results/latest.
# It runs from the repository root (it builds ./cmd/dialtone there).
bench: bench-build
	build/bench $(BENCH_FLAGS)
bench-build:
	cd bench && go build -o ../build/bench .

# Every scenario, small (under two minutes; report in $TMPDIR): fails on a
# broken invariant or a missing report, never on speed. CI runs it.
bench-quick: bench-build
	build/bench --quick

# Each fuzz target for a bounded number of inputs (FUZZTIME, default 20000x).
# A count (Nx), not a duration: with a duration, Go 1.26's fuzz coordinator
# can fail a clean run with "context deadline exceeded" at the deadline
# (golang/go#75804, fixed in Go 1.27). -timeout bounds a real hang.
FUZZTIME ?= 20000x
fuzz:
	go test -timeout 5m -run='^$$' -fuzz=FuzzApply -fuzztime=$(FUZZTIME) ./internal/fsm/
	go test -timeout 5m -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./internal/fsm/
	go test -timeout 5m -run='^$$' -fuzz=FuzzRestamp -fuzztime=$(FUZZTIME) ./internal/fsm/
	go test -timeout 5m -run='^$$' -fuzz=FuzzCreateEntry -fuzztime=$(FUZZTIME) ./internal/fsm/
	go test -timeout 5m -run='^$$' -fuzz=FuzzRestoreRecord -fuzztime=$(FUZZTIME) ./internal/fsm/
	go test -timeout 5m -run='^$$' -fuzz=FuzzURL -fuzztime=$(FUZZTIME) ./internal/notify/
	go test -timeout 5m -run='^$$' -fuzz=FuzzFrameCounter -fuzztime=$(FUZZTIME) ./internal/telephony/simcall/
	go test -timeout 5m -run='^$$' -fuzz=FuzzValidateSpec -fuzztime=$(FUZZTIME) ./internal/server/
	go test -timeout 5m -run='^$$' -fuzz=FuzzStrictGatewayDecode -fuzztime=$(FUZZTIME) ./internal/server/
	go test -timeout 5m -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./internal/config/
	go test -timeout 5m -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./internal/server/ssg/
	go test -timeout 5m -run='^$$' -fuzz=FuzzSingle -fuzztime=$(FUZZTIME) ./internal/server/jsonbody/
	go test -timeout 5m -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./internal/server/jsonbody/
	go test -timeout 5m -run='^$$' -fuzz=FuzzInactiveAnswer -fuzztime=$(FUZZTIME) ./internal/telephony/sipcall/
	go test -timeout 5m -run='^$$' -fuzz=FuzzDirectJSON -fuzztime=$(FUZZTIME) ./internal/server/
	go test -timeout 5m -run='^$$' -fuzz=FuzzIDCheckers -fuzztime=$(FUZZTIME) ./internal/server/
	go test -timeout 5m -run='^$$' -fuzz=FuzzParseSuppressionFile -fuzztime=$(FUZZTIME) ./internal/server/
	go test -timeout 5m -run='^$$' -fuzz=FuzzParseMinute -fuzztime=$(FUZZTIME) ./internal/dialer/window/
	cd bench && go test -timeout 5m -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./wire/

clean:
	rm -rf build

# Container image dialtone:dev: a static binary FROM scratch with CA
# certificates and a non-root user (uid 65532). Nothing is pulled.
IMAGE ?= dialtone:dev
image:
	rm -rf build/image && mkdir -p build/image/data
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o build/image/ ./cmd/dialtone ./cmd/dialtone-sim
	cp deploy/image/Dockerfile deploy/image/passwd deploy/image/group build/image/
	cp /etc/ssl/certs/ca-certificates.crt build/image/
	DOCKER_BUILDKIT=0 docker build -q -t $(IMAGE) build/image

# Prometheus for the compose "monitoring" profile, FROM scratch out of the
# host's Debian prometheus package (deploy/monitoring/Dockerfile).
MONITORING_IMAGE ?= dialtone-prometheus:dev
monitoring-image:
	@command -v prometheus >/dev/null || { echo "monitoring-image: prometheus not found (apt-get install prometheus)"; exit 1; }
	rm -rf build/monitoring && mkdir -p build/monitoring/data build/monitoring/lib build/monitoring/lib64
	cp $$(command -v prometheus) build/monitoring/prometheus
	for l in $$(ldd $$(command -v prometheus) | grep -o '/[^ ]*'); do mkdir -p build/monitoring$$(dirname $$l) && cp -L $$l build/monitoring$$l; done
	cp deploy/monitoring/Dockerfile deploy/monitoring/prometheus.yml deploy/monitoring/alerts.yml deploy/image/passwd deploy/image/group build/monitoring/
	DOCKER_BUILDKIT=0 docker build -q -t $(MONITORING_IMAGE) build/monitoring

# The compose deployment (deploy/compose): three nodes, the simulated media
# platform and the notification receiver. docker-compose v1 (1.29).
COMPOSE := docker-compose -p dialtone -f deploy/compose/docker-compose.yml
compose-up: image
	$(COMPOSE) up -d
# Adds Prometheus (http://127.0.0.1:9099) scraping every node.
compose-monitoring: monitoring-image
	$(COMPOSE) --profile monitoring up -d prometheus
compose-grow:
	$(COMPOSE) --profile five up -d n4 n5
# n5 and n4 leave the cluster for good; their containers and volumes go.
compose-shrink:
	$(COMPOSE) --profile five exec -T n5 dialtone --addr http://127.0.0.1:8080 leave
	$(COMPOSE) --profile five exec -T n4 dialtone --addr http://127.0.0.1:8080 leave
	$(COMPOSE) --profile five rm -sfv n4 n5
compose-down:
	$(COMPOSE) --profile five down -v --remove-orphans

# The chaos suite: faults under load against its own compose project, then
# the checkers (exit 1 on a violation). CHAOS_FLAGS=--quick: every fault once.
CHAOS_FLAGS ?=
chaos: image
	go run ./test/chaos/cmd/chaos $(CHAOS_FLAGS)

# The chaos suite's SIP variant (issue 15): SIPp far ends on the host
# (apt-get install sipp), the leader SIGKILLed, paused and partitioned
# with calls up and ringing. Not part of `make chaos` or CI.
chaos-sip: image
	DT_IMAGE=$(IMAGE) go run ./test/chaos/cmd/chaos --sip $(CHAOS_SIP_FLAGS)
