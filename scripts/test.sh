#!/usr/bin/env bash
# The whole test suite from any state of the machine: setup, lint, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx biome check .
bash scripts/prepare-data.sh
node scripts/run-tests.mjs "$@"
