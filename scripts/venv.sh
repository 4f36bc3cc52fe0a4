#!/usr/bin/env bash
# Makes (or reuses) .venv with the pinned `pulumi` wheel (its generated gRPC stubs are the
# independent protocol client), grpcio and pytest. Prints the venv's python path.
set -euo pipefail
cd "$(dirname "$0")/.."
PULUMI_VERSION="$(cat codegen/PULUMI_VERSION)"
VENV=".venv"
have="$("$VENV/bin/python" -c 'import importlib.metadata as m, grpc, pytest; print(m.version("pulumi"))' 2>/dev/null || true)"
if [ "$have" != "$PULUMI_VERSION" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q "pulumi==$PULUMI_VERSION" pytest grpcio >&2
fi
echo "$(pwd)/$VENV/bin/python"
