# Kiln: `make run` serves the API on embedded defaults; `make test` runs the tests.
GO ?= go
GENERATED := ent graph migrations schema/kiln.directives.graphql gqlgen.yml clients/swift clients/kotlin

.PHONY: run generate test check bench build fuzz fuzz-schemas

## run: start the server on :8080 (SQLite under ./data; DATABASE_URL=postgres://... for PostgreSQL)
run:
	$(GO) run .

## generate: regenerate ent/, graph/, migrations/, clients/ from schema/*.graphql
generate:
	$(GO) run ./cmd/kiln generate

## build: compile the server binary to bin/kiln
build:
	$(GO) build -o bin/kiln .

## test: all tests; tests of services that are not configured are skipped, and say so (bash .ci/run runs them all)
test:
	@if [ -z "$$KILN_TEST_POSTGRES_URL" ]; then \
	  echo "note: KILN_TEST_POSTGRES_URL is not set: PostgreSQL tests are SKIPPED (SQLite tests run)."; \
	  echo "      To run them: export KILN_TEST_POSTGRES_URL=\$$(.ci/pg.sh start)"; \
	fi
	@if [ -z "$$KILN_TEST_REDIS_URL" ]; then \
	  echo "note: KILN_TEST_REDIS_URL is not set: Redis pub/sub and rate-limit tests are SKIPPED (in-process ones run)."; \
	  echo "      To run them: export KILN_TEST_REDIS_URL=\$$(.ci/redis.sh start)"; \
	fi
	@if [ -z "$$KILN_TEST_S3_ENDPOINT" ]; then \
	  echo "note: KILN_TEST_S3_ENDPOINT is not set: S3 file-store tests are SKIPPED (disk ones run)."; \
	  echo "      To run them: eval \"\$$(.ci/s3.sh start)\""; \
	fi
	@if ! command -v python3 >/dev/null || ! command -v npm >/dev/null; then \
	  echo "note: python3 or npm is missing: the graphql-ws/gql interop tests and schemathesis are SKIPPED."; \
	  echo "      To run them: install python3 (with venv) and node/npm; packages are fetched once and cached."; \
	fi
	@if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then \
	  echo "note: java or mvn is missing: the Kotlin SDK tests are SKIPPED."; \
	  echo "      To run them: install a JDK 17 and Maven."; \
	fi
	@if [ -z "$$KILN_SWIFTC" ] && ! command -v swiftc >/dev/null && [ ! -x ../shared/tools/swift/swiftc ]; then \
	  echo "note: no Swift compiler: the Swift SDK tests are SKIPPED."; \
	  echo "      To run them: put swiftc on PATH or export KILN_SWIFTC=/path/to/swiftc."; \
	fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## check: regenerate and fail if the committed generated code is stale
check:
	$(GO) run ./cmd/kiln generate
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
	  echo "generated code is out of date; run 'make generate' and commit:"; \
	  git status --porcelain -- $(GENERATED); \
	  git --no-pager diff --stat -- $(GENERATED); \
	  exit 1; \
	fi
	@echo "generated code is up to date"

## bench: benchmarks (figures go to docs/performance.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/...

## fuzz-schemas: generate, build, migrate and serve N random schemas (default 20) from a random seed on SQLite and PostgreSQL (KILN_TEST_POSTGRES_URL); CI runs one
N ?= 20
SEED ?= $(shell date +%s)
fuzz-schemas:
	KILN_FUZZ_SCHEMAS=$(N) KILN_FUZZ_SEED=$(SEED) $(GO) test ./generator/generate/ -run '^TestSchemaFuzz$$' -count=1 -v -timeout 0

## fuzz: a short fuzzing run of the schema loader (seeds always run in make test)
fuzz:
	$(GO) test ./generator/internal/sdl/ -run '^$$' -fuzz FuzzLoad -fuzztime 20s
	$(GO) test ./server/internal/graphqlapi/ -run '^$$' -fuzz FuzzGraphQLRequest -fuzztime 20s
