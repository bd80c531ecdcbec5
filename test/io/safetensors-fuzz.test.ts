// Deterministic fuzzing of the safetensors reader: mutations of valid files must either
// load tensors that agree with an independent reading of the file, or be rejected with an
// Error naming the file; never a crash, a hang, a non-Error throw or a leaked tensor.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from "../../src/io/safetensors.js";
import { dispose, fromBytes, memoryStats, randn, scalar, type Tensor, tensor, zeros } from "../../src/tensor/index.js";
import { mulberry32 } from "../helpers/rng.js";

const startLive = memoryStats().liveTensors;
const dir = mkdtempSync(join(tmpdir(), "rmoe-safetensors-fuzz-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const MUTATIONS = 5000;

const rnd = mulberry32(0x5afe7e45);
const int = (n: number): number => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

const ITEM_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const DTYPE_OF: Record<string, string> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

interface Parts {
  header: Record<string, unknown>;
  data: Buffer;
}

function split(file: Buffer): Parts {
  const n = Number(file.readBigUInt64LE(0));
  return { header: JSON.parse(file.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>, data: file.subarray(8 + n) };
}

function assemble(headerText: string, data: Buffer, padding: number, lengthDelta = 0): Buffer {
  const json = Buffer.from(headerText + " ".repeat(padding), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Math.max(0, json.length + lengthDelta)));
  return Buffer.concat([prefix, json, data]);
}

function headerRange(file: Buffer): [number, number] {
  const n = file.length >= 8 ? Number(file.readBigUInt64LE(0)) : 0;
  return [8, Math.min(file.length, 8 + n)];
}

function flipBit(file: Buffer, from: number, to: number): Buffer {
  const out = Buffer.from(file);
  if (to > from) {
    const i = from + int(to - from);
    out[i] = (out[i] as number) ^ (1 << int(8));
  }
  return out;
}

const ODD_NUMBERS: readonly unknown[] = [
  -1,
  0,
  1,
  3,
  4,
  7,
  8,
  0.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 64,
  1e300,
  "4",
  null,
  true,
  [],
  {},
];
const ODD_DTYPES: readonly unknown[] = [
  ...Object.keys(ITEM_SIZE),
  "F8_E4M3",
  "F8_E5M2",
  "U16",
  "U32",
  "U64",
  "C64",
  "f32",
  "",
  3,
  null,
];

/** A random edit of the parsed header; returns the new header text. */
function editJson(parts: Parts): string {
  const header = structuredClone(parts.header);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const name = names.length > 0 ? pick(names) : "x";
  const current = header[name];
  const entry = (current !== null && typeof current === "object" && !Array.isArray(current) ? current : {}) as Record<
    string,
    unknown
  >;
  header[name] = entry;
  const offsets = Array.isArray(entry.data_offsets) ? (entry.data_offsets as unknown[]) : [];
  const shape = Array.isArray(entry.shape) ? (entry.shape as unknown[]) : [];
  switch (int(15)) {
    case 0:
      offsets[int(2)] = Number(offsets[int(2)] ?? 0) + pick([-8, -4, -2, -1, 1, 2, 4, 8]);
      entry.data_offsets = offsets;
      break;
    case 1:
      offsets[int(3)] = pick(ODD_NUMBERS);
      entry.data_offsets = offsets;
      break;
    case 2:
      if (rnd() < 0.5) offsets.pop();
      else offsets.push(int(64));
      entry.data_offsets = offsets;
      break;
    case 3: {
      const other = header[pick(names)] as Record<string, unknown> | undefined;
      if (other !== undefined) [entry.data_offsets, other.data_offsets] = [other.data_offsets, entry.data_offsets];
      break;
    }
    case 4:
      shape[int(shape.length + 1)] = pick([0, 1, 2, 3, 2 ** 20, 2 ** 40, -1, 1.5, "2", null]);
      entry.shape = shape;
      break;
    case 5:
      if (rnd() < 0.5) shape.pop();
      else shape.push(pick([0, 1, 2]));
      entry.shape = shape;
      break;
    case 6:
      entry.dtype = pick(ODD_DTYPES);
      break;
    case 7:
      delete entry[pick(["dtype", "shape", "data_offsets"])];
      break;
    case 8:
      header[name] = pick(ODD_NUMBERS);
      break;
    case 9:
      header.__metadata__ = pick<unknown>([{ k: 1 }, ["a"], "m", null, { k: "v", "": "" }, {}]);
      break;
    case 10: {
      const begin = int(parts.data.length + 2);
      header[`extra${int(3)}`] = { dtype: pick(["U8", "F32", "I64"]), shape: [int(9)], data_offsets: [begin, begin + int(9)] };
      break;
    }
    case 11:
      delete header[name];
      break;
    case 13:
      // Two names over the same bytes: sizes and coverage still add up, only overlap is wrong.
      header[`${name}.alias`] = structuredClone(entry);
      break;
    case 12:
      // Duplicate keys are only expressible in text.
      return JSON.stringify(header).replace(`"${pick(names)}":`, `"${name}":`);
    default:
      entry.extra_field = pick(ODD_NUMBERS);
  }
  return JSON.stringify(header);
}

/** Mutations that keep the file valid: key order, padding, extra fields, data bits. */
function benign(file: Buffer): Buffer {
  const parts = split(file);
  const keys = Object.keys(parts.header);
  const shuffled: Record<string, unknown> = {};
  for (const k of [...keys].sort(() => rnd() - 0.5)) {
    const v = parts.header[k];
    shuffled[k] = k === "__metadata__" || rnd() < 0.5 ? v : { ...(v as object), ignored_by_readers: int(100) };
  }
  const rebuilt = assemble(JSON.stringify(shuffled), parts.data, int(40));
  return rnd() < 0.5 ? flipBit(rebuilt, rebuilt.length - parts.data.length, rebuilt.length) : rebuilt;
}

function mutate(file: Buffer): Buffer {
  const [hBegin, hEnd] = headerRange(file);
  switch (int(9)) {
    case 0:
      return flipBit(file, 0, 8);
    case 1: {
      const out = Buffer.from(file);
      const n = hEnd - 8;
      out.writeBigUInt64LE(BigInt(Math.max(0, pick([0, 1, 2, n - 1, n + 1, n + 8, file.length, 2 ** 32 + n, int(2 ** 31)]))));
      if (rnd() < 0.2) out.writeBigUInt64LE(2n ** 64n - 1n - BigInt(int(1000)));
      return out;
    }
    case 2:
      return flipBit(file, hBegin, hEnd);
    case 3: {
      const out = Buffer.from(file);
      if (hEnd > hBegin)
        out[hBegin + int(hEnd - hBegin)] = rnd() < 0.7 ? pick([...Buffer.from('{}[]",:-.0123456789eE \\')]) : int(256);
      return out;
    }
    case 4:
      return file.subarray(0, int(file.length));
    case 5:
      return Buffer.concat([file, Buffer.from(Array.from({ length: 1 + int(32) }, () => int(256)))]);
    case 6:
      return flipBit(file, hEnd, file.length);
    default: {
      let parts: Parts;
      try {
        parts = split(file);
      } catch {
        // Earlier rounds broke the header beyond JSON edits.
        return flipBit(file, hBegin, hEnd);
      }
      const data =
        rnd() < 0.8
          ? parts.data
          : rnd() < 0.5
            ? parts.data.subarray(0, int(parts.data.length + 1))
            : Buffer.concat([parts.data, Buffer.alloc(int(9))]);
      return assemble(editJson(parts), data, int(16), rnd() < 0.9 ? 0 : pick([-1, 1, -8, 8]));
    }
  }
}

/**
 * The test's own reading of an accepted file, with JSON.parse: every rule of the format
 * must hold, and the loaded tensors must be exactly what the header describes.
 */
function assertConsistent(file: Buffer, tensors: Map<string, Tensor>, metadata: Record<string, string>, label: string): void {
  const n = Number(file.readBigUInt64LE(0));
  assert.ok(n <= 100_000_000 && 8 + n <= file.length, `${label}: accepted a bad header length ${n}`);
  const header = JSON.parse(file.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  assert.ok(header !== null && typeof header === "object" && !Array.isArray(header), `${label}: accepted a non-object header`);
  const { __metadata__: meta, ...entries } = header;
  assert.deepEqual(metadata, meta ?? {}, `${label}: metadata`);
  const names = Object.keys(entries);
  assert.equal(tensors.size, names.length, `${label}: tensor count`);
  const dataLength = file.length - 8 - n;
  const ranges: [number, number][] = [];
  for (const name of names) {
    const info = entries[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const t = tensors.get(name);
    assert.ok(t !== undefined, `${label}: '${name}' in the header but not loaded`);
    assert.equal(t.dtype, DTYPE_OF[info.dtype], `${label}: '${name}' dtype`);
    assert.deepEqual(t.shape, info.shape, `${label}: '${name}' shape`);
    const [begin, end] = info.data_offsets;
    assert.ok(
      Number.isInteger(begin) && Number.isInteger(end) && begin >= 0 && begin <= end && end <= dataLength,
      `${label}: '${name}' offsets`,
    );
    const numel = info.shape.reduce((a, b) => a * b, 1);
    assert.equal(numel * (ITEM_SIZE[info.dtype] as number), end - begin, `${label}: '${name}' byte count`);
    assert.ok(Buffer.from(t.toBytes()).equals(file.subarray(8 + n + begin, 8 + n + end)), `${label}: '${name}' bytes`);
    ranges.push([begin, end]);
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let at = 0;
  for (const [b, e] of ranges) {
    assert.equal(b, at, `${label}: accepted a hole or overlap at ${at}`);
    at = e;
  }
  assert.equal(at, dataLength, `${label}: accepted uncovered trailing bytes`);
}

type Outcome = "loaded" | "rejected";

function tryLoad(path: string, file: Buffer, label: string): Outcome {
  writeFileSync(path, file);
  const live = memoryStats().liveTensors;
  let headerOk: boolean;
  try {
    readSafetensorsHeader(path);
    headerOk = true;
  } catch (e) {
    assert.ok(e instanceof Error, `${label}: readSafetensorsHeader threw a non-Error: ${String(e)}`);
    headerOk = false;
  }
  let outcome: Outcome;
  try {
    const { tensors, metadata } = loadSafetensors(path);
    try {
      assertConsistent(file, tensors, metadata, label);
    } finally {
      dispose(tensors);
    }
    outcome = "loaded";
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(e instanceof Error, `${label}: loadSafetensors threw a non-Error: ${String(e)}`);
    assert.ok(e.message.startsWith(`${path}: `), `${label}: the message does not name the file: ${e.message}`);
    outcome = "rejected";
  }
  assert.equal(headerOk, outcome === "loaded", `${label}: readSafetensorsHeader and loadSafetensors disagree`);
  assert.equal(memoryStats().liveTensors, live, `${label}: tensors leaked`);
  return outcome;
}

function seedFiles(): Buffer[] {
  const sets: [Record<string, Tensor>, Record<string, string> | undefined][] = [
    [
      {
        a: randn([2, 3]),
        b: tensor(BigInt64Array.from([2n ** 60n, -3n])),
        c: randn([3], { dtype: "bfloat16" }),
        d: tensor([
          [true, false],
          [false, true],
        ]),
        e: tensor(Uint8Array.from([1, 2, 3, 4, 5])),
      },
      { format: "pt", step: "12" },
    ],
    [
      {
        empty: zeros([0, 4]),
        s: scalar(1.25, { dtype: "float64" }),
        z: tensor(Int8Array.from([-5])),
        none: zeros([0], { dtype: "int16" }),
      },
      undefined,
    ],
    [
      {
        w: fromBytes(
          new Uint8Array(32).map((_, i) => i * 7),
          [4, 4],
          "float16",
        ),
      },
      { only: "one" },
    ],
  ];
  return sets.map(([ts, meta], i) => {
    const path = join(dir, `seed-${i}.safetensors`);
    saveSafetensors(path, ts, meta);
    dispose(ts);
    return readFileSync(path);
  });
}

describe("safetensors reader fuzzing", () => {
  it(`survives ${MUTATIONS} mutations of valid files`, { timeout: 120_000 }, (t) => {
    const seeds = seedFiles();
    const path = join(dir, "fuzz.safetensors");
    const counts = { loaded: 0, rejected: 0, benign: 0 };
    const started = Date.now();
    for (const [i, seed] of seeds.entries()) assert.equal(tryLoad(path, seed, `seed ${i}`), "loaded");
    for (let i = 0; i < MUTATIONS; i++) {
      const seed = pick(seeds);
      if (i % 10 === 0) {
        assert.equal(tryLoad(path, benign(seed), `benign mutation ${i}`), "loaded", `benign mutation ${i} must still load`);
        counts.benign++;
        continue;
      }
      let file = mutate(seed);
      const rounds = int(3);
      for (let r = 0; r < rounds && file.length >= 8; r++) file = mutate(file);
      counts[tryLoad(path, file, `mutation ${i}`)]++;
    }
    const seconds = (Date.now() - started) / 1000;
    t.diagnostic(`loaded ${counts.loaded}, rejected ${counts.rejected}, benign ${counts.benign}, ${seconds.toFixed(1)} s`);
    // A fuzzer that only ever hits one outcome is not exploring anything.
    assert.ok(counts.loaded > MUTATIONS * 0.05, `only ${counts.loaded} mutated files loaded`);
    assert.ok(counts.rejected > MUTATIONS * 0.3, `only ${counts.rejected} mutated files were rejected`);
  });
});

describe("safetensors fuzz memory", () => {
  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startLive);
  });
});
