#!/usr/bin/env bash
# The whole test suite on a fresh machine: install into .venv (idempotent), lint, test.
# The k8s tests build their control plane on first use (tools/k8s/build.sh, 7-11 min, cached).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest --durations=15 "$@"
