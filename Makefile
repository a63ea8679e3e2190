# pricewire — build, lint and test. `make help` lists the targets.
#
# Tools come from the project itself: `make tools` creates .venv/ with cargo-lambda and
# moto (the AWS emulator) from PyPI; Terraform must be on PATH (1.11+: the token uses a write-only argument).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export MOTO_SERVER := $(VENV)/bin/moto_server
export CHECKPOINT_DISABLE := 1

CARGO_LAMBDA_VERSION := 1.9.2
MOTO_VERSION         := 5.2.1
FUNCTIONS            := collector consumer alerter
ZIPS                 := $(foreach f,$(FUNCTIONS),target/lambda/$(f)/bootstrap.zip)
# Where Terraform and tests read the zips from; override to use prebuilt ones.
LAMBDA_ZIP_DIR       ?= $(CURDIR)/target/lambda
RUST_SOURCES         := $(shell find functions -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

.PHONY: help tools lint fmt unit build cli e2e demo tf-check tf-apply-moto test clean

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

lint: ## clippy (warnings are errors), rustfmt and terraform fmt checks
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all --check
	terraform fmt -check -recursive terraform

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

tf-apply-moto: tools build ## apply terraform/ to a throwaway moto server
	LAMBDA_ZIP_DIR=$(LAMBDA_ZIP_DIR) bash infra/scripts/tf-moto.sh

cli: ## the operator CLI, target/debug/pricewire
	cargo build -p pricewire --bin pricewire

e2e: tools build ## the local twin end to end (short run, no faults), exact outcomes asserted
	# --workspace keeps the feature set of `make unit`, so nothing is rebuilt.
	cargo test --workspace --test twin_e2e -- --ignored --nocapture

demo: tools build cli ## the local twin: moto + upstream simulator + terraform apply + release binaries
	target/debug/pricewire demo --check $(DEMO_ARGS)

test: lint unit e2e tf-apply-moto ## everything CI runs: lint, tests, release build, twin e2e, terraform apply on moto
	@echo "make test: all checks passed"

clean: ## remove build output and scratch state (keeps .venv)
	cargo clean
	rm -rf .work
