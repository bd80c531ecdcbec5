#!/usr/bin/env node
// Tells binding.gyp where LibTorch is and how to compile against it.
// Order: $LIBTORCH (an official LibTorch zip layout, or a Python torch install's
// torch/ folder: both have include/ and lib/), then Debian's libtorch-dev.
// c10d (native/dist.cc): ProcessGroupGloo's header includes gloo's, which Debian ships apart
// (libgloo-dev; the symbols are in libtorch_cpu either way); NCCL needs a CUDA LibTorch and
// nccl.h. Each backend is compiled in only when its headers are there (RMOE_WITH_GLOO,
// RMOE_WITH_NCCL); the addon reports what it has (dist.features()).
// Usage: node scripts/libtorch-config.mjs include|ldflags|libs|abi|defines|describe
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

function fail(msg) {
  process.stderr.write(`robust-moe: ${msg}\n`);
  process.exit(1);
}

function locate() {
  const root = process.env.LIBTORCH;
  if (root) {
    const api = join(root, "include", "torch", "csrc", "api", "include");
    if (!existsSync(api)) {
      fail(`LIBTORCH=${root} does not look like LibTorch: ${api} is missing`);
    }
    const libdir = join(root, "lib");
    const c10 = readdirSync(libdir).find((f) => /^libc10\.so/.test(f));
    if (!c10) fail(`LIBTORCH=${root}: no libc10.so in ${libdir}`);
    return { kind: "LIBTORCH", includes: [join(root, "include"), api], libdir, c10: join(libdir, c10) };
  }
  const api = "/usr/include/torch/csrc/api/include";
  if (!existsSync(api)) {
    fail(
      "LibTorch not found. Install Debian's: apt-get install -y --no-install-recommends libtorch-dev libopenblas0-openmp, " +
        "or point LIBTORCH at a LibTorch directory (with include/ and lib/).",
    );
  }
  const libdir = "/usr/lib/x86_64-linux-gnu";
  return { kind: "debian", includes: ["/usr/include", api], libdir, c10: join(libdir, "libc10.so") };
}

// The C++11 std::string ABI must match LibTorch's or linking fails (pytorch.org once
// shipped pre-cxx11 builds). A cxx11 build exports symbols mentioning std::__cxx11.
function detectAbi(c10) {
  try {
    const syms = execFileSync("nm", ["-D", "--defined-only", c10], { maxBuffer: 256 * 1024 * 1024 }).toString();
    return syms.includes("__cxx11") ? 1 : 0;
  } catch {
    return 1;
  }
}

// The first directory holding gloo/algorithm.h: $GLOO_INCLUDE_DIR, LibTorch's include/, /usr/include.
function glooInclude(lt) {
  const dirs = [process.env.GLOO_INCLUDE_DIR, ...lt.includes, "/usr/include"].filter((d) => d !== undefined && d !== "");
  return dirs.find((d) => existsSync(join(d, "gloo", "algorithm.h"))) ?? null;
}

// nccl.h: $NCCL_INCLUDE_DIR, LibTorch's include/, CUDA's, the system's, or a pip wheel's
// nvidia/nccl next to a site-packages torch.
function ncclInclude(lt) {
  const root = process.env.LIBTORCH;
  const dirs = [
    process.env.NCCL_INCLUDE_DIR,
    ...lt.includes,
    root === undefined ? undefined : join(root, "..", "nvidia", "nccl", "include"),
    process.env.CUDA_HOME === undefined ? undefined : join(process.env.CUDA_HOME, "include"),
    "/usr/local/cuda/include",
    "/usr/include",
  ].filter((d) => d !== undefined && d !== "");
  return dirs.find((d) => existsSync(join(d, "nccl.h"))) ?? null;
}

const lt = locate();
const hasCuda = existsSync(join(lt.libdir, "libtorch_cuda.so"));
const gloo = glooInclude(lt);
const nccl = hasCuda ? ncclInclude(lt) : null;
switch (process.argv[2]) {
  case "include": {
    const dirs = [...lt.includes];
    for (const d of [gloo, nccl]) if (d !== null && !dirs.includes(d)) dirs.push(d);
    process.stdout.write(dirs.join(" "));
    break;
  }
  case "defines": {
    const defs = [];
    if (gloo !== null) defs.push("USE_C10D_GLOO", "RMOE_WITH_GLOO");
    if (nccl !== null) defs.push("USE_C10D_NCCL", "RMOE_WITH_NCCL");
    process.stdout.write(defs.join(" "));
    break;
  }
  case "ldflags": {
    const flags = [`-L${lt.libdir}`];
    if (lt.kind === "LIBTORCH") flags.push(`-Wl,-rpath,${lt.libdir}`);
    // libtorch_cuda only registers its kernels from static initialisers: keep it linked.
    process.stdout.write(flags.join(" "));
    break;
  }
  case "libs": {
    // Libraries go after the objects (gyp's "libraries"), or --as-needed drops them.
    // libtorch_cuda only registers its kernels from static initialisers: keep it linked.
    const libs = hasCuda ? ["-Wl,--no-as-needed", "-ltorch_cuda", "-Wl,--as-needed"] : [];
    libs.push("-ltorch", "-ltorch_cpu", "-lc10");
    process.stdout.write(libs.join(" "));
    break;
  }
  case "abi":
    process.stdout.write(String(detectAbi(lt.c10)));
    break;
  case "describe":
    process.stdout.write(`${JSON.stringify({ ...lt, cuda: hasCuda, abi: detectAbi(lt.c10), gloo, nccl })}\n`);
    break;
  default:
    fail("usage: libtorch-config.mjs include|ldflags|libs|abi|defines|describe");
}
