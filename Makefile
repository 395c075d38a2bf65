# litedet_ros developer commands. Every target sets up the environment first (idempotent).
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: env lint test demo lock

env:
	@bash scripts/setup_env.sh

lint: env
	$(VENV)/bin/ruff check .
	xmllint --noout package.xml

test: lint
	$(PYTHON) -m pytest

demo: env
	$(VENV)/bin/litedet-ros demo

# Re-resolve requirements/requirements.in into requirements/lock.txt in a throw-away venv.
lock:
	@bash scripts/lock_requirements.sh
