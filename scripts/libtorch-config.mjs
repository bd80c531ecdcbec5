#!/usr/bin/env node
// Tells binding.gyp where LibTorch is and how to compile against it.
// Order: $LIBTORCH (an official LibTorch zip layout, or a Python torch install's
// torch/ folder: both have include/ and lib/), then Debian's libtorch-dev.
// Usage: node scripts/libtorch-config.mjs include|ldflags|libs|abi|describe
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

const lt = locate();
const hasCuda = existsSync(join(lt.libdir, "libtorch_cuda.so"));
switch (process.argv[2]) {
  case "include":
    process.stdout.write(lt.includes.join(" "));
    break;
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
    process.stdout.write(`${JSON.stringify({ ...lt, cuda: hasCuda, abi: detectAbi(lt.c10) })}\n`);
    break;
  default:
    fail("usage: libtorch-config.mjs include|ldflags|libs|abi|describe");
}
