# The two commands a newcomer needs: `make demo` (see it work) and `make test` (prove it).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CONFIG ?= config/local.toml
VENV := .venv
# Pinned: ministack moves fast, and cargo-lambda only pins zig >=0.10. cbor2: ministack answers
# CloudWatch's rpcv2Cbor protocol (the SDK's) only with it; without, in JSON the SDK cannot read.
PIP_PINS := ministack==1.5.33 cargo-lambda==1.9.2 ziglang==0.17.1 duckdb==2.0.1 cbor2==6.3.0
DEPLOYER := cargo run -q -p deployer --
export XDG_CACHE_HOME := $(CURDIR)/.cache

.PHONY: help setup arm64-runner emulator emulator-stop build build-local up plan down smoke demo test lint unit e2e bench clean

help:
	@echo "make demo   - set up, start the local emulator, build, deploy and smoke-test the pipeline"
	@echo "make test   - format, lint, unit tests, then the end-to-end run on a fresh emulator"
	@echo "make setup | emulator | emulator-stop | build | up | plan | down | smoke | bench   (CONFIG=$(CONFIG))"

## Tools: a project-local venv with the pinned emulator and cross-compiler, and the arm64 target.
setup: $(VENV)/.pins
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

$(VENV)/.pins: Makefile
	@test -x $(VENV)/bin/pip || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PIP_PINS) \
	  || { echo "setup: pip install failed (a download can arrive damaged: pip checks each wheel's hash); retrying once" >&2; \
	       $(VENV)/bin/pip install --quiet --disable-pip-version-check --no-cache-dir $(PIP_PINS); }
	@echo "$(PIP_PINS)" > $@

## The arm64 artifact runs on this x86_64 machine under qemu-user (Debian's qemu-user-static and
## libc6-arm64-cross); `make test` runs it on the emulator. SKIP_ARM64=1 skips both.
arm64-runner:
	@if [ -n "$(SKIP_ARM64)" ]; then \
	  echo "arm64 run skipped (SKIP_ARM64 is set)"; \
	elif command -v qemu-aarch64-static >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then \
	  true; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing qemu-user-static and libc6-arm64-cross (to run the arm64 artifact)"; \
	  apt-get install -y -q qemu-user-static libc6-arm64-cross >/dev/null \
	    || { apt-get update -q >/dev/null && apt-get install -y -q qemu-user-static libc6-arm64-cross >/dev/null; }; \
	else \
	  echo "make: the arm64 run needs qemu-user-static and libc6-arm64-cross (apt-get as root); install them, or set SKIP_ARM64=1" >&2; \
	  exit 1; \
	fi

emulator: setup
	@scripts/emulator.sh start

emulator-stop:
	@scripts/emulator.sh stop

## Both artifacts: arm64 (what AWS runs) and x86_64 (what ministack runs: the host's binary).
build: setup
	scripts/build-lambda.sh arm64 x86_64

build-local: setup
	scripts/build-lambda.sh x86_64

up plan smoke:
	$(DEPLOYER) --config $(CONFIG) $@

down:
	$(DEPLOYER) --config $(CONFIG) down $(if $(PURGE),--purge,)

demo: setup emulator build-local
	$(DEPLOYER) --config $(CONFIG) up
	$(DEPLOYER) --config $(CONFIG) smoke --keep
	@echo
	@echo "The pipeline runs on the local emulator (http://127.0.0.1:4566). Try it:"
	@echo "  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
	@echo "  cargo run -q -p deployer -- check data/users.csv            # the same rules, locally"
	@echo "  curl -s 'http://127.0.0.1:4566/csv-ingest-local-refined?list-type=2' | tr '<' '\n' | grep '^Key>'"
	@echo "  curl -s 'http://127.0.0.1:4566/csv-ingest-local-refined/<key from the list>'"
	@echo "  cargo run -q -p deployer -- query --counts                  # rows per partition, through Athena"
	@echo "  cargo run -q -p deployer -- status                          # what is deployed; logs --since 10m"
	@echo "  make plan     # no changes;   make down PURGE=1   # tear down;   make emulator-stop"

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace

## Everything, from a fresh clone: tools, lint, tests, both artifacts, then end to end.
test: setup lint unit arm64-runner
	scripts/build-lambda.sh x86_64 arm64
	SKIP_ARM64=$(SKIP_ARM64) scripts/e2e.sh

e2e: setup
	scripts/e2e.sh

bench: setup
	scripts/bench.sh

clean: emulator-stop
	rm -rf target/lambda-arm64 target/lambda-x86_64 .run out
