#!/usr/bin/env bash
# Runs the checks of users-service: unit, integration and end-to-end tests, and the linters.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/test.sh [SUITE...]

Suites (default: unit integration):
  unit          unit tests next to the code (cargo test --lib --bins)
  integration   tests/integration (cargo test --test integration)
  e2e           tests/e2e: builds and starts the binary (cargo test --test e2e)
  lint          cargo fmt --check and cargo clippy --all-targets -- -D warnings
  all           lint, unit, integration and e2e

Options:
  -h, --help    show this help
USAGE
}

run() {
  echo "+ $*" >&2
  "$@"
}

suites=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    unit | integration | e2e | lint) suites+=("$1"); shift ;;
    all) suites+=(lint unit integration e2e); shift ;;
    *) echo "test.sh: unknown suite: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ "${suites[*]-}" == "" ]]; then
  suites=(unit integration)
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

for suite in "${suites[@]}"; do
  case "${suite}" in
    unit) run cargo test --lib --bins ;;
    integration) run cargo test --test integration ;;
    e2e) run cargo test --test e2e ;;
    lint)
      run cargo fmt --check
      run cargo clippy --all-targets -- -D warnings
      ;;
    *) usage >&2; exit 2 ;;
  esac
done
