# icemerge — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := $(CURDIR)/bin
# MinIO pinned for the S3 integration tests; built from source into ./bin.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
DEMO     := $(CURDIR)/demo
DEMO_SRC := $(DEMO)/raw_input/test_db/users
DEMO_FLAGS := --table test_db.users --warehouse file://$(DEMO)/warehouse --catalog-uri $(DEMO)/icemerge.db
# How long make fuzz (and so make test) runs each fuzz target.
FUZZTIME ?= 10s
# Go spends up to 60s minimizing every new input by default, which would
# fill a short run; a few tries keep it fuzzing. Raise it to minimize a crasher.
FUZZMINIMIZETIME ?= 100x

.PHONY: all build demo test fuzz bench minio vet clean

all: build

build:
	$(GO) build -o $(BIN)/icemerge ./cmd/icemerge

# Two runs on the worked users example: the full load, then the CDC file
# with I 6, U 1, D 4. Prints the table: users 1 (updated email), 2, 3, 5, 6.
demo: build
	rm -rf $(DEMO) && mkdir -p $(DEMO_SRC)
	cp testdata/users/LOAD00000001.parquet $(DEMO_SRC)/
	$(BIN)/icemerge run --source $(DEMO_SRC) --key user_id $(DEMO_FLAGS)
	cp testdata/users/20240814-002642123.parquet $(DEMO_SRC)/
	$(BIN)/icemerge run --source $(DEMO_SRC) --key user_id $(DEMO_FLAGS)
	@echo
	$(BIN)/icemerge show $(DEMO_FLAGS)

$(BIN)/minio:
	@echo "building MinIO $(MINIO_VERSION) into ./bin (a few minutes the first time)"
	GOBIN=$(BIN) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

minio: $(BIN)/minio

# Every test, with the real servers: MinIO from ./bin, moto_server from PATH.
test: $(BIN)/minio
	$(GO) vet ./...
	ICEMERGE_MINIO_BIN=$(BIN)/minio $(GO) test -count=1 -timeout 18m ./...
	$(MAKE) fuzz

# Each fuzz target for FUZZTIME; go test fuzzes one target per run. A failing
# input is written to merge/testdata/fuzz/<target>/: commit it with the fix.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/
	$(GO) test -run '^$$' -fuzz '^FuzzDedupe$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/

# The benchmark, kept out of make test (cmd/icemerge-bench/README.md): generates
# DMS files at scale (cached in bench-work/), runs icemerge and a naive
# iceberg-go merge on them as subprocesses, prints wall time, rows/s, bytes and
# peak RSS next to the targets (never failing on a missed one) and writes
# bench-results/bench-<timestamp>.json. A few minutes at the defaults.
# Overrides: make bench BENCH_FLAGS='-rows 1000000 -changes 100000 -reps 1';
# the long runs (100M-row table, 10M-change batch): BENCH_FLAGS=-full.
BENCH_FLAGS ?=
bench:
	$(GO) build -o $(BIN)/icemerge ./cmd/icemerge
	$(GO) build -o $(BIN)/icemerge-bench ./cmd/icemerge-bench
	$(BIN)/icemerge-bench -icemerge $(BIN)/icemerge -minio-bin $(BIN)/minio $(BENCH_FLAGS)

# The Go benchmarks (go test -bench), kept out of make test.
.PHONY: bench-go
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

clean:
	rm -rf $(BIN) $(DEMO)
