import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadSafetensors, readSafetensorsHeader, SafetensorsError, saveSafetensors } from "../../src/io/safetensors.js";
import {
  cuda,
  dispose,
  fromBytes,
  memoryStats,
  randn,
  scalar,
  scope,
  type Tensor,
  tensor,
  zeros,
} from "../../src/tensor/index.js";

const startLive = memoryStats().liveTensors;
const dir = mkdtempSync(join(tmpdir(), "rmoe-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function freshPath(name = "model"): string {
  return join(dir, `${name}-${fileCounter++}.safetensors`);
}

function bytesOf(t: Tensor): Buffer {
  return Buffer.from(t.toBytes());
}

function u16(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values).buffer);
}

/** The test's own reading of the format, independent of the library's parser. */
function rawLayout(path: string): { file: Buffer; headerText: string; header: Record<string, unknown>; dataStart: number } {
  const file = readFileSync(path);
  const n = Number(file.readBigUInt64LE(0));
  const headerText = file.subarray(8, 8 + n).toString("utf8");
  return { file, headerText, header: JSON.parse(headerText) as Record<string, unknown>, dataStart: 8 + n };
}

function tempLeftovers(): string[] {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(d, e.name)) : e.name.includes(".tmp-") ? [e.name] : [],
    );
  return walk(dir);
}

