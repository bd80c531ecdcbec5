#!/usr/bin/env bash
# The main job from any state of the machine: setup, then `rmoe demo` (train, attack, certify,
# sweep alpha and report on real CIFAR-10; docs/DEMO.md). Extra arguments go to rmoe demo
# (e.g. --quick, --out DIR). Run it again to resume: finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js demo "$@"
