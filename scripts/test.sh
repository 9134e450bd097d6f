#!/usr/bin/env bash
# The PlanOps test command: formatting, lints, every Rust test (unit and
# integration, against one real etcd + kube-apiserver), the Python end-to-end
# tests and the Helm chart checks. Fails fast on the first failing step.
#
#   scripts/test.sh
#
# It installs what the tests need and the machine lacks (see install_missing).
# The first run builds the control-plane binaries from the Go module proxy
# (tens of minutes on 2 cores; cached under ~/.cache/planops-envtest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ntest.sh: FAILED at: %s\n' "$*" >&2; exit 1; }

# What the tests need besides cargo, installed when missing so that this one
# command works on a fresh machine: rustfmt and clippy, the tools the control
# plane's start script uses, a Lua for the Argo CD health check, and the Python
# clients and test runner of tests/python.
install_missing() {
  local component missing=() tool
  if [[ -z "$(command -v cargo)" && -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null || fail "cargo not found (install Rust with rustup)"
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null || fail "cargo $component is missing and rustup is not available"
      rustup component add "$component"
    fi
  done
  declare -A package=([curl]=curl [openssl]=openssl [setsid]=util-linux [flock]=util-linux [lua5.1]=lua5.1)
  for tool in curl openssl setsid flock lua5.1; do
    command -v "$tool" >/dev/null || missing+=("${package[$tool]}")
  done
  if ((${#missing[@]})); then
    command -v apt-get >/dev/null || fail "missing tools: ${missing[*]}"
    step "apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(printf '%s\n' "${missing[@]}" | sort -u)
  fi
  if ! python3 -c 'import pytest, odoorpc, standardwebhooks, yaml' 2>/dev/null; then
    step "pip install -r tests/python/requirements.txt"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check -q \
      -r tests/python/requirements.txt ||
      PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check -q \
        --break-system-packages -r tests/python/requirements.txt ||
      fail "installing the Python test dependencies"
  fi
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    step "cargo install cargo-deny $CARGO_DENY_VERSION"
    cargo install --locked --quiet cargo-deny --version "=$CARGO_DENY_VERSION" ||
      fail "installing cargo-deny"
  fi
}

CARGO_DENY_VERSION=0.20.2

# Licences, duplicate crates, bans and sources from deny.toml. Security
# advisories need the RustSec database from github.com, which some machines
# (this project's CI among them) cannot reach: then the step says so.
dependency_audit() {
  cargo deny --workspace check licenses bans sources || return 1
  if timeout 15 git ls-remote -q https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    cargo deny --workspace check advisories || return 1
  else
    printf 'dependency audit: advisories NOT checked: the RustSec database (github.com) is unreachable from this machine\n'
  fi
}

main() {
  local ran=() bin_dir lua
  install_missing
  step "cargo fmt --all -- --check"
  cargo fmt --all -- --check || fail "formatting (fix with: cargo fmt --all)"
  ran+=(fmt)

  step "cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings || fail "clippy"
  ran+=(clippy)

  step "dependency audit (cargo deny)"
  dependency_audit || fail "dependency audit (deny.toml)"
  ran+=("dependency audit")

  step "envtest binaries (scripts/envtest.sh build)"
  bin_dir=$(scripts/envtest.sh build) || fail "building the envtest binaries"
  export PLANOPS_ENVTEST_BIN="$bin_dir"

  step "starting the control plane"
  envtest_dir=$(mktemp -d "${TMPDIR:-/tmp}/planops-test-XXXXXX")
  cleanup() { scripts/envtest.sh stop "$envtest_dir" || true; }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  # --watch: even if this script is SIGKILLed, the watchdog stops the control plane.
  scripts/envtest.sh start "$envtest_dir" --watch $$ --ephemeral >/dev/null ||
    fail "starting the control plane"
  # shellcheck source=/dev/null
  source "$envtest_dir/env"

  step "cargo test --workspace --all-targets"
  cargo test --workspace --all-targets || fail "cargo test"
  ran+=("cargo test")

  if [[ -d tests/python ]]; then
    step "python3 -m pytest -q tests/python"
    python3 -c 'import pytest' 2>/dev/null ||
      fail "pytest is not installed (pip install -r tests/python/requirements.txt)"
    cargo build --bin planops || fail "building target/debug/planops"
    PLANOPS_BIN="$PWD/target/debug/planops" python3 -m pytest -q tests/python || fail "pytest"
    ran+=(pytest)
  fi

  if [[ -d charts/planops ]]; then
    step "helm chart: lint, render scenarios, docs, Argo CD health check"
    python3 -c 'import yaml' 2>/dev/null || fail "PyYAML is not installed (pip install -r tests/python/requirements.txt)"
    HELM="$bin_dir/helm" python3 charts/planops/ci/render_test.py || fail "chart render tests"
    (cd charts/planops && python3 ci/docs_check.py --check) || fail "chart README out of date (python3 ci/docs_check.py --write)"
    lua=$(command -v lua5.1 || command -v lua5.4 || command -v lua || true)
    [[ -n "$lua" ]] || fail "no Lua interpreter for the Argo CD health check test (apt-get install lua5.1)"
    (cd charts/planops && "$lua" ci/health_test.lua) || fail "Argo CD health check test"
    ran+=(helm)
  fi

  printf '\ntest.sh: all passed (%s)\n' "$(IFS=,; echo "${ran[*]}" | sed 's/,/, /g')"
}

# Parsed whole before it runs, so editing this file mid-run is harmless.
main "$@"; exit