describe("safetensors round trip", () => {
  it("keeps every supported dtype bit for bit, including special values, 0-d, empty and non-contiguous tensors", () => {
    const before = memoryStats().liveTensors;
    const nanPayload = new Uint8Array(Uint32Array.from([0x7fc00001, 0xffffffff, 0x00000001]).buffer);
    const originals = new Map<string, Tensor>([
      [
        "f32",
        tensor(Float32Array.from([0, -0, 1.5, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 3.4e38, 1e-45])),
      ],
      ["f32_nan_payloads", fromBytes(nanPayload, [3], "float32")],
      ["f64", tensor(Float64Array.from([Math.PI, -0, Number.MAX_VALUE, Number.MIN_VALUE, Number.NaN]), { shape: [5, 1] })],
      // Raw bit patterns: signed zero, one, ±inf, a NaN with payload, smallest subnormal, largest finite.
      ["f16", fromBytes(u16([0x0000, 0x8000, 0x3c00, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x7bff]), [2, 4], "float16")],
      ["bf16", fromBytes(u16([0x0000, 0x8000, 0x3f80, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x7f7f, 0x4049]), [9], "bfloat16")],
      ["i64", tensor(BigInt64Array.from([2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 0n, -1n]))],
      ["i32", tensor(Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 7]), { shape: [2, 2] })],
      ["i16", tensor(Int16Array.from([-32768, 32767, -1]))],
      ["i8", tensor(Int8Array.from([-128, 127, 0, -1]))],
      ["u8", tensor(Uint8Array.from([0, 255, 128, 1]))],
      [
        "bool",
        tensor([
          [true, false],
          [false, true],
        ]),
      ],
      ["scalar_f64", scalar(2.5, { dtype: "float64" })],
      ["scalar_i64", fromBytes(new Uint8Array(BigInt64Array.from([-(2n ** 60n) - 3n]).buffer), [], "int64")],
      ["empty_f32", zeros([0, 3])],
      ["empty_i64", zeros([2, 0, 4], { dtype: "int64" })],
      ["empty_bool", zeros([0], { dtype: "bool" })],
    ]);
    const base = randn([3, 5]);
    originals.set("transposed", base.T);
    originals.set("strided", base.slice(1, 0, 5, 2));
    const path = freshPath();
    saveSafetensors(path, originals);

    const { tensors, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, {});
    assert.deepEqual([...tensors.keys()].sort(), [...originals.keys()].sort());
    const { file, header, dataStart } = rawLayout(path);
    for (const [name, want] of originals) {
      const got = tensors.get(name) as Tensor;
      assert.equal(got.dtype, want.dtype, `${name} dtype`);
      assert.deepEqual(got.shape, want.shape, `${name} shape`);
      assert.ok(got.isContiguous, `${name} is contiguous after loading`);
      assert.ok(bytesOf(got).equals(bytesOf(want)), `${name}: loaded bytes differ from saved ones`);
      const [begin, end] = (header[name] as { data_offsets: [number, number] }).data_offsets;
      assert.ok(file.subarray(dataStart + begin, dataStart + end).equals(bytesOf(want)), `${name}: bytes in the file`);
    }
    assert.deepEqual(
      (tensors.get("i64") as Tensor).toTypedArray(),
      BigInt64Array.from([2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 0n, -1n]),
    );
    assert.deepEqual((tensors.get("bool") as Tensor).toArray(), [
      [true, false],
      [false, true],
    ]);
    const transposed = scope(() => base.T.contiguous().toArray());
    assert.deepEqual((tensors.get("transposed") as Tensor).toArray(), transposed);
    assert.equal((tensors.get("scalar_f64") as Tensor).item(), 2.5);
    dispose([tensors, originals, base]);
    assert.equal(memoryStats().liveTensors, before);
  });

  it("writes tensors in UTF-8 byte order of their names with the data start aligned to 8 bytes", () => {
    const names = ["z", "é", "a.2", "😀", "B", "ｚ", "a.10", "b"];
    // UTF-8 byte order; plain JS sort would put the astral 😀 (a surrogate pair) before ｚ.
    const sorted = ["B", "a.10", "a.2", "b", "z", "é", "ｚ", "😀"];
    for (const extra of ["", "x", "xy", "xyz", "abcd", "abcde", "abcdef", "abcdefg"]) {
      const ts: Record<string, Tensor> = {};
      names.forEach((n, i) => {
        ts[n + extra] = tensor(Float32Array.from({ length: i + 1 }, (_, k) => k + i / 8));
      });
      const path = freshPath();
      saveSafetensors(path, ts, { extra });
      const { file, headerText, header, dataStart } = rawLayout(path);
      assert.equal(dataStart % 8, 0, `data start ${dataStart} is not 8-byte aligned`);
      assert.match(headerText, /^\{.*\} *$/s, "the header is JSON padded with spaces only");
      assert.deepEqual(Object.keys(header), ["__metadata__", ...sorted.map((n) => n + extra)]);
      let at = 0;
      for (const n of sorted) {
        const info = header[n + extra] as { dtype: string; shape: number[]; data_offsets: [number, number] };
        assert.equal(info.dtype, "F32");
        assert.deepEqual(info.data_offsets, [at, at + info.shape[0]! * 4], `${n}: data in name order, back to back`);
        const got = new Float32Array(
          file.buffer.slice(file.byteOffset + dataStart + at, file.byteOffset + dataStart + info.data_offsets[1]),
        );
        assert.deepEqual(Array.from(got), Array.from((ts[n + extra] as Tensor).toFlatArray()));
        at = info.data_offsets[1];
      }
      assert.equal(file.length, dataStart + at, "no bytes after the last tensor");
      dispose(ts);
    }
  });

  it("round-trips metadata, including keys that are special in JS", () => {
    const meta = JSON.parse(
      '{"format":"pt","__proto__":"not a prototype","ünï\\u0000code":"line\\nbreak \\"quoted\\"","":""}',
    ) as Record<string, string>;
    const t = zeros([2]);
    const path = freshPath();
    saveSafetensors(path, { w: t }, meta);
    const loaded = loadSafetensors(path);
    assert.deepEqual(loaded.metadata, meta);
    assert.equal(Object.getPrototypeOf(loaded.metadata), Object.prototype);
    assert.deepEqual(readSafetensorsHeader(path).metadata, meta);
    dispose([t, loaded.tensors]);

    const bare = zeros([1]);
    const p2 = freshPath();
    saveSafetensors(p2, { w: bare });
    assert.ok(!("__metadata__" in rawLayout(p2).header), "no metadata given, none written");
    const l2 = loadSafetensors(p2);
    assert.deepEqual(l2.metadata, {});
    dispose([bare, l2.tensors]);
  });

  it("accepts a Map or a Record and writes the same bytes every time", () => {
    const a = randn([4, 3]);
    const b = tensor(Int32Array.from([1, 2, 3]));
    const p1 = freshPath();
    const p2 = freshPath();
    const p3 = freshPath();
    saveSafetensors(
      p1,
      new Map([
        ["b", b],
        ["a", a],
      ]),
      { k: "v" },
    );
    saveSafetensors(p2, { a, b }, { k: "v" });
    saveSafetensors(p3, { b, a }, { k: "v" });
    assert.ok(readFileSync(p1).equals(readFileSync(p2)));
    assert.ok(readFileSync(p1).equals(readFileSync(p3)));
    dispose([a, b]);
  });

  it("saves an empty collection and a tensor named __proto__", () => {
    const p = freshPath();
    saveSafetensors(p, {});
    assert.equal(readFileSync(p).length % 8, 0);
    const l = loadSafetensors(p);
    assert.equal(l.tensors.size, 0);

    const t = tensor([1, 2]);
    const p2 = freshPath();
    saveSafetensors(p2, new Map([["__proto__", t]]));
    const l2 = loadSafetensors(p2);
    assert.deepEqual([...l2.tensors.keys()], ["__proto__"]);
    assert.deepEqual(l2.tensors.get("__proto__")?.toArray(), [1, 2]);
    dispose([t, l2.tensors]);
  });

  it("loads a subset by name, in the order asked, and names a missing tensor", () => {
    const ts = { a: zeros([1]), b: zeros([2]), c: zeros([3]) };
    const p = freshPath();
    saveSafetensors(p, ts);
    const before = memoryStats().liveTensors;
    const sub = loadSafetensors(p, { names: ["c", "a", "c"] });
    assert.deepEqual([...sub.tensors.keys()], ["c", "a"]);
    assert.deepEqual(sub.tensors.get("c")?.shape, [3]);
    assert.equal(memoryStats().liveTensors, before + 2);
    dispose(sub.tensors);
    assert.throws(
      () => loadSafetensors(p, { names: ["a", "nope"] }),
      (e: unknown) =>
        e instanceof SafetensorsError &&
        e.message.startsWith(`${p}: tensor 'nope' is not in the file`) &&
        /'a', 'b', 'c'/.test(e.message),
    );
    assert.equal(memoryStats().liveTensors, before, "a failed load frees what it allocated");
    dispose(ts);
  });

  it("readSafetensorsHeader describes the file without loading any tensor", () => {
    const ts = { w: randn([2, 3], { dtype: "bfloat16" }), b: tensor(BigInt64Array.from([5n])) };
    const p = freshPath();
    saveSafetensors(p, ts, { note: "hi" });
    const before = memoryStats().liveTensors;
    const h = readSafetensorsHeader(p);
    assert.equal(memoryStats().liveTensors, before);
    assert.deepEqual([...h.tensors.keys()], ["b", "w"]);
    assert.deepEqual(h.metadata, { note: "hi" });
    assert.equal(h.dataStart, 8 + h.headerLength);
    assert.equal(h.dataStart % 8, 0);
    assert.equal(h.dataLength, 8 + 12);
    assert.deepEqual(h.tensors.get("w"), {
      name: "w",
      dtype: "bfloat16",
      fileDType: "BF16",
      shape: [2, 3],
      dataOffsets: [8, 20],
      fileOffset: h.dataStart + 8,
      byteLength: 12,
    });
    dispose(ts);
  });

  it("round-trips a multi-megabyte checkpoint", () => {
    const ts = { a: randn([512, 1024]), b: randn([1024, 512], { dtype: "float64" }), c: randn([3]) };
    const p = freshPath();
    saveSafetensors(p, ts);
    const l = loadSafetensors(p);
    for (const [k, t] of Object.entries(ts)) assert.ok(bytesOf(l.tensors.get(k) as Tensor).equals(bytesOf(t)), k);
    dispose([ts, l.tensors]);
  });

  it("loads onto CUDA when asked", { skip: cuda.isAvailable() ? false : "CUDA is not available" }, () => {
    const t = randn([4, 4]);
    const p = freshPath();
    saveSafetensors(p, { t });
    const l = loadSafetensors(p, { device: "cuda" });
    const g = l.tensors.get("t") as Tensor;
    assert.match(g.device, /^cuda/);
    assert.ok(bytesOf(g).equals(bytesOf(t)));
    const p2 = freshPath();
    saveSafetensors(p2, { t: g });
    assert.ok(readFileSync(p2).equals(readFileSync(p)), "saving from CUDA writes the same bytes");
    dispose([t, l.tensors]);
  });
});

