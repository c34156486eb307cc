# Hangar's build, test and benchmark entry points.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: build test test-slow lint bench fuzz quickstart

build:
	$(GO) build -o bin/hangar ./cmd/hangar

# lint: formatting and vet.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# test: everything, with the race detector. Needs root (containers, netns),
# crun or runc, and the packages .ci/run installs.
test: lint
	$(GO) test -race -timeout 30m ./...

# test-slow: the tests `make test` skips because they download from
# Debian's archive (the Hangar Postgres image). CI runs it second.
test-slow:
	HANGAR_PG_IMAGE_TEST=1 $(GO) test -race -count=1 -timeout 30m -run 'TestHangarPostgresImage|TestPgClusterAcrossHosts' ./e2e

# bench: the benchmarks that print side-by-side figures and ratios.
# HANGAR_BENCH_IDLE_WAIT: how long BenchmarkProxyIdleMemory waits after
# its 10,000 connections close before it measures again (empty: not).
HANGAR_BENCH_IDLE_WAIT ?= 60s
bench:
	HANGAR_BENCH_IDLE_WAIT=$(HANGAR_BENCH_IDLE_WAIT) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 45m ./bench/...

# fuzz: every fuzzer for FUZZTIME (60s by default). An input that fails is
# written to the package's testdata/fuzz: commit it, and every `go test`
# runs it from then on (with the seeds).
FUZZTIME ?= 60s
fuzz:
	@for p in $$(grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$p/*_test.go | sed -E 's/func (Fuzz[A-Za-z0-9_]*).*/\1/'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./$$p || exit 1; \
	  done; \
	done

quickstart:
	bash scripts/quickstart.sh
