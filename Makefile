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
# The iceberg-go the targets below build with: the version go.mod requires,
# copied to build/iceberg-go with third_party/iceberg-go/lazy-substrait.patch
# applied (its table/substrait otherwise parses Substrait's YAML catalogue at
# every start, about 0.1 s; third_party/iceberg-go/README.md), and named by a
# modfile of the build's own, build/icemerge.mod (go.mod plus a replace). The
# modfile goes in GOFLAGS, so the go commands the tests run (go list) see the
# same build. A plain go build or go install still works, unpatched.
ICEBERG      := github.com/apache/iceberg-go
ICEBERG_COPY := build/iceberg-go
PATCH        := third_party/iceberg-go/lazy-substrait.patch
MODFILE      := $(CURDIR)/build/icemerge.mod
GOPATCHED     = GOFLAGS="$(strip $(shell $(GO) env GOFLAGS) -modfile=$(MODFILE))" $(GO)

.PHONY: all build demo test fuzz bench minio vet clean

all: build

# -trimpath: the patched copy's path differs from clone to clone, and
# without it every package that imports iceberg-go would compile again in
# each one (about 30 s); trimmed, a clone builds from the cache.
build: $(MODFILE)
	$(GOPATCHED) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/icemerge ./cmd/icemerge

# The patched copy, made again when go.mod or the patch changes. The copy is
# checked to be the version go.mod selects; a patch that no longer applies
# (iceberg-go upgraded) fails the build rather than building unpatched.
$(ICEBERG_COPY)/.icemerge-patched: go.mod $(PATCH)
	@command -v patch >/dev/null 2>&1 || { echo "patch not found on PATH (Debian: apt-get install patch); it applies $(PATCH)" >&2; exit 1; }
	@set -e; $(GO) mod download $(ICEBERG); \
	mod=$$($(GO) list -m -f '{{.Version}} {{.Dir}}{{with .Replace}} replaced{{end}}' $(ICEBERG)); set -- $$mod; \
	if [ "$$3" = replaced ]; then echo "go.mod already replaces $(ICEBERG): drop $(PATCH) and its Makefile rules, or the replace (third_party/iceberg-go/README.md)" >&2; exit 1; fi; \
	case "$$2" in */iceberg-go@"$$1") ;; *) echo "$(ICEBERG) $$1 is at $$2, not a module cache folder of that version: run go mod download $(ICEBERG)" >&2; exit 1;; esac; \
	echo "copying $(ICEBERG) $$1 to $(ICEBERG_COPY) and applying $(PATCH)"; \
	if [ -d $(ICEBERG_COPY) ]; then chmod -R u+w $(ICEBERG_COPY); fi; rm -rf $(ICEBERG_COPY); \
	mkdir -p $(dir $(ICEBERG_COPY)); cp -R "$$2" $(ICEBERG_COPY); chmod -R u+w $(ICEBERG_COPY); \
	rm -f build/lazy-substrait.rej; \
	if ! patch -p1 -N -t -F0 -s -d $(ICEBERG_COPY) -i $(CURDIR)/$(PATCH) -r $(CURDIR)/build/lazy-substrait.rej >&2; then \
		rm -rf $(ICEBERG_COPY); \
		echo "$(PATCH) does not apply to $(ICEBERG) $$1 (upgraded?; the hunks it rejected are in build/lazy-substrait.rej): refresh the patch for this version, or drop it if this version initialises table/substrait lazily (third_party/iceberg-go/README.md)" >&2; \
		exit 1; \
	fi; \
	echo "$(ICEBERG) $$1" > $@