describe("safetensors atomic save", () => {
  function setup(): { path: string; original: Buffer; a: Tensor } {
    const a = randn([8]);
    const path = freshPath("atomic");
    saveSafetensors(path, { a });
    return { path, original: readFileSync(path), a };
  }

  function assertUntouched(path: string, original: Buffer): void {
    assert.ok(readFileSync(path).equals(original), "the previous file is byte-identical");
    assert.deepEqual(tempLeftovers(), [], "no temporary file is left behind");
  }

  it("leaves the previous file untouched when a tensor is disposed", () => {
    const { path, original, a } = setup();
    const gone = randn([3]);
    gone.dispose();
    assert.throws(
      () => saveSafetensors(path, { a, gone }),
      (e: unknown) => e instanceof SafetensorsError && e.message === `${path}: tensor 'gone' was already disposed`,
    );
    assertUntouched(path, original);
    a.dispose();
  });

  it("removes the partly written temporary file when writing fails midway", () => {
    const { path, original, a } = setup();
    const big = randn([1000]);
    const failing = randn([2]);
    // Fails after the header and 'a', 'big' have been written (names are written in order).
    failing.toBytes = () => {
      throw new Error("disk on fire");
    };
    assert.throws(() => saveSafetensors(path, { a, big, zz: failing }), /saving failed, file left unchanged: disk on fire/);
    assertUntouched(path, original);
    dispose([a, big, failing]);
  });

  it("fails cleanly when the directory does not exist or the target is a directory", () => {
    const t = zeros([2]);
    const missing = join(dir, "no-such-dir", "m.safetensors");
    assert.throws(
      () => saveSafetensors(missing, { t }),
      (e: unknown) =>
        e instanceof SafetensorsError && e.message.startsWith(`${missing}: saving failed`) && /ENOENT/.test(e.message),
    );
    const targetDir = join(dir, "a-directory.safetensors");
    mkdirSync(targetDir);
    writeFileSync(join(targetDir, "keep"), "x");
    assert.throws(() => saveSafetensors(targetDir, { t }), /saving failed/);
    assert.deepEqual(readdirSync(targetDir), ["keep"]);
    assert.deepEqual(tempLeftovers(), []);
    t.dispose();
  });

  it("rejects bad arguments before touching the file", () => {
    const { path, original, a } = setup();
    assert.throws(() => saveSafetensors(path, { __metadata__: a }), /'__metadata__' is reserved/);
    assert.throws(() => saveSafetensors(path, { a }, { n: 3 } as unknown as Record<string, string>), /metadata 'n' is a number/);
    assert.throws(
      () => saveSafetensors(path, { a, x: [1, 2] } as unknown as Record<string, Tensor>),
      /tensor 'x' is not a Tensor/,
    );
    assertUntouched(path, original);
    a.dispose();
  });

  it("replaces an existing file completely", () => {
    const { path, a } = setup();
    const b = tensor(Int8Array.from([1, 2, 3]));
    saveSafetensors(path, { b });
    const l = loadSafetensors(path);
    assert.deepEqual([...l.tensors.keys()], ["b"]);
    assert.deepEqual(l.tensors.get("b")?.toArray(), [1, 2, 3]);
    assert.deepEqual(tempLeftovers(), []);
    dispose([a, b, l.tensors]);
  });
});

