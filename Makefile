# Dialtone build, code generation and test targets.
SHELL := /bin/bash
GOBIN := $(CURDIR)/bin
export PATH := $(GOBIN):$(PATH)

PROTO_PUBLIC := api/proto/dialtone/v1/requests.proto api/proto/dialtone/v1/cluster.proto api/proto/dialtone/v1/portusage.proto api/proto/dialtone/v1/dialer.proto
PROTO_FSM := fsm/fsmpb/fsm.proto
PROTO_CLUSTER := cluster/clusterpb/internal.proto
PROTO_MEDIASIM := mediasim/simpb/mediasim.proto

.PHONY: all build test unit e2e lint proto proto-tools proto-check bench bench-quick fuzz clean

all: build

build:
	go build -o bin/dialtone ./cmd/dialtone

# The whole suite: what CI runs.
test: lint unit e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$\|\.pb\.gw\.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./e2e/...
	go tool staticcheck ./...

unit:
	go test -race -count=1 -timeout 20m ./...


e2e:
	go test -race -count=1 -timeout 20m -tags e2e ./e2e/...

proto-tools:
	GOBIN=$(GOBIN) go install tool

proto: proto-tools
	protoc -I fsm/fsmpb --go_out=paths=source_relative:fsm/fsmpb $(PROTO_FSM)
	protoc -I cluster/clusterpb -I fsm/fsmpb --go_out=paths=source_relative,Mfsm.proto=github.com/seed-7bfc04c2/dialtone/fsm/fsmpb:cluster/clusterpb --go-grpc_out=paths=source_relative,Mfsm.proto=github.com/seed-7bfc04c2/dialtone/fsm/fsmpb:cluster/clusterpb $(PROTO_CLUSTER)
	protoc -I mediasim/simpb -I fsm/fsmpb --go_out=paths=source_relative,Mfsm.proto=github.com/seed-7bfc04c2/dialtone/fsm/fsmpb:mediasim/simpb --go-grpc_out=paths=source_relative,Mfsm.proto=github.com/seed-7bfc04c2/dialtone/fsm/fsmpb:mediasim/simpb $(PROTO_MEDIASIM)
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
	git diff --exit-code -- fsm/fsmpb cluster/clusterpb mediasim/simpb api/dialtonev1 api/openapi

# The benchmark harness (bench/README.md): every scenario, full size
# (about 11 minutes), report in bench/results/latest.
bench:
	go run ./bench

# Every scenario, small (under two minutes; report in $TMPDIR): fails on a
# broken invariant or a missing report, never on speed. CI runs it.
bench-quick:
	go run ./bench --quick

# Each fuzz target for a bounded time (FUZZTIME, default 20s).
FUZZTIME ?= 20s
fuzz:
	go test -run='^$$' -fuzz=FuzzApply -fuzztime=$(FUZZTIME) ./fsm/
	go test -run='^$$' -fuzz=FuzzValidateSpec -fuzztime=$(FUZZTIME) ./api/
	go test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./config/
	go test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./api/ssg/

clean:
	rm -rf bin