# go.mod with the replace, and go.sum as the modfile's sum file. Made again
# when either changes; checks the copy is of the version go.mod selects.
$(MODFILE): go.mod go.sum $(ICEBERG_COPY)/.icemerge-patched
	@set -e; want="$(ICEBERG) $$($(GO) list -m -f '{{.Version}}' $(ICEBERG))"; \
	if [ "$$(cat $(ICEBERG_COPY)/.icemerge-patched)" != "$$want" ]; then \
		echo "$(ICEBERG_COPY) is $$(cat $(ICEBERG_COPY)/.icemerge-patched), go.mod wants $$want: rm -rf build and make again" >&2; exit 1; fi; \
	{ cat go.mod; printf '\n// Made by the Makefile from go.mod: iceberg-go with $(PATCH).\nreplace $(ICEBERG) => ./$(ICEBERG_COPY)\n'; } > $@.tmp; \
	cp go.sum $(@:.mod=.sum); mv $@.tmp $@

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

# The machine's MariaDB (127.0.0.1:3306), the source database of the verify
# tests: started when it is down, used as it runs.
.PHONY: mariadb-shared
mariadb-shared: mariadb
	@if mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then :; \
	elif [ -x /usr/sbin/mariadbd ]; then echo "starting MariaDB"; \
		start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd; \
		for i in $$(seq 1 30); do mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 && break; sleep 1; done; \
		mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 || \
		{ [ "$$CI" = true ] && echo "mariadb: cannot start MariaDB on 127.0.0.1:3306; CI=true needs it" >&2 && exit 1; } || true; \
	elif [ "$$CI" = true ]; then echo "mariadb: no MariaDB on this machine; CI=true needs it" >&2; exit 1; \
	else echo "mariadb: no MariaDB on this machine: the verify tests will skip"; fi

# Every test, with the real servers: MinIO from ./bin, moto_server from PATH,
# PostgreSQL and MariaDB as they run, a mariadbd of the tests' own.
test: $(BIN)/minio mariadb mariadb-shared postgres $(MODFILE)
	$(GOPATCHED) vet ./...
	ICEMERGE_MINIO_BIN=$(BIN)/minio $(GOPATCHED) test -count=1 -timeout 18m ./...
	$(MAKE) fuzz
	$(MAKE) lint-deploy

# Each fuzz target for FUZZTIME; go test fuzzes one target per run. A failing
# input is written to <package>/testdata/fuzz/<target>/: commit it with the fix.
fuzz: $(MODFILE)
	$(GOPATCHED) test -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(or $(FUZZTIME),20000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/
	$(GOPATCHED) test -run '^$$' -fuzz '^FuzzDedupe$$' -fuzztime $(or $(FUZZTIME),10000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./merge/
	$(GOPATCHED) test -run '^$$' -fuzz '^FuzzRows$$' -fuzztime $(or $(FUZZTIME),100000x) -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/testkit/binlog/
	$(GOPATCHED) test -run '^$$' -fuzz '^FuzzSchemaChange$$' -fuzztime $(or $(FUZZTIME),50x) -fuzzminimizetime $(FUZZMINIMIZETIME) .

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
bench: $(MODFILE)
	$(GOPATCHED) build -trimpath -o $(BIN)/icemerge ./cmd/icemerge
	CGO_ENABLED=1 $(GOPATCHED) build -o $(BIN)/icemerge-bench ./cmd/icemerge-bench
	$(BIN)/icemerge-bench -icemerge $(BIN)/icemerge -minio-bin $(BIN)/minio $(BENCH_FLAGS)

# The Go benchmarks (go test -bench), kept out of make test.
.PHONY: bench-go
bench-go: $(MODFILE)
	$(GOPATCHED) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# The Lambda package deploy/template.yaml deploys (docs/aws.md): the
# same binary, as bootstrap for the provided.al2023 runtime, zipped to
# bin/icemerge-lambda.zip. arm64 (Graviton) unless LAMBDA_GOARCH=amd64; the
# template's Architecture parameter must match.
LAMBDA_GOARCH ?= arm64
.PHONY: lambda
lambda: $(MODFILE)
	rm -rf $(BIN)/lambda $(BIN)/icemerge-lambda.zip && mkdir -p $(BIN)/lambda
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_GOARCH) $(GOPATCHED) build -tags lambda.norpc -trimpath -ldflags "-s -w" \
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
	@if [ -d build ]; then chmod -R u+w build; fi
	rm -rf $(BIN) $(DEMO) build
