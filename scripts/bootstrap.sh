#!/usr/bin/env bash
# Create .venv and install the project. Idempotent; safe to rerun.
#   scripts/bootstrap.sh        runtime only (embedded default: SQLite + Open-NSFW, no torch)
#   scripts/bootstrap.sh test   + torch (CPU 2.13.0 wheel, installed first), GME deps, test tools
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }

if [ "${1:-}" = "test" ]; then
    # torch before anything that depends on it: `torch==2.13.0` is the CPU wheel on local disk;
    # any other spec would pull a multi-GB CUDA build.
    pip install -q torch==2.13.0
    pip install -q -e '.[test]'
else
    pip install -q -e .
fi
.venv/bin/python -c "import moderation" # fail loudly if the install did not work
