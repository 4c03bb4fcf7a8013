# Ward: `make demo` shows the sandbox, `make test` is what CI runs, `make bench` compares.
SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
DEBUG_BIN := $(TARGET_DIR)/debug
RELEASE_BIN := $(TARGET_DIR)/release
PREFIX ?= /usr/local
DEBIAN_PACKAGES := containerd runc crun busybox-static nginx-light containernetworking-plugins podman \
	hyperfine jq iproute2 util-linux protobuf-compiler pkg-config python3 patchelf
# containerd 2 (Debian sid's static binaries, with sid's runc and crun), unpacked here by
# integration/current-peers.sh: nothing installed system-wide; re-runs reuse it.
PEERS_DIR := $(TARGET_DIR)/peers

.PHONY: all build release deps peers demo test test-unit test-cli test-integration escape \
	escape-ci bench lint install uninstall clean

all: build

deps:
	@if ! command -v containerd >/dev/null || ! command -v busybox >/dev/null || ! command -v protoc >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEBIAN_PACKAGES); fi

build:
	$(CARGO) build --workspace --bins

# WARD_E2E_SKIP_CONTAINERD2=1 skips the download (the tests then print SKIP for containerd 2).
peers:
	@if [ "$${WARD_E2E_SKIP_CONTAINERD2:-}" != 1 ]; then bash integration/current-peers.sh $(PEERS_DIR); fi

release:
	$(CARGO) build --release -p ward-runtime -p ward-shim

# Build, make a busybox bundle, run one container under the default sandbox and print what it
# sees of itself.
demo: deps release
	@bash integration/bench/demo.sh $(RELEASE_BIN)/ward

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit tests of every crate, then real containers (root): the ward CLI, containerd + CRI with
# the shim, and the escape-attempt suite against Ward (fails on any escape or leak).
test: build test-unit test-cli test-integration escape-ci

test-unit:
	$(CARGO) test --workspace --lib --bins

test-cli:
	WARD_BIN=$(DEBUG_BIN)/ward $(CARGO) test -p ward-tests -- --test-threads=2

test-integration: peers
	# Every ctr and CRI case runs on ward too, against containerd 2 and then Debian 12's 1.6;
	# a missing shim or containerd 2 is a failure, not a skip.
	WARD_E2E_REQUIRE_WARD=1 WARD_BIN=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		WARD_CONTAINERD2_DIR=$(PEERS_DIR) $(CARGO) test -p ward-integration -- --test-threads=1

# Every technique of integration/escape against Ward (each enforcing built-in profile, through
# the CLI and through containerd with the shim), runc, crun and the unconfined host column;
# writes integration/escape/RESULTS.md (ESCAPE_ARGS="--chaos 30" adds chaos, "--exec" writes
# RESULTS-exec.md). `escape-ci`: the Ward columns only, plus a short chaos
# pass (ESCAPE_CI_CHAOS seconds per profile, default 15). Both also run the rows of Ward's own
# machinery (host-user attacker, planted symlinks, config.json attacks, parallel creates,
# charging; a few seconds), not with --exec.
ESCAPE_ARGS ?=
escape:
	CARGO_TARGET_DIR=$(TARGET_DIR) WARD=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		bash integration/escape/run.sh $(ESCAPE_ARGS)

escape-ci:
	CARGO_TARGET_DIR=$(TARGET_DIR) WARD=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		bash integration/escape/run.sh --ci

bench: release
	@echo "## ward CLI vs runc vs crun: create+start+wait+delete of /bin/true (make bench)"
	@bash integration/bench/cli.sh
	@$(CARGO) run --release -q -p ward-integration --bin ward-bench
	@$(CARGO) run --release -q -p ward-integration --bin profile-bench

install: release
	PREFIX=$(PREFIX) bash deploy/install.sh

uninstall:
	PREFIX=$(PREFIX) bash deploy/uninstall.sh

clean:
	$(CARGO) clean
