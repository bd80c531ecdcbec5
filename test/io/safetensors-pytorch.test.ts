// Interop with PyTorch through test/helpers/torch_safetensors.py, an independent reader
// and writer of the format (torch + numpy, no safetensors package).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import {
  type DType,
  dispose,
  fromBytes,
  memoryStats,
  randn,
  scalar,
  type Tensor,
  tensor,
  zeros,
} from "../../src/tensor/index.js";
import { repoRoot } from "../helpers/paths.js";

const PYTHON = "/usr/bin/python3";
const HELPER = join(repoRoot, "test", "helpers", "torch_safetensors.py");
const startLive = memoryStats().liveTensors;

function torchMissing(): string | false {
  const r = spawnSync(PYTHON, ["-c", "import torch, numpy"], { encoding: "utf8", timeout: 60_000 });
  if (r.error !== undefined) return `${PYTHON} cannot run: ${r.error.message}`;
  if (r.status !== 0) return `${PYTHON} cannot import torch and numpy: ${r.stderr.trim().split("\n").pop() ?? ""}`;
  return false;
}

const skip = torchMissing();
const dir = mkdtempSync(join(tmpdir(), "rmoe-safetensors-torch-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface TorchTensor {
  dtype: string;
  shape: number[];
  sha256: string;
  values: (number | string)[];
}

interface TorchDump {
  metadata: Record<string, string>;
  dataStart?: number;
  tensors: Record<string, TorchTensor>;
}

function runHelper(command: "dump" | "make", path: string): TorchDump {
  const r = spawnSync(PYTHON, [HELPER, command, path], { encoding: "utf8", timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.error, undefined, `running the helper: ${r.error?.message}`);
  assert.equal(r.status, 0, `torch_safetensors.py ${command} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as TorchDump;
}

const FILE_DTYPE: Record<DType, string> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

/** Our values in the helper's encoding: integers as decimal strings, non-finite floats as names. */
function encodedValues(t: Tensor): (number | string)[] {
  const a = t.toTypedArray();
  if (a instanceof BigInt64Array) return Array.from(a, String);
  const values = Array.from(a as ArrayLike<number>);
  if (t.dtype === "bool") return values;
  if (!["float64", "float32", "float16", "bfloat16"].includes(t.dtype)) return values.map(String);
  return values.map((v) =>
    Number.isNaN(v) ? "nan" : v === Number.POSITIVE_INFINITY ? "inf" : v === Number.NEGATIVE_INFINITY ? "-inf" : v,
  );
}

function sha256(t: Tensor): string {
  return createHash("sha256").update(t.toBytes()).digest("hex");
}

function assertSame(name: string, ours: Tensor, theirs: TorchTensor | undefined): void {
  assert.ok(theirs !== undefined, `${name}: missing on the other side`);
  assert.equal(theirs.dtype, FILE_DTYPE[ours.dtype], `${name}: dtype`);
  assert.deepEqual(theirs.shape, ours.shape, `${name}: shape`);
  assert.equal(theirs.sha256, sha256(ours), `${name}: raw bytes`);
  assert.deepEqual(theirs.values, encodedValues(ours), `${name}: values`);
}

describe("safetensors interop with PyTorch", () => {
  it("PyTorch reads what we write, value for value", { skip }, () => {
    const base = randn([4, 6]);
    const ts: Record<string, Tensor> = {
      "layer.0.weight": randn([3, 4]),
      "layer.0.bias": randn([3], { dtype: "float64" }),
      half: tensor(Float32Array.from([0, -0, 1.5, -2.25, 65504, 6e-8, Number.POSITIVE_INFINITY, Number.NaN]), {
        dtype: "float16",
      }),
      brain: fromBytes(new Uint8Array(Uint16Array.from([0x3f80, 0xc049, 0x7f80, 0x0001, 0x8000]).buffer), [5], "bfloat16"),
      big: tensor(BigInt64Array.from([2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n])),
      i32: tensor(Int32Array.from([-(2 ** 31), 5, 2 ** 31 - 1]), { shape: [1, 3] }),
      i16: tensor(Int16Array.from([-32768, 32767])),
      i8: tensor(Int8Array.from([-128, 127])),
      u8: tensor(Uint8Array.from([0, 200, 255])),
      mask: tensor([true, false, true]),
      scalar: scalar(-7.5),
      nothing: zeros([0, 5], { dtype: "int64" }),
      transposed: base.T,
      strided: base.slice(1, 1, 6, 2),
    };
    const path = join(dir, "ours.safetensors");
    saveSafetensors(path, ts, { format: "pt", note: "written by robust-moe ✓" });
    const dump = runHelper("dump", path);
    assert.deepEqual(dump.metadata, { format: "pt", note: "written by robust-moe ✓" });
    assert.equal((dump.dataStart ?? -1) % 8, 0, "data aligned to 8 bytes");
    assert.deepEqual(Object.keys(dump.tensors), Object.keys(ts).sort(), "header in name order");
    for (const [name, t] of Object.entries(ts)) assertSame(name, t, dump.tensors[name]);
    dispose([ts, base]);
  });

  it("we read what PyTorch writes, value for value", { skip }, () => {
    const path = join(dir, "theirs.safetensors");
    const made = runHelper("make", path);
    const { tensors, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, made.metadata);
    assert.deepEqual([...tensors.keys()].sort(), Object.keys(made.tensors).sort());
    assert.deepEqual(
      [...tensors.keys()],
      Object.keys(made.tensors).sort().reverse(),
      "the helper writes data in reverse name order",
    );
    for (const [name, t] of tensors) assertSame(name, t, made.tensors[name]);
    const want = new Set(Object.values(made.tensors).map((t) => t.dtype));
    assert.equal(want.size, 10, "every supported dtype came from PyTorch");
    dispose(tensors);

    // Saving what we loaded gives a file PyTorch reads back to the same values.
    const again = loadSafetensors(path);
    const back = join(dir, "theirs-resaved.safetensors");
    saveSafetensors(back, again.tensors, again.metadata);
    const dump = runHelper("dump", back);
    for (const [name, t] of Object.entries(made.tensors)) assert.deepEqual(dump.tensors[name], t, name);
    dispose(again.tensors);
  });
});

describe("safetensors pytorch memory", () => {
  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startLive);
  });
});
