# Persona Stream — the commands a user needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PERSONA := $(BIN)/persona
STAMP := $(VENV)/.installed
QUIX_VENV := .venv-quix
QUIX_STAMP := $(QUIX_VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install up down status up-cluster down-cluster status-cluster test test-unit lint fmt demo ui soak bench bench-quix bench-loop schemas env-example clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its pinned dependencies

up: install ## Start Kafka, PostgreSQL and MLflow locally (installs what is missing)
	$(PERSONA) stack up

down: ## Stop exactly what `make up` started
	@if [ -x $(PERSONA) ]; then $(PERSONA) stack down; else echo "nothing installed"; fi

status: install ## Show each service, its address and whether it answers
	$(PERSONA) stack status

up-cluster: install ## Start the cluster profile beside it: 3 SASL_SSL Kafka nodes, TLS PostgreSQL, MLflow with auth (docs/cluster.md)
	$(PERSONA) stack up --profile cluster

down-cluster: ## Stop exactly what `make up-cluster` started
	@if [ -x $(PERSONA) ]; then $(PERSONA) stack down --profile cluster; else echo "nothing installed"; fi

status-cluster: install ## Each node of the cluster profile, its PostgreSQL and MLflow, and whether they answer
	$(PERSONA) stack status --profile cluster

test: install bench-quix ## The whole test suite (unit + integration) against the local stack and the cluster profile (and the Quix Streams peer of the staircase benchmark)
	@bash infra/run_tests.sh

test-unit: install ## Unit tests only (no services needed)
	$(BIN)/pytest tests/unit -q

lint: install ## ruff (lint + format check) and mypy (strict) on every package and bench/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: up ## The main job: months replayed live — labels, drift alert, retrain, hot swap, summary
	$(PERSONA) demo

ui: install ## Evidently's UI on the drift history (WORKSPACE=dir; default: the PERSONA_MONITOR_EVIDENTLY_WORKSPACE setting, else the demo's out/demo/workspace)
	$(PERSONA) ui --workspace $(or $(WORKSPACE),$(PERSONA_MONITOR_EVIDENTLY_WORKSPACE),out/demo/workspace)

soak: up ## The loop under random faults for SOAK_MINUTES (default 20), then an accounting (docs/reliability.md)
	$(PERSONA) soak --minutes $(or $(SOAK_MINUTES),20)

$(QUIX_STAMP): bench/quix-constraints.txt
	@test -d $(QUIX_VENV) || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q --upgrade pip
	$(QUIX_VENV)/bin/pip install -q -r bench/quix-constraints.txt
	@touch $(QUIX_STAMP)

bench-quix: $(QUIX_STAMP) ## The venv of the staircase benchmark's Quix Streams peer (its pins conflict with ours)

bench-loop: up ## The whole loop on a replay of LOOP_EVENTS (default 1,000,000), timed end to end, RSS per service (docs/benchmarks/replay_loop.md)
	$(BIN)/python bench/replay_loop.py --events $(or $(LOOP_EVENTS),1000000)

bench: up bench-quix ## Hot-path benchmarks, each beside its baseline (figures: docs/benchmarks.md)
	$(BIN)/python bench/producer_throughput.py --events 200000
	$(BIN)/python bench/stream_throughput.py
	$(BIN)/python bench/stream_staircase.py
	$(BIN)/python bench/monitor_window.py
	$(BIN)/python bench/trainer_retrain.py
	$(BIN)/python bench/serve_http.py

schemas: install ## Export the topics' JSON Schemas to docs/schemas
	$(PERSONA) schemas export docs/schemas

env-example: install ## Regenerate .env.example from the settings classes
	$(PERSONA) config env-example --out .env.example

clean: down down-cluster ## Stop both profiles and delete their data (keeps the Kafka jar cache)
	rm -rf .stack
