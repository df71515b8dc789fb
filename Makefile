# Two commands for a newcomer: `make up` (deploy the example `local` stack against the simulated
# Windows host on loopback) and `make test` (the whole suite). Everything else is a helper.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVHOST_STATE := .devhost
DEVHOST_READY := $(DEVHOST_STATE)/_sim/ready.json
# Dev-only credentials of the simulated host; the `local` stack holds the same password as an
# encrypted secret (passphrase: usercube-local-dev-only, see stackrun/workspace.py).
DEVHOST_USER := administrator
DEVHOST_PASSWORD := DevHost-Only-Passw0rd
DEVHOST_HTTP_PORT := 15985
DEVHOST_HTTPS_PORT := 15986

.PHONY: help up preview refresh destroy test lint devhost-start devhost-stop down pulumi bless-scripts docs clean

help:
	@echo "make up      deploy the example 'local' stack against the simulated Windows host (devhost)"
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

devhost-start: $(STAMP)
	@if [ -f $(DEVHOST_READY) ] && kill -0 $$($(PY) -c "import json;print(json.load(open('$(DEVHOST_READY)'))['pid'])") 2>/dev/null; then \
	  echo "simulated host already running (state $(DEVHOST_STATE))"; \
	else \
	  rm -f $(DEVHOST_READY); \
	  echo -n "$(DEVHOST_PASSWORD)" | $(PY) -m devhost add-user --state $(DEVHOST_STATE) --user $(DEVHOST_USER) --password-stdin; \
	  nohup $(PY) -m devhost serve --state $(DEVHOST_STATE) --port $(DEVHOST_HTTP_PORT) --https-port $(DEVHOST_HTTPS_PORT) \
	    --ready-file $(DEVHOST_READY) > $(DEVHOST_STATE)/devhost.log 2>&1 & \
	  for i in $$(seq 1 100); do [ -f $(DEVHOST_READY) ] && break; sleep 0.1; done; \
	  [ -f $(DEVHOST_READY) ] || { cat $(DEVHOST_STATE)/devhost.log; exit 1; }; \
	  echo "simulated Windows host (devhost, NOT Windows) listening on 127.0.0.1:$(DEVHOST_HTTP_PORT) (http+ntlm) and :$(DEVHOST_HTTPS_PORT) (https); log $(DEVHOST_STATE)/devhost.log"; \
	fi
	@# The server as the manual's prerequisites leave it: IIS installed, then the .NET 8 hosting bundle
	@# (installed by hand before any deployment; the stack checks it). Both steps are idempotent.
	@$(PY) -m devhost admin feature-install --state $(DEVHOST_STATE) --name Web-Server >/dev/null
	@$(PY) -m devhost admin install-hosting-bundle --state $(DEVHOST_STATE) --version 8.0.11

devhost-stop down:
	@if [ -f $(DEVHOST_READY) ]; then kill $$($(PY) -c "import json;print(json.load(open('$(DEVHOST_READY)'))['pid'])") 2>/dev/null || true; rm -f $(DEVHOST_READY); echo "simulated host stopped"; fi

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
	rm -rf .pulumi-state $(DEVHOST_STATE)
