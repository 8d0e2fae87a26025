# Two commands do everything: `make setup` (idempotent) and `make test`.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOURCE ?=
ARGS ?=

.PHONY: setup test lint run bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade -q pip
	$(VPY) -m pip install -q -r requirements.txt
	touch $(STAMP)

test: setup
	YOLO_OFFLINE=1 $(VPY) -m ruff check pipeline tests run.py
	YOLO_OFFLINE=1 $(VPY) -m pytest -q tests

lint: setup
	$(VPY) -m ruff check pipeline tests run.py

run: setup
	@test -n "$(SOURCE)" || (echo "usage: make run SOURCE=video.mp4 [ARGS='--classes person']" >&2; exit 2)
	YOLO_OFFLINE=1 $(VPY) run.py track --source "$(SOURCE)" $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
