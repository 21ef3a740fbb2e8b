# kefu — two commands do all the set-up: `make run` and `make test` (see README).
SHELL := /bin/bash
SETUP := scripts/setup.sh
PY := .venv/bin/python

.PHONY: run test setup setup-test model train lint typecheck test-fast bench clean

run: setup model train          ## install what is missing, then run the whole stack on the demo store
	$(PY) -m kefu.stack

test: setup-test model train lint typecheck  ## install what is missing, lint, type-check, run every test (end-to-end included)
	bash scripts/test.sh

setup:
	$(SETUP) system-run venv rasa-venv secrets echarts

setup-test:
	$(SETUP) system-test venv rasa-venv secrets echarts

model:
	$(SETUP) model

train:
	$(SETUP) train

test-fast:                      ## unit tests only (no Redis, model, Rasa or browser)
	$(PY) -m pytest -m "not redis and not model and not rasa and not browser" -q

lint:
	.venv/bin/ruff check kefu bot knowledge actions handoff orders quality tests benchmarks

typecheck:
	.venv/bin/mypy

bench:                          ## benchmarks; numbers land in benchmarks/results/ (about an hour)
	$(PY) benchmarks/generalisation.py run  # the answer decision on ../shared/eval (KEFU_EVAL_DIR)
	$(PY) benchmarks/handoff.py
	$(PY) benchmarks/handoff_latency.py
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/load.py
	$(PY) benchmarks/faults.py  # kills each process under 16 shoppers: lost/empty replies per fault
	$(PY) benchmarks/order_service.py

clean:
	rm -rf .state var/logs models
