# The two commands of the README's Quickstart, and the checks CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Byte-compiled sources, so that a command does not compile logweir anew
# on every start (a tenth of a second) where PYTHONDONTWRITEBYTECODE is set;
# Python still recompiles any file changed since.
.PHONY: bytecode
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src

setup: $(STAMP) bytecode

## demo: set up, generate sample logs, run the main job, print the report
# The sample has response times (%D), so latency panels and alerts show too.
DEMO_FORMAT := %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D

demo-out/access.log: | $(STAMP)
	mkdir -p demo-out
	$(BIN)/logweir gen --lines 200000 --format combined-duration --seed 7 \
		--incidents --output demo-out/access.log

demo: $(STAMP) bytecode demo-out/access.log
	$(BIN)/logweir run demo-out/access.log --out demo-out/out \
		--format '$(DEMO_FORMAT)' --report demo-out/report.html
	@echo
	@echo "Sample log:  demo-out/access.log (incident labels: demo-out/access.log.incidents.json)"
	@echo "Outputs:     demo-out/out (lake: events/, store: logweir.duckdb, rejects/)"
	@echo "HTML report: demo-out/report.html"
	@echo "Dashboard:   $(BIN)/logweir serve --out demo-out/out   (then open http://127.0.0.1:8080/)"
	@echo "Try:         $(BIN)/logweir query \"SELECT status, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC\" --out demo-out/out"

## test: set up and run the whole suite (starts chromium's driver and a
## Kafka broker itself: see scripts/test.sh)
test: $(STAMP)
	scripts/test.sh

## check: lint, format and type checks
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
