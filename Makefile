# Durable's developer commands. `make help` lists them.
#
# Everything here needs only Go and PostgreSQL: `make db` (a dependency of
# run and test) creates the database if it is missing, or starts a throwaway
# cluster under ./.data when no server answers and PostgreSQL's server
# binaries are installed. Tools (sqlc, oapi-codegen, staticcheck) are pinned
# in tools/go.mod and run with `go tool`; the first build of sqlc takes a few
# minutes. `make lint` also needs Node.js (20.19 or later) and npm, for the
# OpenAPI linter (see REDOCLY below).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/durable?sslmode=disable
GO_TOOL := go tool -modfile=tools/go.mod
# The test database server: each test package clones its own databases there.
TEST_DATABASE_URL ?= $(patsubst %/durable?sslmode=disable,%/postgres?sslmode=disable,$(DATABASE_URL))

# The OpenAPI linter is Redocly CLI, with its recommended rules in their
# strict form (tools/redocly/redocly.yaml). Redocly rather than a Go linter:
# its recommended ruleset is what API tooling commonly holds an OpenAPI
# document to; it is one self-contained npm package (about 15 MB, installed
# in a second from the pinned tools/redocly/package-lock.json, into
# tools/redocly/node_modules, when missing or when the lock changes); and
# vacuum, the Go linter with a comparable ruleset, could not be had through
# the Go module proxy here.
REDOCLY := tools/redocly/node_modules/.bin/redocly

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the api, worker and durable (CLI) binaries into bin/
	go build -o bin/ ./cmd/api ./cmd/worker ./cmd/durable

.PHONY: db
db: ## make sure PostgreSQL answers at DATABASE_URL and the database exists
	go run ./scripts/devpg

.PHONY: db-stop
db-stop: ## stop the throwaway PostgreSQL cluster under .data, if one runs
	go run ./scripts/devpg -stop

# The worker's DURABLE_METRICS_ADDR is 127.0.0.1:9091 unless the
# environment sets it (DURABLE_METRICS_ADDR= make run: none).
.PHONY: run
run: build db ## start the API and a worker (DURABLE_METRICS_ADDR=127.0.0.1:9091 unless set); Ctrl-C stops both
	@bin/api & api=$$!; DURABLE_METRICS_ADDR="$${DURABLE_METRICS_ADDR-127.0.0.1:9091}" bin/worker & worker=$$!; \
	trap 'kill -TERM $$api $$worker 2>/dev/null || true' INT TERM; \
	wait -n || true; kill -TERM $$api $$worker 2>/dev/null || true; wait

.PHONY: migrate
migrate: db ## apply pending database migrations and exit
	go run ./cmd/api migrate

.PHONY: test
test: db ## run every test against a real PostgreSQL; leaves testdb_tpl_* databases there (make test-clean)
	DURABLE_TEST_DATABASE_URL='$(TEST_DATABASE_URL)' go test -count=1 ./...

# pgtestdb keeps a template database per schema (testdb_tpl_<hash>), so
# that the next run need not migrate again, and the database of each failed
# test (testdb_tpl_<hash>_inst_<id>), for inspection. Databases in use, such
# as those of tests running now, are kept.
.PHONY: test-clean
test-clean: ## drop the testdb_tpl_* databases that make test leaves on the test server
	go run ./scripts/devpg -database-url '$(TEST_DATABASE_URL)' -drop-test-databases

.PHONY: bench
bench: db ## the end-to-end benchmark (bench/: api + worker + steps, 1,000 runs × 10 steps), then the micro-benchmarks
	go run ./bench $(BENCH_FLAGS)
	go test -run='^$$' -bench=. -benchmem ./internal/...

.PHONY: generate
generate: ## regenerate sqlc queries and the OpenAPI client
	$(GO_TOOL) sqlc generate
	$(GO_TOOL) oapi-codegen -config client/oapi-codegen.yaml -o client/client.gen.go api/openapi.yaml

$(REDOCLY): tools/redocly/package.json tools/redocly/package-lock.json
	npm ci --prefix tools/redocly --no-audit --no-fund --ignore-scripts
	@touch $@

.PHONY: lint
lint: $(REDOCLY) ## gofmt, go vet, staticcheck, generated-code drift, the OpenAPI linter
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^tools/')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(GO_TOOL) staticcheck ./...
	$(GO_TOOL) sqlc vet
	$(GO_TOOL) sqlc diff
	@tmp=$$(mktemp); trap 'rm -f $$tmp' EXIT; \
	$(GO_TOOL) oapi-codegen -config client/oapi-codegen.yaml -o $$tmp api/openapi.yaml; \
	if ! diff -q $$tmp client/client.gen.go >/dev/null; then echo "client/client.gen.go is stale: run make generate"; exit 1; fi
	@# Redocly's stderr is shown only when it fails: otherwise it holds
	@# nothing but banners (Node.js 20's end of life).
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	if ! REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(REDOCLY) lint --format stylish --config tools/redocly/redocly.yaml api/openapi.yaml 2>$$log; then \
		cat $$log >&2; exit 1; fi; \
	echo "api/openapi.yaml: Redocly's recommended-strict rules pass"

.PHONY: check
check: lint test ## everything CI checks: lint, drift, the OpenAPI document (in tests) and every test
