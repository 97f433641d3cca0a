#!/usr/bin/env bash
# Install ParetoMerge with its development extras into ./.venv.
# torch==2.13.0 goes first: on these machines it is the CPU build on disk, and any other
# torch spec would pull gigabytes of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev,eval]'
