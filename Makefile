# ncdc-stac: `make demo` (set up, generate samples, publish, serve) and `make test` (set up, run every check).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCALE ?= small
RECORDS := $(wildcard records/*.json)

.PHONY: install web demo samples publish serve test lint bench screenshots clean

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

bench: install
	$(BIN)/python -m benchmarks.publish
	$(BIN)/python -m benchmarks.tiles
	$(BIN)/python -m benchmarks.search --sizes 10k,100k

clean:
	rm -rf samples public .pytest_cache .mypy_cache .ruff_cache
