#!/usr/bin/env bash
# The main job from any state of the machine: setup, then the end-to-end run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js smoke "$@"
