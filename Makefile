# Ward: `make demo` shows the sandbox, `make test` is what CI runs, `make bench` compares.
SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
DEBUG_BIN := $(TARGET_DIR)/debug
RELEASE_BIN := $(TARGET_DIR)/release
PREFIX ?= /usr/local
DEBIAN_PACKAGES := containerd runc crun busybox-static nginx-light containernetworking-plugins podman \
	hyperfine jq iproute2 util-linux protobuf-compiler pkg-config python3 patchelf \
	debootstrap debian-archive-keyring postgresql-client
# containerd 2 (Debian sid's static binaries, with sid's runc and crun), unpacked here by
# integration/current-peers.sh: nothing installed system-wide; re-runs reuse it.
PEERS_DIR := $(TARGET_DIR)/peers
# The real-application matrix's Debian rootfs (integration/apps/build-images.sh), cached by a
# hash of that script; WARD_APPS_SKIP=1 skips the matrix (SKIP printed).
APPS_DIR := $(TARGET_DIR)/apps

.PHONY: all build release deps peers demo test test-unit test-cli test-integration escape \
	escape-ci apps bench lint fuzz install uninstall clean

all: build

deps:
	@if ! command -v containerd >/dev/null || ! command -v busybox >/dev/null || ! command -v protoc >/dev/null \
		|| ! command -v debootstrap >/dev/null || ! command -v psql >/dev/null; then \
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
	# a missing shim or containerd 2 is a failure, not a skip. This includes the
	# real-application matrix (tests/apps.rs; `make apps` runs it alone).
	WARD_E2E_REQUIRE_WARD=1 WARD_BIN=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		WARD_CONTAINERD2_DIR=$(PEERS_DIR) WARD_APPS_DIR=$(APPS_DIR) \
		$(CARGO) test -p ward-integration -- --test-threads=1

# The real-application matrix alone: Debian's nginx, redis, postgresql and python3 (one
# debootstrap rootfs, built once into $(APPS_DIR)) under the ward CLI, the shim on containerd
# 2 and 1.6, and runc; prints the table and writes $(TARGET_DIR)/apps-matrix.md.
apps: build peers
	WARD_E2E_REQUIRE_WARD=1 WARD_BIN=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		WARD_CONTAINERD2_DIR=$(PEERS_DIR) WARD_APPS_DIR=$(APPS_DIR) \
		$(CARGO) test -p ward-integration --test apps -- --nocapture

# Every technique of integration/escape against Ward (each enforcing built-in profile, through
# the CLI and through containerd 2 with the shim; the shim again under Debian's containerd 1.6
# with the default profile), runc, crun and the unconfined host column;
# writes integration/escape/RESULTS.md (ESCAPE_ARGS="--chaos 30" adds chaos, "--exec" writes
# RESULTS-exec.md). `escape-ci`: the Ward columns only, plus a short chaos
# pass (ESCAPE_CI_CHAOS seconds per profile, default 15). Both also run the rows of Ward's own
# machinery (host-user attacker, planted symlinks, config.json attacks, parallel creates,
# charging; a few seconds), not with --exec.
ESCAPE_ARGS ?=
escape: peers
	CARGO_TARGET_DIR=$(TARGET_DIR) WARD=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		WARD_CONTAINERD2_DIR=$(PEERS_DIR) bash integration/escape/run.sh $(ESCAPE_ARGS)

escape-ci: peers
	CARGO_TARGET_DIR=$(TARGET_DIR) WARD=$(DEBUG_BIN)/ward WARD_SHIM_DIR=$(DEBUG_BIN) \
		WARD_CONTAINERD2_DIR=$(PEERS_DIR) bash integration/escape/run.sh --ci

# Fuzzing: the cargo-fuzz targets in fuzz/ (profile, oci_seccomp, harden) for FUZZ_SECS
# seconds each where a nightly toolchain with cargo-fuzz is installed; otherwise the stable
# fallback, which says so: the same harnesses (ward_profiles::fuzz_harness,
# ward_runtime::fuzz_harness) driven by a fixed-seed generator, release build, FUZZ_SECS
# seconds each. `make test` runs that fallback for 3 s per target (the `fuzz_*` unit tests).
# A failure prints the seed that replays it: WARD_FUZZ_SEED=<s> WARD_FUZZ_ITERS=1.
FUZZ_SECS ?= 60
FUZZ_TARGETS := profile oci_seccomp harden
fuzz:
	@if $(CARGO) +nightly fuzz --version >/dev/null 2>&1; then \
		echo "make fuzz: cargo-fuzz on nightly, $(FUZZ_SECS)s per target ($(FUZZ_TARGETS))"; \
		for t in $(FUZZ_TARGETS); do \
			(cd fuzz && $(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECS)) || exit 1; \
		done; \
	else \
		echo "make fuzz: 'cargo +nightly fuzz' is not available here (needs: rustup toolchain install nightly; cargo install cargo-fuzz)"; \
		echo "make fuzz: running the STABLE FALLBACK instead: the same harnesses from a fixed-seed generator, $(FUZZ_SECS)s per target"; \
		WARD_FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --release -p ward-profiles -p ward-runtime --lib \
			fuzz_harness::tests::fuzz_ -- --nocapture --test-threads=1; \
	fi

# ward-bench: the shim against containerd-shim-runc-v2 on containerd 2 (make peers: its shim
# with runc 1.3, and with Debian's runc 1.1) and on Debian's containerd 1.6.
bench: release peers
	@echo "## ward CLI vs runc vs crun: create+start+wait+delete of /bin/true (make bench)"
	@bash integration/bench/cli.sh
	@WARD_CONTAINERD2_DIR=$(PEERS_DIR) $(CARGO) run --release -q -p ward-integration --bin ward-bench
	@$(CARGO) run --release -q -p ward-integration --bin profile-bench

install: release
	PREFIX=$(PREFIX) bash deploy/install.sh

uninstall:
	PREFIX=$(PREFIX) bash deploy/uninstall.sh

clean:
	$(CARGO) clean
