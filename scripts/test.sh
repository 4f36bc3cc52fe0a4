#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs and starts the services the
# tests need (a private dockerd and a registry, see scripts/services.sh), checks
# formatting and lints, checks that generated files are current, then runs the Rust
# tests (unit, engine harness, real Docker + registry), the Python wire tests
# against Pulumi's own gRPC stubs, and the SDK tests (scripts/test-sdk.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh up
# shellcheck disable=SC1090
source "$(bash scripts/services.sh env)"

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

echo "== python venv with Pulumi's stubs"
PYTHON="$(bash scripts/venv.sh)"

echo "== generated files are current"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" codegen/extract_fds.py "$tmp/pulumirpc.fds.bin" 2>/dev/null
cmp "$tmp/pulumirpc.fds.bin" codegen/pulumirpc.fds.bin \
  || { echo "codegen/pulumirpc.fds.bin differs from the pinned pulumi wheel's descriptors"; exit 1; }
cargo run -q -p codegen -- all
git diff --exit-code -- src/generated schema sdk \
  || { echo "generated files are stale: commit the output of 'cargo run -p codegen -- all'"; exit 1; }

echo "== rust tests"
cargo build --bins
cargo test --workspace

echo "== wire compatibility with Pulumi's Python stubs"
PROVIDER_BIN="$(pwd)/target/debug/pulumi-resource-docker-buildkit" "$PYTHON" -m pytest -q tests/python

echo "== SDKs: installable, and right under Pulumi's mock runtimes"
bash scripts/test-sdk.sh