// ---- hostile files --------------------------------------------------------------------

function fileFrom(headerText: string, data: Uint8Array | number = 0, options: { length?: bigint; pad?: boolean } = {}): string {
  let json = Buffer.from(headerText, "utf8");
  if (options.pad ?? true) json = Buffer.concat([json, Buffer.alloc((8 - ((8 + json.length) % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(options.length ?? BigInt(json.length));
  const body = typeof data === "number" ? Buffer.alloc(data) : Buffer.from(data);
  const path = freshPath("hostile");
  writeFileSync(path, Buffer.concat([prefix, json, body]));
  return path;
}

function entry(dtype: unknown, shape: unknown, offsets: unknown): string {
  return JSON.stringify({ dtype, shape, data_offsets: offsets });
}

/** Both the header reader and the loader must reject the file with this message, allocating nothing. */
function assertRejected(path: string, pattern: RegExp | string): void {
  const before = memoryStats();
  for (const read of [() => readSafetensorsHeader(path), () => loadSafetensors(path)]) {
    assert.throws(read, (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${path}: `), `message names the file: ${e.message}`);
      if (typeof pattern === "string") assert.equal(e.message, `${path}: ${pattern}`);
      else assert.match(e.message, pattern);
      return true;
    });
  }
  assert.deepEqual(memoryStats(), before);
}

describe("safetensors hostile files", () => {
  it("rejects a file too short for the header length, and a missing file", () => {
    const p = freshPath("short");
    writeFileSync(p, Buffer.from([1, 2, 3, 4, 5]));
    assertRejected(p, "the file has 5 bytes, too few for the 8-byte header length");
    const empty = freshPath("empty");
    writeFileSync(empty, "");
    assertRejected(empty, /the file has 0 bytes/);
    assertRejected(join(dir, "does-not-exist.safetensors"), /cannot open: ENOENT/);
    assertRejected(dir, /cannot read: EISDIR/);
  });

  it("rejects a header length beyond the file or the 100 MB limit without reading it", () => {
    assertRejected(
      fileFrom("{}", 0, { length: 1000n }),
      "header length 1000 is larger than the file: 16 bytes leave 8 after the 8-byte length",
    );
    assertRejected(
      fileFrom("{}", 0, { length: 2n ** 64n - 1n }),
      "header length 18446744073709551615 exceeds the 100000000-byte limit",
    );
    // A sparse file really as large as the claimed header: the limit, not the size, rejects it.
    const p = fileFrom("{}", 0, { length: 100_000_001n });
    truncateSync(p, 100_000_200);
    assertRejected(p, "header length 100000001 exceeds the 100000000-byte limit");
  });

  it("rejects headers that are not UTF-8 JSON objects", () => {
    const badUtf8 = freshPath("utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(8n);
    writeFileSync(badUtf8, Buffer.concat([prefix, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x20, 0x20])]));
    assertRejected(badUtf8, "header is not valid UTF-8");
    assertRejected(fileFrom('{"a": '), /header is not valid JSON: expected a JSON value at character 8 \(found end of text\)/);
    assertRejected(fileFrom("{} x"), /header is not valid JSON: unexpected text after the JSON value/);
    assertRejected(fileFrom("[1, 2]"), /header must be a JSON object starting with '\{'/);
    assertRejected(fileFrom(' {"a":1}'), /header must be a JSON object starting with '\{'/);
    assertRejected(fileFrom('"str"'), /header must be a JSON object/);
    assertRejected(fileFrom('{"a": 1}'), "tensor 'a': entry is 1, not an object");
    assertRejected(fileFrom('{"a": [1]}'), "tensor 'a': entry is an array of 1, not an object");
    assertRejected(fileFrom(`{"a":${"[".repeat(100_000)}`), /nesting deeper than 64/);
    assertRejected(fileFrom('{"a\\q": 1}'), /bad escape in string/);
  });

  it("accepts padding spaces and key order that differs from data order", () => {
    const p = fileFrom(
      `{"b":${entry("U8", [2], [2, 4])},"a":${entry("U8", [2], [0, 2])}}${" ".repeat(41)}`,
      Uint8Array.from([1, 2, 3, 4]),
    );
    const { tensors } = loadSafetensors(p);
    assert.deepEqual([...tensors.keys()], ["a", "b"], "data order");
    assert.deepEqual(tensors.get("b")?.toArray(), [3, 4]);
    dispose(tensors);
  });

  it("rejects malformed data_offsets", () => {
    const cases: [unknown, string][] = [
      [undefined, "tensor 'w': missing 'data_offsets'"],
      ["0,4", "tensor 'w': 'data_offsets' is '0,4', not an array"],
      [[0, 4, 8], "tensor 'w': data_offsets has 3 entries, expected [begin, end]"],
      [[0], "tensor 'w': data_offsets has 1 entries, expected [begin, end]"],
      [[4, 0], "tensor 'w': data_offsets [4, 0] begin after they end"],
      [[-1, 3], "tensor 'w': data_offsets[0] is -1, not a non-negative integer"],
      [[0.5, 4], "tensor 'w': data_offsets[0] is 0.5, not a non-negative integer"],
      [["0", 4], "tensor 'w': data_offsets[0] is '0', not a non-negative integer"],
      [[0, null], "tensor 'w': data_offsets[1] is null, not a non-negative integer"],
      [[0, 2 ** 60], "tensor 'w': data_offsets[1] is 1152921504606847000, not a non-negative integer"],
      [[0, 8], "tensor 'w': data_offsets [0, 8] end beyond the 4-byte data buffer"],
    ];
    for (const [offsets, message] of cases) {
      const header = offsets === undefined ? `{"w":{"dtype":"F32","shape":[1]}}` : `{"w":${entry("F32", [1], offsets)}}`;
      assertRejected(fileFrom(header, 4), message);
    }
    // Literals JSON.stringify would never write, but a hostile file can.
    assertRejected(
      fileFrom('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', 4),
      /data_offsets\[1\] is 4\.0, not a non-negative integer/,
    );
    assertRejected(fileFrom('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}', 4), /data_offsets\[1\] is 4e0/);
  });

  it("rejects a byte count that does not match shape and dtype", () => {
    const p = fileFrom(`{"layer1.0.conv1.weight":${entry("F32", [3, 3], [0, 100])}}`, 100);
    assertRejected(p, "tensor 'layer1.0.conv1.weight': data_offsets [0, 100] hold 100 bytes but shape [3, 3] of F32 needs 36");
    assertRejected(
      fileFrom(`{"w":${entry("BF16", [3], [0, 8])}}`, 8),
      "tensor 'w': data_offsets [0, 8] hold 8 bytes but shape [3] of BF16 needs 6",
    );
    assertRejected(
      fileFrom(`{"w":${entry("I64", [], [0, 4])}}`, 4),
      "tensor 'w': data_offsets [0, 4] hold 4 bytes but shape [] of I64 needs 8",
    );
  });

  it("rejects huge shapes without allocating", () => {
    const t0 = Date.now();
    assertRejected(
      fileFrom(`{"w":${entry("F32", [2 ** 40, 2 ** 40], [0, 8])}}`, 8),
      /shape \[1099511627776, 1099511627776\] of F32 needs more than 2\^64/,
    );
    assertRejected(
      fileFrom(`{"w":${entry("F64", [1e6, 1e6], [0, 8])}}`, 8),
      /hold 8 bytes but shape \[1000000, 1000000\] of F64 needs 8000000000000$/,
    );
    assertRejected(fileFrom(`{"w":${entry("F32", [2 ** 31, 2 ** 31], [0, 0])}}`, 0), /needs more than 2\^64/);
    const manyDims = Array.from({ length: 200 }, () => 2);
    assertRejected(
      fileFrom(`{"w":${entry("U8", manyDims, [0, 8])}}`, 8),
      /shape \[2, 2, 2, 2, 2, 2, 2, 2, \.\.\. \(200 dims\)\] of U8 needs more than 2\^64/,
    );
    assert.ok(Date.now() - t0 < 2000, "rejected quickly");
    // A zero dimension makes any other extent harmless: zero elements, zero bytes.
    const { tensors } = loadSafetensors(fileFrom(`{"w":${entry("F32", [0, 2 ** 50], [0, 0])}}`));
    assert.deepEqual(tensors.get("w")?.shape, [0, 2 ** 50]);
    dispose(tensors);
  });

  it("rejects negative, fractional and non-numeric shapes", () => {
    const cases: [unknown, string][] = [
      [[-3], "shape[0] is -3, not a non-negative integer"],
      [[2, 2.5], "shape[1] is 2.5, not a non-negative integer"],
      [["3"], "shape[0] is '3', not a non-negative integer"],
      [[null], "shape[0] is null, not a non-negative integer"],
      [[[1]], "shape[0] is an array of 1, not a non-negative integer"],
      [3, "'shape' is 3, not an array"],
      [{}, "'shape' is an object, not an array"],
    ];
    for (const [shape, message] of cases)
      assertRejected(fileFrom(`{"w":${entry("U8", shape, [0, 3])}}`, 3), `tensor 'w': ${message}`);
    assertRejected(fileFrom('{"w":{"dtype":"U8","data_offsets":[0,3]}}', 3), "tensor 'w': missing 'shape'");
    assertRejected(
      fileFrom('{"w":{"dtype":"U8","shape":[3.0],"data_offsets":[0,3]}}', 3),
      "tensor 'w': shape[0] is 3.0, not a non-negative integer",
    );
    assertRejected(
      fileFrom('{"w":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}', 0),
      "tensor 'w': shape[0] is -0, not a non-negative integer",
    );
  });

  it("rejects unsupported and malformed dtypes by name", () => {
    for (const dt of ["F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "C64", "float32", "f32", ""]) {
      assertRejected(
        fileFrom(`{"w":${entry(dt, [1], [0, 1])}}`, 1),
        new RegExp(
          `^.*: unsupported dtype '${dt}' for tensor 'w' \\(supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL\\)$`,
        ),
      );
    }
    assertRejected(fileFrom(`{"w":${entry(7, [1], [0, 1])}}`, 1), "tensor 'w': 'dtype' is 7, not a string");
    assertRejected(fileFrom('{"w":{"shape":[1],"data_offsets":[0,1]}}', 1), "tensor 'w': missing 'dtype'");
  });

  it("rejects overlapping tensors and holes in the data buffer", () => {
    assertRejected(
      fileFrom(`{"a":${entry("U8", [8], [0, 8])},"b":${entry("U8", [8], [4, 12])}}`, 12),
      "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]",
    );
    assertRejected(
      fileFrom(`{"a":${entry("U8", [8], [0, 8])},"alias":${entry("U8", [8], [0, 8])}}`, 8),
      "tensor 'alias': data_offsets [0, 8] overlap tensor 'a' [0, 8]",
    );
    assertRejected(
      fileFrom(`{"a":${entry("U8", [8], [0, 8])},"e":${entry("U8", [0], [4, 4])}}`, 8),
      "tensor 'e': data_offsets [4, 4] overlap tensor 'a' [0, 8]",
    );
    assertRejected(
      fileFrom(`{"a":${entry("U8", [4], [0, 4])},"b":${entry("U8", [4], [8, 12])}}`, 12),
      "bytes [4, 8) of the data buffer belong to no tensor (between 'a' and 'b')",
    );
    assertRejected(
      fileFrom(`{"a":${entry("U8", [4], [4, 8])}}`, 8),
      "bytes [0, 4) of the data buffer belong to no tensor (before 'a')",
    );
    assertRejected(
      fileFrom(`{"a":${entry("U8", [8], [0, 8])}}`, 16),
      "the data buffer has 16 bytes but the tensors end at 8: bytes [8, 16) belong to no tensor",
    );
    assertRejected(fileFrom("{}", 3), "the data buffer has 3 bytes but the tensors end at 0: bytes [0, 3) belong to no tensor");
    // Empty tensors at a shared boundary are fine whatever the key order.
    const ok = fileFrom(
      `{"b":${entry("U8", [4], [0, 4])},"a":${entry("U8", [0], [0, 0])},"c":${entry("U8", [0, 5], [4, 4])},"d":${entry("U8", [0], [4, 4])}}`,
      4,
    );
    const { tensors } = loadSafetensors(ok);
    assert.deepEqual([...tensors.keys()], ["a", "b", "c", "d"]);
    dispose(tensors);
  });

  it("rejects duplicate keys instead of letting the last one win", () => {
    assertRejected(
      fileFrom(`{"a":${entry("U8", [1], [0, 1])},"a":${entry("U8", [1], [1, 2])}}`, 2),
      "tensor 'a' appears twice in the header",
    );
    assertRejected(
      fileFrom(`{"__metadata__":{"k":"1","k":"2"},"a":${entry("U8", [1], [0, 1])}}`, 1),
      "duplicate key 'k' in header entry '__metadata__'",
    );
    assertRejected(
      fileFrom('{"a":{"dtype":"U8","dtype":"F32","shape":[1],"data_offsets":[0,1]}}', 1),
      "duplicate key 'dtype' in header entry 'a'",
    );
    assertRejected(fileFrom(`{"__metadata__":{},"__metadata__":{}}`), "tensor '__metadata__' appears twice in the header");
  });

  it("rejects malformed metadata", () => {
    assertRejected(fileFrom('{"__metadata__":["a"]}'), "'__metadata__' is an array of 1, not an object");
    assertRejected(fileFrom('{"__metadata__":{"k":1}}'), "'__metadata__' entry 'k' is 1, not a string");
    assertRejected(fileFrom('{"__metadata__":{"k":null}}'), "'__metadata__' entry 'k' is null, not a string");
  });

  it("rejects a truncated or extended checkpoint", () => {
    const t = randn([64]);
    const p = freshPath();
    saveSafetensors(p, { t });
    const { dataStart } = readSafetensorsHeader(p);
    const original = readFileSync(p);
    truncateSync(p, dataStart + 255);
    assertRejected(p, "tensor 't': data_offsets [0, 256] end beyond the 255-byte data buffer");
    writeFileSync(p, Buffer.concat([original, Buffer.from([0])]));
    assertRejected(p, "the data buffer has 257 bytes but the tensors end at 256: bytes [256, 257) belong to no tensor");
    t.dispose();
  });
});

describe("safetensors memory", () => {
  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startLive);
  });
});
