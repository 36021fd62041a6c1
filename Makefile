# Sunbid — developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
VENDOR := bidding/static/vendor
export SUNBID_INSTANCE_DIR ?= $(CURDIR)/instance

.PHONY: install assets translations run test test-fast bench lint typecheck clean

install: $(STAMP) assets translations

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip wheel
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Front-end libraries from the npm registry (pinned in package-lock.json), never a CDN.
assets: $(VENDOR)/.stamp

$(VENDOR)/.stamp: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/bootstrap $(VENDOR)/swagger-ui $(VENDOR)/chart.js $(VENDOR)/socket.io
	cp -r node_modules/bootstrap/dist/css node_modules/bootstrap/dist/js $(VENDOR)/bootstrap/
	cp node_modules/swagger-ui-dist/swagger-ui.css node_modules/swagger-ui-dist/swagger-ui-bundle.js \
	   node_modules/swagger-ui-dist/swagger-ui-standalone-preset.js $(VENDOR)/swagger-ui/
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.js/
	cp node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/socket.io/
	touch $@

translations: $(STAMP)
	$(VENV)/bin/pybabel compile -d bidding/translations

run: install
	$(VENV)/bin/sunbid db upgrade
	$(VENV)/bin/sunbid demo
	$(VENV)/bin/sunbid serve --host 127.0.0.1 --port 5000

# The whole suite: unit (SQLite), integration (PostgreSQL, Redis, S3 server, Celery
# worker; skipped when absent unless SUNBID_REQUIRE_SERVICES=1) and browser (Chromium).
test: install
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q -p no:cacheprovider --timeout 900 $(PYTEST_ARGS)

test-fast: install
	$(VENV)/bin/pytest -n 2 -q -m "not slow and not browser" $(PYTEST_ARGS)

# Benchmarks print ratios against a baseline measured in the same run; never timed tests.
bench: install
	@for f in tests/bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy crypto bidding

typecheck: lint

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .mypy_cache .ruff_cache
