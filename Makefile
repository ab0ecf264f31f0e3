# railbot — `make setup` prepares a fresh Debian/Ubuntu machine; `make test` runs everything CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PACKAGES := models broker_link robot_agent cloud_sync hardware firmware_bridge

VENV := .venv/bin

.PHONY: help setup test lint format bench serve

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

setup:  ## install system packages when missing, the locked environment, the example robot's keys, the face models
	@# Bytecode compiled at install: every CLI start is ~3 s faster where PYTHONDONTWRITEBYTECODE is set.
	@uv=$$(tools/setup-system.sh) && "$$uv" sync --locked --quiet --compile-bytecode
	@[ -e var/robot.key ] && [ -e var/faces.key ] || $(VENV)/robot-agent --config robot.toml keys init >/dev/null
	@# Pinned and sha256-checked; only what is missing or wrong is fetched or built (progress on stderr then).
	@$(VENV)/robot-agent --config robot.toml models fetch --test-faces var/test-faces >/dev/null
	@$(VENV)/robot-agent --config robot.toml models build >/dev/null

lint: setup  ## ruff, ruff format --check and mypy --strict over every package, the tests and the benchmarks
	$(VENV)/ruff check $(PACKAGES) tests bench
	$(VENV)/ruff format --check $(PACKAGES) tests bench
	$(VENV)/mypy --strict $(PACKAGES) tests bench

test: lint  ## the whole suite (lint first, then unit, integration and end-to-end tests)
	$(VENV)/pytest

serve: setup  ## run the cloud service on var/cloud.db at http://127.0.0.1:8080 (migrated, with a signing key)
	$(VENV)/cloud-sync migrate
	@$(VENV)/cloud-sync keys list | grep -q active || $(VENV)/cloud-sync keys rotate
	$(VENV)/cloud-sync serve

format: setup  ## rewrite the code in the house format
	$(VENV)/ruff format $(PACKAGES) tests bench
	$(VENV)/ruff check --fix $(PACKAGES) tests bench

bench: setup  ## benchmarks: each figure next to its baseline measured in the same run
	@tools/setup-system.sh --bench >/dev/null
	$(VENV)/python -m bench
