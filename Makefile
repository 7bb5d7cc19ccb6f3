# ncdc-stac: `make demo` (set up, generate samples, publish, serve) and `make test` (set up, run every check).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCALE ?= small
RECORDS := $(wildcard records/*.json)

.PHONY: install web demo samples publish serve test lint bench bench-quick screenshots clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

WEB_STAMP := web/node_modules/.package-lock.json
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web: $(WEB_STAMP)

samples/.generated-$(SCALE): | $(STAMP)
	$(BIN)/ncdc-stac samples --out samples --scale $(SCALE)
	touch $@

samples: samples/.generated-$(SCALE)

publish: samples
	for record in $(RECORDS); do \
	  name=$$(basename $$record .json); \
	  $(BIN)/ncdc-stac publish $$record --data samples/$$name --root public || exit 1; \
	done

serve: install web
	$(BIN)/ncdc-stac serve --root public

demo: publish serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint web
	$(BIN)/python -m pytest -n 2

screenshots: publish web
	$(BIN)/python -m services.viewer.screenshots --root public --out docs/screenshots

# Benchmarks (loopback only, every run bounded): figures next to their references, rich tables on the console,
# benchmarks/results.md + PNG scale plots. About 45 min on 2 cores (BENCH_SEARCH_SIZES=10k,100k: about 25 min).
BENCH_RESULTS ?= benchmarks/results.json
BENCH_SEARCH_SIZES ?= 10k,100k,1m
BENCH_LOAD_SECONDS ?= 300
BENCH_QUICK := $(or $(TMPDIR),/tmp)/ncdc-bench-quick

bench: install
	$(BIN)/python -m benchmarks.results start $(BENCH_RESULTS)
	$(BIN)/python -m benchmarks.publish --results $(BENCH_RESULTS) --ingest-items 20000
	$(BIN)/python -m benchmarks.tiles --results $(BENCH_RESULTS)
	$(BIN)/python -m benchmarks.search --results $(BENCH_RESULTS) --sizes $(BENCH_SEARCH_SIZES)
	$(BIN)/python -m benchmarks.load_test --results $(BENCH_RESULTS) --seconds $(BENCH_LOAD_SECONDS)
	$(BIN)/python -m benchmarks.results report $(BENCH_RESULTS) --markdown benchmarks/results.md --plots benchmarks

# Smoke run at tiny sizes (a few minutes; figures meaningless), written to $(BENCH_QUICK)/results.md.
bench-quick: install
	mkdir -p $(BENCH_QUICK)
	$(BIN)/python -m benchmarks.results start $(BENCH_QUICK)/results.json
	$(BIN)/python -m benchmarks.publish --results $(BENCH_QUICK)/results.json --size 800 --plot-sizes 400 \
	  --repeat 1 --scale small --points 20000 --ingest-items 1000
	$(BIN)/python -m benchmarks.tiles --results $(BENCH_QUICK)/results.json --scale small --repeat 1 --tiles 4 --months 2
	$(BIN)/python -m benchmarks.search --results $(BENCH_QUICK)/results.json --sizes 1k,2k --seconds 0.5 \
	  --operations 10 --walks 1
	$(BIN)/python -m benchmarks.load_test --results $(BENCH_QUICK)/results.json --seconds 5 --warmup 2 --rate 5
	$(BIN)/python -m benchmarks.results report $(BENCH_QUICK)/results.json --markdown $(BENCH_QUICK)/results.md \
	  --plots $(BENCH_QUICK)

clean:
	rm -rf samples public .pytest_cache .mypy_cache .ruff_cache
