# Two commands for a newcomer: `make up` (deploy the example `local` stack against the simulated
# Windows hosts on loopback) and `make test` (the whole suite). Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
.PHONY: help up preview refresh destroy test lint devhost-start devhost-stop down pulumi bless-scripts docs clean stacks

help:
	@echo "make up      deploy the example 'local' stack against the simulated Windows hosts (devhost)"
	@echo "make test    run the whole test suite (lint, type check, unit, real Pulumi engine end to end)"
	@echo "make preview | refresh | destroy   the other Pulumi verbs on the 'local' stack"
	@echo "make down    stop the simulated host"

$(STAMP): pyproject.toml
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

pulumi: $(STAMP)
	@tools/ensure-pulumi.sh >/dev/null

# One simulated Windows host (devhost, NOT Windows) per host of the local stack, each on its own
# loopback address (127.0.0.2, 127.0.0.3, ...) on the standard WinRM ports; see tools/local_hosts.py.
devhost-start: $(STAMP)
	@$(PY) tools/local_hosts.py start

devhost-stop down:
	@if [ -x $(PY) ]; then $(PY) tools/local_hosts.py stop; fi

up: pulumi devhost-start
	$(PY) -m stackrun up --stack local

preview: pulumi devhost-start
	$(PY) -m stackrun preview --stack local --diff

refresh: pulumi devhost-start
	$(PY) -m stackrun refresh --stack local

destroy: pulumi devhost-start
	$(PY) -m stackrun destroy --stack local

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: pulumi
	$(PY) -m pytest

docs: $(STAMP)
	$(PY) tools/gen_docs.py

bless-scripts: $(STAMP)
	$(PY) tools/bless_scripts.py

clean: down
	rm -rf .pulumi-state .devhost

# Rewrite the example stacks (new throw-away certificates and secrets); see tools/example_stacks.py.
stacks: $(STAMP) pulumi
	$(PY) tools/example_stacks.py
