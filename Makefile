# icemerge — see README.md. Every target works on a fresh clone.
GO       ?= go
BIN      := $(CURDIR)/bin
# MinIO pinned for the S3 integration tests; built from source into ./bin.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
DEMO     := $(CURDIR)/demo
DEMO_SRC := $(DEMO)/raw_input/test_db/users
# The catalog and bookmarks follow the warehouse (demo/warehouse/_icemerge):
# every command given this --warehouse, from any folder, sees the table.
DEMO_FLAGS := --table test_db.users --warehouse file://$(DEMO)/warehouse
# The commit the binary reports (icemerge version), where the build has no
# VCS stamp of its own (GOFLAGS=-buildvcs=false, a worktree).
COMMIT   := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS  := -X main.commit=$(COMMIT)
# How long make fuzz (and so make test) runs each fuzz target: by default a
# count of executions (about 10 s each here), because Go 1.26's duration
# -fuzztime can fail a target at its deadline with "context deadline
# exceeded" and no failing input (golang/go#75804, fixed in Go 1.27).
# FUZZTIME=5m (or 1000000x) applies to every target.
FUZZTIME ?=
# Go spends up to 60s minimizing every new input by default, which would
# fill a short run; a few tries keep it fuzzing. Raise it to minimize a crasher.
FUZZMINIMIZETIME ?= 100x

.PHONY: all build demo test fuzz bench minio vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/icemerge ./cmd/icemerge

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
	@echo
	@echo "Try, from any folder: $(BIN)/icemerge status $(DEMO_FLAGS) --source $(DEMO_SRC)"
	@echo "                      $(BIN)/icemerge maintain $(DEMO_FLAGS) --dry-run"

$(BIN)/minio:
	@echo "building MinIO $(MINIO_VERSION) into ./bin (a few minutes the first time)"
	GOBIN=$(BIN) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

minio: $(BIN)/minio

# The MariaDB binaries the binlog end-to-end test starts a mariadbd of its own
# from (internal/testkit/testservers/mariadb.go: own data directory, free port, binlog
# on). When missing, Debian's mariadb-server package is installed (root or
# sudo); if that fails the tests skip, or with CI=true the run fails.
.PHONY: mariadb
mariadb:
	@if [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null 2>&1; then :; \
	else echo "installing mariadb-server (for the binlog end-to-end test)"; \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		{ $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server; } || \
		if [ "$$CI" = true ]; then echo "mariadb: cannot install mariadb-server; CI=true needs it" >&2; exit 1; \
		else echo "mariadb: cannot install mariadb-server: the MariaDB tests will skip"; fi; \
	fi

# The machine's PostgreSQL (127.0.0.1:5432), the sql catalog's production
# backend in the tests: started when it is down, used as it runs.
.PHONY: postgres
postgres:
	@if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then :; \
	elif [ -d /etc/postgresql ]; then echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || \
		{ [ "$$CI" = true ] && echo "postgres: cannot start PostgreSQL; CI=true needs it" >&2 && exit 1; } || true; \
	elif [ "$$CI" = true ]; then echo "postgres: no PostgreSQL on this machine; CI=true needs it" >&2; exit 1; \
	else echo "postgres: no PostgreSQL on this machine: the PostgreSQL tests will skip"; fi

# Every test, with the real servers: MinIO from ./bin, moto_server from PATH,
# PostgreSQL as it runs, a mariadbd of the tests' own.
test: $(BIN)/minio mariadb postgres
	$(GO) vet ./...
	ICEMERGE_MINIO_BIN=$(BIN)/minio $(GO) test -count=1 -timeout 18m ./...
	$(MAKE) fuzz
	$(MAKE) lint-deploy

# Each fuzz target for FUZZTIME; go test fuzzes one target per run. A failing
# input is written to <package>/testdata/fuzz/<target>/: commit it with the fix.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(or $(FUZZTIME),20000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/
	$(GO) test -run '^$$' -fuzz '^FuzzDedupe$$' -fuzztime $(or $(FUZZTIME),10000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/
	$(GO) test -run '^$$' -fuzz '^FuzzRows$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/testkit/binlog/
	$(GO) test -run '^$$' -fuzz '^FuzzSchemaChange$$' -fuzztime $(or $(FUZZTIME),50x) -fuzzminimizetime $(FUZZMINIMIZETIME) .

# The benchmark, kept out of make test (cmd/icemerge-bench/README.md): generates
# DMS-shaped files at scale (GZIP, parquet-1-0, 10,000-row row groups, CDC files
# of about 32 MB; cached in bench-work/), runs icemerge, DuckDB (the same merge
# as a full rewrite to zstd Parquet, 2 threads) and a naive iceberg-go merge on
# them as subprocesses, prints wall time as a ratio to DuckDB's, rows/s, bytes
# and peak RSS next to issue 17's targets (never failing on a missed one) and
# writes bench-results/bench-<timestamp>.json. The bench links DuckDB through
# cgo (a C compiler is needed). About 15 minutes at the defaults, the first run
# longer (it generates about 3 GB of data).
# Overrides: make bench BENCH_FLAGS='-rows 1000000 -changes 100000 -reps 1 -small-files 100';
# the long runs (100M-row table, 10M-change batch): BENCH_FLAGS=-full.
BENCH_FLAGS ?=
bench:
	$(GO) build -o $(BIN)/icemerge ./cmd/icemerge
	CGO_ENABLED=1 $(GO) build -o $(BIN)/icemerge-bench ./cmd/icemerge-bench
	$(BIN)/icemerge-bench -icemerge $(BIN)/icemerge -minio-bin $(BIN)/minio $(BENCH_FLAGS)

# The Go benchmarks (go test -bench), kept out of make test.
.PHONY: bench-go
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# The Lambda package deploy/template.yaml deploys (docs/aws.md): the
# same binary, as bootstrap for the provided.al2023 runtime, zipped to
# bin/icemerge-lambda.zip. arm64 (Graviton) unless LAMBDA_GOARCH=amd64; the
# template's Architecture parameter must match.
LAMBDA_GOARCH ?= arm64
.PHONY: lambda
lambda:
	rm -rf $(BIN)/lambda $(BIN)/icemerge-lambda.zip && mkdir -p $(BIN)/lambda
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_GOARCH) $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w" \
		-o $(BIN)/lambda/bootstrap ./cmd/icemerge
	cd $(BIN)/lambda && if command -v zip >/dev/null 2>&1; then zip -q -X ../icemerge-lambda.zip bootstrap; \
		else python3 -m zipfile -c ../icemerge-lambda.zip bootstrap; fi
	@ls -l $(BIN)/icemerge-lambda.zip

# cfn-lint on the CloudFormation templates under deploy/ (make test runs it).
# Without cfn-lint it skips, or fails with CI=true.
CFN_LINT ?= cfn-lint
.PHONY: lint-deploy
lint-deploy:
	@if command -v $(CFN_LINT) >/dev/null 2>&1; then echo "$(CFN_LINT) deploy/*.yaml"; $(CFN_LINT) deploy/*.yaml; \
	elif [ "$$CI" = true ]; then echo "lint-deploy: $(CFN_LINT) not found on PATH (pip install cfn-lint); CI=true needs it" >&2; exit 1; \
	else echo "lint-deploy: $(CFN_LINT) not found on PATH (pip install cfn-lint): skipping the template check"; fi

clean:
	rm -rf $(BIN) $(DEMO)
