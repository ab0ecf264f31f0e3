# railbot — `make setup` prepares a fresh Debian/Ubuntu machine; `make test` runs everything CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PACKAGES := models robot_agent cloud_sync hardware firmware_bridge

VENV := .venv/bin

.PHONY: help setup test lint format bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

setup:  ## install system packages when missing, the locked environment, and the example robot's key
	@uv=$$(tools/setup-system.sh) && "$$uv" sync --locked --quiet
	@[ -e var/robot.key ] || $(VENV)/robot-agent --config robot.toml keys init >/dev/null

lint: setup  ## ruff, ruff format --check and mypy --strict over every package, the tests and the benchmarks
	$(VENV)/ruff check $(PACKAGES) tests bench
	$(VENV)/ruff format --check $(PACKAGES) tests bench
	$(VENV)/mypy --strict $(PACKAGES) tests bench

test: lint  ## the whole suite (lint first, then unit, integration and end-to-end tests)
	$(VENV)/pytest

format: setup  ## rewrite the code in the house format
	$(VENV)/ruff format $(PACKAGES) tests bench
	$(VENV)/ruff check --fix $(PACKAGES) tests bench

bench: setup  ## benchmarks: each figure next to its baseline measured in the same run
	$(VENV)/python -m bench
