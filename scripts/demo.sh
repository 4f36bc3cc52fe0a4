#!/usr/bin/env bash
# The main job on a fresh machine: start a local dockerd and registry (unless DOCKER_HOST
# and DBK_REGISTRY* are already given), build the provider, then build and push
# examples/app through it the way the Pulumi engine would (preview, up, no-op up, edits,
# update), streaming the build log, and verify the pushed image in the registry.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DBK_REGISTRY:-}" ]; then
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
fi
PYTHON="$(bash scripts/venv.sh)"
cargo build --bins
PROVIDER_BIN="$(pwd)/target/debug/pulumi-resource-docker-buildkit" "$PYTHON" scripts/demo.py
