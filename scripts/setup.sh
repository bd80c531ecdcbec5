#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (as root) or an existing checkout up to date:
# system packages, npm packages, the native addon and the TypeScript build.
# Idempotent: each step is skipped when already done. Non-root users: see README.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: only the report test opens the page in it (driven by playwright-core, no browser download).
# libgloo-dev: the headers c10d's ProcessGroupGloo includes (its code is in libtorch_cpu already).
APT_PACKAGES=(libtorch-dev libgloo-dev libopenblas0-openmp python3-torch python3-numpy g++ make python3 chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "robust-moe setup: missing Debian packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "robust-moe setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Without OpenBLAS Debian's LibTorch links the reference BLAS: matrix products 8x slower.
if ! readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q openblas; then
  echo "robust-moe setup: warning: libblas.so.3 is not OpenBLAS; matrix products will be slow" >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
addon=build/Release/robust_moe.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp scripts/libtorch-config.mjs -newer "$addon" 2>/dev/null)" ]; then
  node scripts/build-native.mjs
fi
npx tsc -p tsconfig.json
