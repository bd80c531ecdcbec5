// Forward semantics against hand-computed values (not against our own outputs).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { F } from "../../src/index.js";
import {
  arange,
  autograd,
  cat,
  type DType,
  einsum,
  empty,
  emptyLike,
  enableGrad,
  eye,
  full,
  fullLike,
  getNumThreads,
  isFloatingPoint,
  isGradEnabled,
  linspace,
  manualSeed,
  memoryStats,
  type NestedArray,
  noGrad,
  ones,
  onesLike,
  rand,
  randint,
  randLike,
  randn,
  randnLike,
  randperm,
  scalar,
  scope,
  setNumThreads,
  stack,
  type Tensor,
  tensor,
  where,
  zeros,
  zerosLike,
} from "../../src/tensor/index.js";
import { assertTensorClose } from "../helpers/close.js";

const startTensors = memoryStats().liveTensors;

/** Each test body runs in a scope so that nothing it creates outlives it. */
function test(name: string, fn: () => void): void {
  it(name, () => {
    scope(fn);
  });
}

const long = (data: NestedArray): Tensor => tensor(data, { dtype: "int64" });
const bool = (data: NestedArray): Tensor => tensor(data, { dtype: "bool" });
const f64 = (data: NestedArray): Tensor => tensor(data, { dtype: "float64" });

function stats(values: readonly number[]): { mean: number; std: number; min: number; max: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(variance), min: Math.min(...values), max: Math.max(...values) };
}

describe("creation", () => {
  test("tensor() from nested arrays infers the shape and defaults to float32", () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.dtype, "float32");
    assert.equal(t.ndim, 2);
    assert.equal(t.numel, 6);
    assert.deepEqual(t.toArray(), [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(tensor([[[1], [2]]]).shape, [1, 2, 1]);
  });

  test("tensor() from typed arrays keeps the element type", () => {
    const cases: [Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array, DType][] = [
      [Float32Array.of(1, -2, 3.5, 4), "float32"],
      [Float64Array.of(1, -2, 3.5, 4), "float64"],
      [Int32Array.of(1, -2, 3, 4), "int32"],
      [Int16Array.of(1, -2, 3, 4), "int16"],
      [Int8Array.of(1, -2, 3, 4), "int8"],
      [Uint8Array.of(1, 2, 3, 4), "uint8"],
      [BigInt64Array.of(1n, -2n, 3n, 4n), "int64"],
    ];
    for (const [data, dtype] of cases) {
      const t = tensor(data, { shape: [2, 2] });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 2]);
      const expected = Array.from(data as ArrayLike<number | bigint>, Number);
      assert.deepEqual(t.toFlatArray(), expected, dtype);
      assert.deepEqual(tensor(data).shape, [4], `${dtype} without a shape is 1-D`);
    }
  });

  test("tensor() copies typed array data", () => {
    const data = Float32Array.of(1, 2, 3);
    const t = tensor(data);
    data[0] = 100;
    assert.deepEqual(t.toFlatArray(), [1, 2, 3]);
  });

  test("tensor() converts to the requested dtype (float to int truncates toward zero)", () => {
    const t = tensor([1.7, -1.7, 2.5], { dtype: "int32" });
    assert.equal(t.dtype, "int32");
    assert.deepEqual(t.toFlatArray(), [1, -1, 2]);
    const u = tensor(Int32Array.of(3, 4), { dtype: "float64" });
    assert.equal(u.dtype, "float64");
    assert.deepEqual(u.toFlatArray(), [3, 4]);
  });

  test("0-d tensors and empty tensors", () => {
    const s = tensor(3.5);
    assert.deepEqual(s.shape, []);
    assert.equal(s.ndim, 0);
    assert.equal(s.numel, 1);
    assert.equal(s.item(), 3.5);
    assert.equal(s.toArray(), 3.5);
    assert.equal(scalar(true).dtype, "bool");
    assert.equal(scalar(2, { dtype: "int64" }).item(), 2);
    const e = tensor([]);
    assert.deepEqual(e.shape, [0]);
    assert.equal(e.numel, 0);
    assert.deepEqual(e.toArray(), []);
    assert.deepEqual(zeros([0, 3]).shape, [0, 3]);
  });

  test("bool tensors from booleans", () => {
    const b = tensor([
      [true, false],
      [false, true],
    ]);
    assert.equal(b.dtype, "bool");
    assert.deepEqual(b.toArray(), [
      [true, false],
      [false, true],
    ]);
    assert.deepEqual(Array.from(b.toTypedArray() as Uint8Array), [1, 0, 0, 1]);
    assert.deepEqual(b.sum().item(), 2);
  });

  test("zeros, ones, full, empty: shape, dtype and values", () => {
    const z = zeros([2, 3]);
    assert.deepEqual([z.shape, z.dtype, z.toFlatArray()], [[2, 3], "float32", [0, 0, 0, 0, 0, 0]]);
    const o = ones([3], { dtype: "float64" });
    assert.deepEqual([o.shape, o.dtype, o.toFlatArray()], [[3], "float64", [1, 1, 1]]);
    const f = full([2, 2], 7.5);
    assert.deepEqual([f.dtype, f.toFlatArray()], ["float32", [7.5, 7.5, 7.5, 7.5]]);
    const fb = full([2], true);
    assert.deepEqual([fb.dtype, fb.toArray()], ["bool", [true, true]]);
    const fi = full([3], 5, { dtype: "int64" });
    assert.deepEqual([fi.dtype, Array.from(fi.toTypedArray() as BigInt64Array)], ["int64", [5n, 5n, 5n]]);
    const e = empty([4, 1, 2], { dtype: "int32" });
    assert.deepEqual([e.shape, e.dtype], [[4, 1, 2], "int32"]);
    assert.deepEqual(zeros([]).shape, []);
  });

  test("arange: int64 for integer bounds, float32 otherwise (PyTorch rules)", () => {
    const a = arange(5);
    assert.equal(a.dtype, "int64");
    assert.deepEqual(a.toFlatArray(), [0, 1, 2, 3, 4]);
    assert.deepEqual(arange(2, 5).toFlatArray(), [2, 3, 4]);
    const down = arange(10, 0, -3);
    assert.equal(down.dtype, "int64");
    assert.deepEqual(down.toFlatArray(), [10, 7, 4, 1]);
    const fr = arange(0, 1, 0.25);
    assert.equal(fr.dtype, "float32");
    assert.deepEqual(fr.toFlatArray(), [0, 0.25, 0.5, 0.75]);
    const fe = arange(0, 2.5);
    assert.equal(fe.dtype, "float32");
    assert.deepEqual(fe.toFlatArray(), [0, 1, 2]);
    assert.equal(arange(0, 1, 0.1).numel, 10);
    const d = arange(3, undefined, 1, { dtype: "float64" });
    assert.deepEqual([d.dtype, d.toFlatArray()], ["float64", [0, 1, 2]]);
  });

  test("linspace includes both ends", () => {
    const l = linspace(0, 1, 5);
    assert.equal(l.dtype, "float32");
    assert.deepEqual(l.toFlatArray(), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(linspace(-1, 1, 3).toFlatArray(), [-1, 0, 1]);
    assert.deepEqual(linspace(2, 2, 1).toFlatArray(), [2]);
    assert.deepEqual(linspace(0, 1, 0).shape, [0]);
  });

  test("eye, square and rectangular", () => {
    assert.deepEqual(eye(3).toArray(), [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ]);
    assert.deepEqual(eye(2, 3).toArray(), [
      [1, 0, 0],
      [0, 1, 0],
    ]);
    assert.equal(eye(2, 2, { dtype: "float64" }).dtype, "float64");
  });

  test("randint draws from [low, high) and hits every value", () => {
    manualSeed(11);
    const r = randint(3, 7, [2000]);
    assert.equal(r.dtype, "int64");
    const v = r.toFlatArray();
    assert.equal(Math.min(...v), 3);
    assert.equal(Math.max(...v), 6);
    assert.deepEqual([...new Set(v)].sort(), [3, 4, 5, 6]);
    assert.equal(randint(0, 2, [5], { dtype: "float32" }).dtype, "float32");
  });

  test("randperm is a permutation of 0..n-1", () => {
    manualSeed(12);
    const p = randperm(20);
    assert.equal(p.dtype, "int64");
    const v = p.toFlatArray();
    assert.deepEqual(
      [...v].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.notDeepEqual(
      v,
      Array.from({ length: 20 }, (_, i) => i),
      "a random permutation of 20 is (almost surely) not the identity",
    );
  });

  test("rand is uniform on [0, 1), randn is standard normal", () => {
    manualSeed(13);
    const u = rand([5000]);
    assert.equal(u.dtype, "float32");
    const su = stats(u.toFlatArray());
    assert.ok(su.min >= 0 && su.max < 1, `rand out of [0, 1): ${su.min}..${su.max}`);
    assert.ok(Math.abs(su.mean - 0.5) < 0.02, `rand mean ${su.mean}`);
    assert.ok(Math.abs(su.std - Math.sqrt(1 / 12)) < 0.01, `rand std ${su.std}`);
    const sn = stats(randn([5000]).toFlatArray());
    assert.ok(Math.abs(sn.mean) < 0.05, `randn mean ${sn.mean}`);
    assert.ok(Math.abs(sn.std - 1) < 0.05, `randn std ${sn.std}`);
    assert.deepEqual(rand([2, 3], { dtype: "float64" }).shape, [2, 3]);
  });

  test("*Like variants keep shape and dtype, and accept a dtype override", () => {
    manualSeed(14);
    const base = zeros([2, 3], { dtype: "float64" });
    const like: [string, Tensor][] = [
      ["zerosLike", zerosLike(base)],
      ["onesLike", onesLike(base)],
      ["fullLike", fullLike(base, 2.5)],
      ["emptyLike", emptyLike(base)],
      ["randLike", randLike(base)],
      ["randnLike", randnLike(base)],
    ];
    for (const [name, t] of like) {
      assert.equal(t.dtype, "float64", name);
      assert.deepEqual(t.shape, [2, 3], name);
    }
    assert.deepEqual(like[0]?.[1].toFlatArray(), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(like[1]?.[1].toFlatArray(), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(like[2]?.[1].toFlatArray(), [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
    const r = like[4]?.[1].toFlatArray() ?? [];
    assert.ok(r.every((v) => v >= 0 && v < 1));
    const ints = arange(4).reshape(2, 2);
    assert.equal(onesLike(ints).dtype, "int64");
    assert.equal(fullLike(ints.int(), 3).dtype, "int32");
    assert.equal(zerosLike(base, { dtype: "float32" }).dtype, "float32");
  });

  test("requiresGrad option makes a leaf that requires grad", () => {
    const t = ones([2], { requiresGrad: true });
    assert.equal(t.requiresGrad, true);
    assert.equal(t.isLeaf, true);
    assert.equal(t.gradFn, null);
    assert.equal(tensor([1, 2], { requiresGrad: true }).requiresGrad, true);
    assert.equal(ones([2]).requiresGrad, false);
  });
});

describe("dtypes and reading values", () => {
  test("conversions between dtypes", () => {
    const x = tensor([2.7, -2.7, 0, 0.4]);
    assert.deepEqual(x.int().toFlatArray(), [2, -2, 0, 0]);
    assert.equal(x.int().dtype, "int32");
    assert.equal(x.long().dtype, "int64");
    assert.deepEqual(x.long().toFlatArray(), [2, -2, 0, 0]);
    assert.deepEqual(x.bool().toArray(), [true, true, false, true]);
    assert.deepEqual(bool([true, false]).float().toFlatArray(), [1, 0]);
    assert.equal(x.double().dtype, "float64");
    assert.equal(x.double().float().dtype, "float32");
    assert.deepEqual(x.to("int8").toFlatArray(), [2, -2, 0, 0]);
    assert.deepEqual(long([3, 4]).to("float64").toFlatArray(), [3, 4]);
    assert.ok(isFloatingPoint("bfloat16") && isFloatingPoint("float16") && !isFloatingPoint("int64") && !isFloatingPoint("bool"));
  });

  test("to() returns a new tensor unless copy is needed; copy forces one", () => {
    const x = tensor([1, 2]);
    const same = x.to("float32");
    const copied = x.to("float32", { copy: true });
    x.fill_(5);
    assert.deepEqual(same.toFlatArray(), [5, 5], "to() with the same dtype aliases the input, as in PyTorch");
    assert.deepEqual(copied.toFlatArray(), [1, 2]);
  });

  test("float16 round trip", () => {
    const h = tensor([0.5, -2, 1024, 65504, 0.1, 70000]).to("float16");
    assert.equal(h.dtype, "float16");
    // 0.1 -> nearest half: (1 + 614/1024) * 2^-4; 70000 overflows to +inf.
    const expected = [0.5, -2, 1024, 65504, 0.0999755859375, Number.POSITIVE_INFINITY];
    assert.deepEqual(h.toFlatArray(), expected);
    assert.ok(h.toTypedArray() instanceof Float32Array);
    assert.deepEqual(h.float().toFlatArray(), expected);
    assert.deepEqual(h.add(1).dtype, "float16");
  });

  test("bfloat16 round trip", () => {
    const b = tensor([0.1, 1 / 3, 3, -256]).to("bfloat16");
    assert.equal(b.dtype, "bfloat16");
    // 8 significant bits: 0.1 -> (1 + 77/128) / 16, 1/3 -> (1 + 43/128) / 4.
    assert.deepEqual(b.toFlatArray(), [0.10009765625, 0.333984375, 3, -256]);
    assert.deepEqual(b.double().toFlatArray(), [0.10009765625, 0.333984375, 3, -256]);
  });

  test("int64 reads back as BigInt64Array, exactly beyond 2^53", () => {
    const big = BigInt64Array.of(9007199254740993n, -5n, 9223372036854775807n);
    const t = tensor(big);
    const back = t.toTypedArray();
    assert.ok(back instanceof BigInt64Array);
    assert.deepEqual(Array.from(back as BigInt64Array), [9007199254740993n, -5n, 9223372036854775807n]);
    assert.ok(arange(3).toTypedArray() instanceof BigInt64Array);
    assert.deepEqual(arange(3).toFlatArray(), [0, 1, 2]);
  });

  test("toArray follows the shape", () => {
    const t = arange(24).reshape(2, 3, 4);
    const expected = [0, 1].map((i) => [0, 1, 2].map((j) => [0, 1, 2, 3].map((k) => i * 12 + j * 4 + k)));
    assert.deepEqual(t.toArray(), expected);
    assert.deepEqual(zeros([2, 0]).toArray(), [[], []]);
    assert.equal(tensor(7).toArray(), 7);
  });

  test("item() reads one element of any shape and dtype", () => {
    assert.equal(tensor([[4.5]]).item(), 4.5);
    assert.equal(arange(5).sum().item(), 10);
    assert.equal(tensor(-3, { dtype: "int32" }).item(), -3);
    assert.equal(tensor(0.1, { dtype: "float64" }).item(), 0.1);
    assert.equal(Boolean(scalar(true).item()), true);
  });

  test("metadata: size, device, contiguity, toString", () => {
    const t = zeros([2, 3, 4]);
    assert.equal(t.size(), 24);
    assert.equal(t.size(1), 3);
    assert.equal(t.size(-1), 4);
    assert.equal(t.device, "cpu");
    assert.equal(t.isContiguous, true);
    assert.equal(t.transpose(0, 2).isContiguous, false);
    const s = tensor([1, 2]).toString();
    assert.match(s, /\[1,2\]/);
    assert.match(s, /shape=\[2\]/);
    assert.match(s, /float32/);
  });
});

describe("shape ops", () => {
  const m34 = (): Tensor => arange(12).reshape(3, 4);

  test("reshape and view", () => {
    const x = m34();
    assert.deepEqual(x.toArray(), [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9, 10, 11],
    ]);
    assert.deepEqual(x.reshape(4, 3).toArray(), [
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
      [9, 10, 11],
    ]);
    assert.deepEqual(x.reshape(-1).shape, [12]);
    assert.deepEqual(x.reshape(2, -1).shape, [2, 6]);
    assert.deepEqual(x.view(6, 2).toFlatArray(), x.toFlatArray());
    // A transposed tensor cannot be viewed but can be reshaped (with a copy).
    assert.deepEqual(x.T.reshape(12).toFlatArray(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  });

  test("views share storage with their base", () => {
    const x = zeros([2, 3]);
    const v = x.view(6);
    v.fill_(3);
    assert.deepEqual(x.toFlatArray(), [3, 3, 3, 3, 3, 3]);
    x.select(0, 1).fill_(1);
    assert.deepEqual(v.toFlatArray(), [3, 3, 3, 1, 1, 1]);
  });

  test("permute, transpose, T, contiguous", () => {
    const x = arange(24).reshape(2, 3, 4);
    const p = x.permute(2, 0, 1);
    assert.deepEqual(p.shape, [4, 2, 3]);
    const expected = [0, 1, 2, 3].map((k) => [0, 1].map((i) => [0, 1, 2].map((j) => i * 12 + j * 4 + k)));
    assert.deepEqual(p.toArray(), expected);
    const t = x.transpose(0, 2);
    assert.deepEqual(t.shape, [4, 3, 2]);
    assert.deepEqual(
      t.toArray(),
      [0, 1, 2, 3].map((k) => [0, 1, 2].map((j) => [0, 1].map((i) => i * 12 + j * 4 + k))),
    );
    assert.deepEqual(m34().T.toArray(), [
      [0, 4, 8],
      [1, 5, 9],
      [2, 6, 10],
      [3, 7, 11],
    ]);
    const c = m34().T.contiguous();
    assert.equal(c.isContiguous, true);
    assert.deepEqual(c.toFlatArray(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    const cl = zeros([1, 2, 3, 3]).contiguous("channelsLast");
    assert.deepEqual(cl.shape, [1, 2, 3, 3]);
    assert.equal(cl.isContiguous, false);
  });

  test("flatten, squeeze, unsqueeze", () => {
    const x = arange(24).reshape(2, 3, 4);
    assert.deepEqual(x.flatten().shape, [24]);
    assert.deepEqual(x.flatten(1).shape, [2, 12]);
    assert.deepEqual(x.flatten(0, 1).shape, [6, 4]);
    assert.deepEqual(x.flatten(1).toFlatArray(), x.toFlatArray());
    const z = zeros([1, 3, 1, 2]);
    assert.deepEqual(z.squeeze().shape, [3, 2]);
    assert.deepEqual(z.squeeze(0).shape, [3, 1, 2]);
    assert.deepEqual(z.squeeze(1).shape, [1, 3, 1, 2], "squeezing a dim of size 3 is a no-op");
    assert.deepEqual(z.squeeze(-2).shape, [1, 3, 2]);
    assert.deepEqual(tensor([1, 2]).unsqueeze(0).toArray(), [[1, 2]]);
    assert.deepEqual(tensor([1, 2]).unsqueeze(-1).toArray(), [[1], [2]]);
  });

  test("expand and expandAs", () => {
    const c = tensor([[1], [2]]);
    assert.deepEqual(c.expand(2, 3).toArray(), [
      [1, 1, 1],
      [2, 2, 2],
    ]);
    assert.deepEqual(c.expand(-1, 2).toArray(), [
      [1, 1],
      [2, 2],
    ]);
    assert.deepEqual(tensor([1, 2]).expand(2, 2, 2).toFlatArray(), [1, 2, 1, 2, 1, 2, 1, 2]);
    assert.deepEqual(c.expandAs(zeros([2, 4])).shape, [2, 4]);
  });

  test("cat and stack", () => {
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    const b = tensor([[5, 6]]);
    assert.deepEqual(cat([a, b]).toArray(), [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    assert.deepEqual(cat([a, b.T], 1).toArray(), [
      [1, 2, 5],
      [3, 4, 6],
    ]);
    assert.deepEqual(cat([a, a], -1).shape, [2, 4]);
    assert.deepEqual(stack([a, a.mul(10)]).toArray(), [
      [
        [1, 2],
        [3, 4],
      ],
      [
        [10, 20],
        [30, 40],
      ],
    ]);
    assert.deepEqual(stack([a, a.mul(10)], 1).toArray(), [
      [
        [1, 2],
        [10, 20],
      ],
      [
        [3, 4],
        [30, 40],
      ],
    ]);
    assert.deepEqual(stack([tensor([1, 2]), tensor([3, 4])], -1).toArray(), [
      [1, 3],
      [2, 4],
    ]);
  });

  test("split and chunk", () => {
    const x = arange(7);
    assert.deepEqual(
      x.split(3).map((t) => t.toFlatArray()),
      [[0, 1, 2], [3, 4, 5], [6]],
    );
    assert.deepEqual(
      x.split([2, 5]).map((t) => t.toFlatArray()),
      [
        [0, 1],
        [2, 3, 4, 5, 6],
      ],
    );
    assert.deepEqual(
      x.chunk(3).map((t) => t.toFlatArray()),
      [[0, 1, 2], [3, 4, 5], [6]],
    );
    // PyTorch semantics: chunk size is ceil(6 / 4) = 2, so only 3 chunks come back.
    assert.deepEqual(
      arange(6)
        .chunk(4)
        .map((t) => t.numel),
      [2, 2, 2],
    );
    const cols = m34().split([1, 3], 1);
    assert.deepEqual(
      cols.map((t) => t.shape),
      [
        [3, 1],
        [3, 3],
      ],
    );
    assert.deepEqual(cols[0]?.toFlatArray(), [0, 4, 8]);
  });

  test("narrow, slice, select", () => {
    const x = m34();
    assert.deepEqual(x.narrow(1, 1, 2).toArray(), [
      [1, 2],
      [5, 6],
      [9, 10],
    ]);
    assert.deepEqual(x.slice(1, 1, undefined, 2).toArray(), [
      [1, 3],
      [5, 7],
      [9, 11],
    ]);
    assert.deepEqual(x.slice(0, -2).toArray(), [
      [4, 5, 6, 7],
      [8, 9, 10, 11],
    ]);
    assert.deepEqual(x.slice(1, 0, -1).toArray(), [
      [0, 1, 2],
      [4, 5, 6],
      [8, 9, 10],
    ]);
    assert.deepEqual(x.slice(0).shape, [3, 4]);
    assert.deepEqual(x.select(1, -1).toArray(), [3, 7, 11]);
    assert.deepEqual(x.select(0, 1).toArray(), [4, 5, 6, 7]);
  });

  test("advanced indexing: index, indexSelect, gather", () => {
    const x = m34();
    assert.deepEqual(x.index([long([2, 0])]).toArray(), [
      [8, 9, 10, 11],
      [0, 1, 2, 3],
    ]);
    assert.deepEqual(x.index([null, long([3, 3, 0])]).toArray(), [
      [3, 3, 0],
      [7, 7, 4],
      [11, 11, 8],
    ]);
    assert.deepEqual(x.index([long([0, 2, 1]), long([1, 3, 0])]).toArray(), [1, 11, 4]);
    assert.deepEqual(x.index([x.gt(8)]).toArray(), [9, 10, 11]);
    assert.deepEqual(x.indexSelect(1, long([3, 0])).toArray(), [
      [3, 0],
      [7, 4],
      [11, 8],
    ]);
    assert.deepEqual(
      x
        .gather(
          1,
          long([
            [0, 0],
            [3, 1],
            [2, 2],
          ]),
        )
        .toArray(),
      [
        [0, 0],
        [7, 5],
        [10, 10],
      ],
    );
    assert.deepEqual(x.gather(0, long([[2, 1, 0, 2]])).toArray(), [[8, 5, 2, 11]]);
  });

  test("scatter, scatterAdd, indexAdd (out of place)", () => {
    const z = zeros([3, 4]);
    const s = z.scatter(0, long([[0, 1, 2, 0]]), tensor([[1, 2, 3, 4]]));
    assert.deepEqual(s.toArray(), [
      [1, 0, 0, 4],
      [0, 2, 0, 0],
      [0, 0, 3, 0],
    ]);
    assert.deepEqual(z.sum().item(), 0, "scatter does not modify its input");
    assert.deepEqual(
      zeros([2, 3])
        .scatter(1, long([[2], [0]]), 9)
        .toArray(),
      [
        [0, 0, 9],
        [9, 0, 0],
      ],
    );
    assert.deepEqual(
      zeros([3])
        .scatterAdd(0, long([0, 1, 0, 2, 0]), tensor([1, 2, 3, 4, 5]))
        .toArray(),
      [9, 2, 4],
    );
    const ia = zeros([3, 2]).indexAdd(
      0,
      long([0, 2, 0]),
      tensor([
        [1, 1],
        [2, 2],
        [3, 3],
      ]),
      2,
    );
    assert.deepEqual(ia.toArray(), [
      [8, 8],
      [0, 0],
      [4, 4],
    ]);
    assert.deepEqual(
      ones([2])
        .indexAdd(0, long([1]), tensor([5]))
        .toArray(),
      [1, 6],
    );
  });

  test("maskedFill and where", () => {
    const x = m34().float();
    assert.deepEqual(x.maskedFill(x.gt(8), -1).toArray(), [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, -1, -1, -1],
    ]);
    assert.deepEqual(
      tensor([1, 2, 3])
        .maskedFill(bool([false, true, false]), scalar(7))
        .toArray(),
      [1, 7, 3],
    );
    assert.deepEqual(
      tensor([1, 2, 3])
        .maskedFill(bool([true, false, true]), 0.5)
        .toArray(),
      [0.5, 2, 0.5],
    );
    // Broadcast mask over rows.
    assert.deepEqual(
      zeros([2, 2])
        .maskedFill(bool([true, false]), 1)
        .toArray(),
      [
        [1, 0],
        [1, 0],
      ],
    );
    const c = bool([true, false, true]);
    assert.deepEqual(where(c, tensor([1, 2, 3]), tensor([10, 20, 30])).toArray(), [1, 20, 3]);
    const w = where(c, tensor([1.5, 2.5, 3.5]), 0);
    assert.equal(w.dtype, "float32", "a plain number is a wrapped scalar and does not promote");
    assert.deepEqual(w.toArray(), [1.5, 0, 3.5]);
    assert.deepEqual(where(bool([[true], [false]]), tensor([1, 2]), -1).toArray(), [
      [1, 2],
      [-1, -1],
    ]);
  });

  test("pad: constant, reflect, replicate", () => {
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    // [left, right, top, bottom]
    assert.deepEqual(F.pad(a, [1, 0, 0, 1], "constant", 9).toArray(), [
      [9, 1, 2],
      [9, 3, 4],
      [9, 9, 9],
    ]);
    assert.deepEqual(F.pad(tensor([1, 2, 3]), [-1, 2]).toArray(), [2, 3, 0, 0]);
    const x = tensor([
      [
        [
          [1, 2, 3],
          [4, 5, 6],
          [7, 8, 9],
        ],
      ],
    ]);
    assert.deepEqual(F.pad(x, [1, 1, 1, 0], "reflect").toArray(), [
      [
        [
          [5, 4, 5, 6, 5],
          [2, 1, 2, 3, 2],
          [5, 4, 5, 6, 5],
          [8, 7, 8, 9, 8],
        ],
      ],
    ]);
    assert.deepEqual(F.pad(x, [2, 0, 0, 1], "replicate").toArray(), [
      [
        [
          [1, 1, 1, 2, 3],
          [4, 4, 4, 5, 6],
          [7, 7, 7, 8, 9],
          [7, 7, 7, 8, 9],
        ],
      ],
    ]);
  });

  test("repeat, flip, roll", () => {
    assert.deepEqual(tensor([1, 2]).repeat(2, 2).toArray(), [
      [1, 2, 1, 2],
      [1, 2, 1, 2],
    ]);
    assert.deepEqual(
      tensor([[1], [2]])
        .repeat(1, 3)
        .toArray(),
      [
        [1, 1, 1],
        [2, 2, 2],
      ],
    );
    const x = m34();
    assert.deepEqual(x.flip(0).toArray(), [
      [8, 9, 10, 11],
      [4, 5, 6, 7],
      [0, 1, 2, 3],
    ]);
    assert.deepEqual(x.flip([0, 1]).toFlatArray(), [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual(tensor([1, 2, 3, 4, 5]).roll(2).toArray(), [4, 5, 1, 2, 3]);
    assert.deepEqual(tensor([1, 2, 3, 4, 5]).roll(-1).toArray(), [2, 3, 4, 5, 1]);
    assert.deepEqual(arange(6).reshape(2, 3).roll(1).toArray(), [
      [5, 0, 1],
      [2, 3, 4],
    ]);
    assert.deepEqual(arange(6).reshape(2, 3).roll(1, 1).toArray(), [
      [2, 0, 1],
      [5, 3, 4],
    ]);
    assert.deepEqual(arange(6).reshape(2, 3).roll([1, -1], [0, 1]).toArray(), [
      [4, 5, 3],
      [1, 2, 0],
    ]);
  });
});

describe("elementwise math", () => {
  const xs = [-1.5, -0.25, 0.5, 2];
  const ps = [0.25, 0.5, 1.5, 3];

  test("add, sub with alpha; mul, div", () => {
    const a = tensor([1, 2, 3]);
    const b = tensor([10, 20, 30]);
    assert.deepEqual(a.add(b).toArray(), [11, 22, 33]);
    assert.deepEqual(a.add(b, 0.5).toArray(), [6, 12, 18]);
    assert.deepEqual(a.add(1).toArray(), [2, 3, 4]);
    assert.deepEqual(a.sub(b).toArray(), [-9, -18, -27]);
    assert.deepEqual(a.sub(b, 2).toArray(), [-19, -38, -57]);
    assert.deepEqual(a.mul(b).toArray(), [10, 40, 90]);
    assert.deepEqual(b.div(a).toArray(), [10, 10, 10]);
    assert.deepEqual(a.div(4).toArray(), [0.25, 0.5, 0.75]);
    assert.deepEqual(
      tensor([[1], [2]])
        .add(tensor([10, 20]))
        .toArray(),
      [
        [11, 21],
        [12, 22],
      ],
    );
  });

  test("type promotion follows PyTorch (plain numbers are wrapped scalars)", () => {
    const i = arange(3);
    assert.deepEqual([i.add(1).dtype, i.add(1).toFlatArray()], ["int64", [1, 2, 3]]);
    assert.deepEqual([i.mul(2).dtype, i.mul(2).toFlatArray()], ["int64", [0, 2, 4]]);
    assert.deepEqual([i.add(1.5).dtype, i.add(1.5).toFlatArray()], ["float32", [1.5, 2.5, 3.5]]);
    assert.deepEqual([i.div(2).dtype, i.div(2).toFlatArray()], ["float32", [0, 0.5, 1]], "div is true division");
    assert.equal(ones([2]).add(f64(1)).dtype, "float32", "a 0-d tensor does not promote a float32 tensor");
    assert.equal(ones([2]).add(f64([1, 1])).dtype, "float64");
    assert.equal(i.add(ones([3])).dtype, "float32");
    assert.equal(bool([true]).add(1).dtype, "int64");
  });

  test("pow with scalar and tensor exponents", () => {
    assertTensorClose(
      tensor(ps).pow(2.5),
      ps.map((p) => p ** 2.5),
    );
    assert.deepEqual(tensor([-2, 3]).pow(3).toArray(), [-8, 27]);
    assertTensorClose(tensor(ps).pow(tensor([2, -1, 0.5, 0])), [0.0625, 2, Math.sqrt(1.5), 1]);
    assert.deepEqual(arange(4).pow(2).toFlatArray(), [0, 1, 4, 9]);
    assert.equal(arange(4).pow(2).dtype, "int64");
  });

  test("unary functions match Math", () => {
    const x = tensor(xs);
    const p = tensor(ps);
    assert.deepEqual(x.neg().toArray(), [1.5, 0.25, -0.5, -2]);
    assert.deepEqual(x.abs().toArray(), [1.5, 0.25, 0.5, 2]);
    assert.deepEqual(tensor([-3, 0, 2]).sign().toArray(), [-1, 0, 1]);
    assert.deepEqual(x.relu().toArray(), [0, 0, 0.5, 2]);
    assertTensorClose(x.exp(), xs.map(Math.exp));
    assertTensorClose(p.log(), ps.map(Math.log));
    assertTensorClose(p.sqrt(), ps.map(Math.sqrt));
    assertTensorClose(p.rsqrt(), [2, Math.SQRT2, 1 / Math.sqrt(1.5), 1 / Math.sqrt(3)]);
    assertTensorClose(x.tanh(), xs.map(Math.tanh));
    assertTensorClose(
      x.sigmoid(),
      xs.map((v) => 1 / (1 + Math.exp(-v))),
    );
    // erf reference values (Abramowitz & Stegun tables).
    assertTensorClose(tensor([0, 0.5, 1, -2]).erf(), [0, 0.5204998778130465, 0.8427007929497149, -0.9953222650189527]);
    assert.deepEqual(tensor([0]).log().toArray(), [Number.NEGATIVE_INFINITY]);
    assert.ok(Number.isNaN(tensor([-1]).sqrt().item()));
  });

  test("clamp, minimum, maximum", () => {
    const x = tensor([-2, -0.5, 0.5, 2]);
    assert.deepEqual(x.clamp(-1, 1).toArray(), [-1, -0.5, 0.5, 1]);
    assert.deepEqual(x.clamp(0).toArray(), [0, 0, 0.5, 2]);
    assert.deepEqual(x.clamp(null, 0).toArray(), [-2, -0.5, 0, 0]);
    assert.deepEqual(x.clamp(tensor([-3, 0, 0, 0]), tensor([3, 3, 0.25, 3])).toArray(), [-2, 0, 0.25, 2]);
    assert.deepEqual(x.clamp(tensor([0, 0, 0, 0])).toArray(), [0, 0, 0.5, 2]);
    const y = tensor([0, 0, 0, 3]);
    assert.deepEqual(x.minimum(y).toArray(), [-2, -0.5, 0, 2]);
    assert.deepEqual(x.maximum(y).toArray(), [0, 0, 0.5, 3]);
    assert.ok(
      Number.isNaN(
        tensor([Number.NaN, 1])
          .maximum(tensor([0, 0]))
          .toFlatArray()[0] as number,
      ),
      "NaN propagates",
    );
  });
});

describe("reductions", () => {
  const x = (): Tensor =>
    tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);

  test("sum and mean with dim and keepdim", () => {
    assert.equal(x().sum().item(), 21);
    assert.deepEqual(x().sum().shape, []);
    assert.deepEqual(x().sum(0).toArray(), [5, 7, 9]);
    const k = x().sum(1, true);
    assert.deepEqual(
      [k.shape, k.toArray()],
      [
        [2, 1],
        [[6], [15]],
      ],
    );
    assert.deepEqual(x().sum([0, 1]).toArray(), 21);
    assert.deepEqual(x().sum(-1).toArray(), [6, 15]);
    assert.equal(x().mean().item(), 3.5);
    assert.deepEqual(x().mean(1).toArray(), [2, 5]);
    const m = x().mean(0, true);
    assert.deepEqual([m.shape, m.toArray()], [[1, 3], [[2.5, 3.5, 4.5]]]);
    const is = arange(5).sum();
    assert.deepEqual([is.dtype, is.item()], ["int64", 10]);
  });

  test("var and std: Bessel correction, dim, keepdim", () => {
    // values 1..6: mean 3.5, sum of squared deviations 17.5
    assertTensorClose(x().var(), [3.5]);
    assertTensorClose(x().var(undefined, { correction: 0 }), [17.5 / 6]);
    assertTensorClose(x().var(1), [1, 1]);
    assertTensorClose(x().var(0, { correction: 0 }), [2.25, 2.25, 2.25]);
    assertTensorClose(x().std(), [Math.sqrt(3.5)]);
    const s = x().std(0, { keepdim: true });
    assert.deepEqual(s.shape, [1, 3]);
    assertTensorClose(s, [Math.sqrt(4.5), Math.sqrt(4.5), Math.sqrt(4.5)]);
  });

  test("norm with p = 1, 2, Infinity", () => {
    const v = tensor([3, -4]);
    assertTensorClose(v.norm(), [5]);
    assertTensorClose(v.norm(1), [7]);
    assertTensorClose(v.norm(Number.POSITIVE_INFINITY), [4]);
    assertTensorClose(x().norm(2, 1), [Math.sqrt(14), Math.sqrt(77)]);
    assertTensorClose(x().norm(1, 0), [5, 7, 9]);
    const k = x().norm(Number.POSITIVE_INFINITY, 1, true);
    assert.deepEqual(
      [k.shape, k.toArray()],
      [
        [2, 1],
        [[3], [6]],
      ],
    );
    assertTensorClose(v.norm(3), [Math.cbrt(27 + 64)]);
  });

  test("max/min overall and along a dim, with indices", () => {
    const y = tensor([
      [1, 9, 3],
      [4, 5, 6],
    ]);
    assert.equal(y.max().item(), 9);
    assert.equal(y.min().item(), 1);
    const [mv, mi] = y.max(1);
    assert.deepEqual([mv.toArray(), mi.toArray(), mi.dtype], [[9, 6], [1, 2], "int64"]);
    const [nv, ni] = y.min(0);
    assert.deepEqual(
      [nv.toArray(), ni.toArray()],
      [
        [1, 5, 3],
        [0, 1, 0],
      ],
    );
    const [kv, ki] = y.max(0, true);
    assert.deepEqual([kv.shape, ki.shape, kv.toArray()], [[1, 3], [1, 3], [[4, 9, 6]]]);
  });

  test("argmax and argmin", () => {
    const y = tensor([
      [1, 9, 3],
      [4, 5, 6],
    ]);
    const a = y.argmax();
    assert.deepEqual([a.dtype, a.shape, a.item()], ["int64", [], 1]);
    assert.equal(y.argmin().item(), 0);
    assert.deepEqual(y.argmax(0).toArray(), [1, 0, 1]);
    assert.deepEqual(y.argmax(1).toArray(), [1, 2]);
    const k = y.argmin(1, true);
    assert.deepEqual(
      [k.shape, k.toArray()],
      [
        [2, 1],
        [[0], [0]],
      ],
    );
  });

  test("topk and sort: values and indices", () => {
    const t = tensor([1, 5, 2, 8, 3]);
    const [tv, ti] = t.topk(2);
    assert.deepEqual(
      [tv.toArray(), ti.toArray()],
      [
        [8, 5],
        [3, 1],
      ],
    );
    const [sv, si] = t.topk(2, -1, false);
    assert.deepEqual(
      [sv.toArray(), si.toArray()],
      [
        [1, 2],
        [0, 2],
      ],
    );
    const [av, ai] = tensor([3, 1, 2]).sort();
    assert.deepEqual([av.toArray(), ai.toArray(), ai.dtype], [[1, 2, 3], [1, 2, 0], "int64"]);
    const [dv, di] = tensor([
      [3, 1],
      [1, 4],
      [2, 0],
    ]).sort(0, true);
    assert.deepEqual(
      [dv.toArray(), di.toArray()],
      [
        [
          [3, 4],
          [2, 1],
          [1, 0],
        ],
        [
          [0, 1],
          [2, 0],
          [1, 2],
        ],
      ],
    );
    const [rv, ri] = tensor([
      [1, 7, 3],
      [9, 2, 4],
    ]).topk(1, 1);
    assert.deepEqual(
      [rv.toArray(), ri.toArray()],
      [
        [[7], [9]],
        [[1], [0]],
      ],
    );
  });

  test("any along a dim, nonzero, bincount", () => {
    const b = bool([
      [true, false],
      [false, false],
    ]);
    assert.deepEqual(b.any(1).toArray(), [true, false]);
    assert.deepEqual(b.any(0).toArray(), [true, false]);
    assert.deepEqual(b.any(1, true).shape, [2, 1]);
    const nz = tensor([
      [0, 1],
      [2, 0],
    ]).nonzero();
    assert.deepEqual(
      [nz.dtype, nz.toArray()],
      [
        "int64",
        [
          [0, 1],
          [1, 0],
        ],
      ],
    );
    assert.deepEqual(zeros([3]).nonzero().shape, [0, 1]);
    assert.deepEqual(long([1, 1, 3]).bincount().toArray(), [0, 2, 0, 1]);
    assert.deepEqual(long([1, 1, 3]).bincount(6).toArray(), [0, 2, 0, 1, 0, 0]);
  });

  test("logsumexp, cumsum, all, any", () => {
    const lse = (v: number[]): number => Math.log(v.reduce((a, b) => a + Math.exp(b), 0));
    assertTensorClose(x().logsumexp(1), [lse([1, 2, 3]), lse([4, 5, 6])]);
    assertTensorClose(x().logsumexp([0, 1]), [lse([1, 2, 3, 4, 5, 6])]);
    assertTensorClose(tensor([1000, 1000]).logsumexp(0), [1000 + Math.LN2], {}, "logsumexp is overflow-safe");
    assert.deepEqual(x().logsumexp(0, true).shape, [1, 3]);
    assert.deepEqual(x().cumsum(1).toArray(), [
      [1, 3, 6],
      [4, 9, 15],
    ]);
    assert.deepEqual(x().cumsum(0).toArray(), [
      [1, 2, 3],
      [5, 7, 9],
    ]);
    assert.equal(arange(4).cumsum(0).dtype, "int64");
    const b = bool([true, false]);
    assert.deepEqual([b.all().dtype, b.all().toArray(), b.any().toArray()], ["bool", false, true]);
    assert.equal(bool([true, true]).all().toArray(), true);
    assert.equal(tensor([0, 0]).any().toArray(), false);
    assert.equal(tensor([1, 2]).all().toArray(), true);
  });
});

describe("comparisons and logical ops", () => {
  test("comparisons with scalars and tensors give bool tensors", () => {
    const a = tensor([1, 2, 3]);
    const b = tensor([3, 2, 1]);
    assert.equal(a.eq(2).dtype, "bool");
    assert.deepEqual(a.eq(2).toArray(), [false, true, false]);
    assert.deepEqual(a.ne(2).toArray(), [true, false, true]);
    assert.deepEqual(a.lt(2).toArray(), [true, false, false]);
    assert.deepEqual(a.le(2).toArray(), [true, true, false]);
    assert.deepEqual(a.gt(2).toArray(), [false, false, true]);
    assert.deepEqual(a.ge(2).toArray(), [false, true, true]);
    assert.deepEqual(a.eq(b).toArray(), [false, true, false]);
    assert.deepEqual(a.lt(b).toArray(), [true, false, false]);
    assert.deepEqual(a.ge(b).toArray(), [false, true, true]);
    assert.deepEqual(
      arange(3)
        .eq(tensor([0, 5, 2]))
        .toArray(),
      [true, false, true],
    );
    assert.deepEqual(
      tensor([Number.NaN])
        .eq(tensor([Number.NaN]))
        .toArray(),
      [false],
    );
  });

  test("logical and, or, xor, not", () => {
    const p = bool([true, true, false, false]);
    const q = bool([true, false, true, false]);
    assert.deepEqual(p.logicalAnd(q).toArray(), [true, false, false, false]);
    assert.deepEqual(p.logicalOr(q).toArray(), [true, true, true, false]);
    assert.deepEqual(p.logicalXor(q).toArray(), [false, true, true, false]);
    assert.deepEqual(p.logicalNot().toArray(), [false, false, true, true]);
    assert.deepEqual(tensor([0, 2.5]).logicalNot().toArray(), [true, false], "nonzero is true");
    assert.equal(tensor([0, 2.5]).logicalAnd(tensor([1, 1])).dtype, "bool");
  });
});

describe("linear algebra", () => {
  test("matmul, mm, bmm, einsum", () => {
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    const b = tensor([
      [5, 6],
      [7, 8],
    ]);
    const ab = [
      [19, 22],
      [43, 50],
    ];
    assert.deepEqual(a.matmul(b).toArray(), ab);
    assert.deepEqual(a.mm(b).toArray(), ab);
    assert.deepEqual(a.matmul(tensor([1, 1])).toArray(), [3, 7]);
    assert.deepEqual(tensor([1, 1]).matmul(a).toArray(), [4, 6]);
    assert.deepEqual(
      tensor([1, 2, 3])
        .matmul(tensor([4, 5, 6]))
        .toArray(),
      32,
    );
    assert.deepEqual(
      stack([a, b])
        .bmm(stack([b, a]))
        .toArray(),
      [
        ab,
        [
          [23, 34],
          [31, 46],
        ],
      ],
    );
    assert.deepEqual(stack([a, b]).matmul(eye(2)).toArray(), [a.toArray(), b.toArray()]);
    assert.deepEqual(einsum("ij,jk->ik", a, b).toArray(), ab);
    assert.deepEqual(einsum("ii->", a).toArray(), 5);
    assert.deepEqual(einsum("i,j->ij", tensor([1, 2]), tensor([3, 4, 5])).toArray(), [
      [3, 4, 5],
      [6, 8, 10],
    ]);
    assert.deepEqual(einsum("ij->ji", a).toArray(), [
      [1, 3],
      [2, 4],
    ]);
  });
});

describe("in-place ops", () => {
  test("add_, sub_, mul_, div_ modify the tensor and return it", () => {
    const x = tensor([1, 2, 3]);
    assert.equal(x.add_(tensor([1, 1, 1]), 2), x);
    assert.deepEqual(x.toArray(), [3, 4, 5]);
    x.sub_(tensor([1, 2, 3]), 0.5);
    assert.deepEqual(x.toArray(), [2.5, 3, 3.5]);
    x.mul_(2).div_(tensor([5, 6, 7]));
    assert.deepEqual(x.toArray(), [1, 1, 1]);
    x.add_(1).sub_(0.5);
    assert.deepEqual(x.toArray(), [1.5, 1.5, 1.5]);
  });

  test("in-place ops create no new tensors", () => {
    const x = ones([3]);
    const y = tensor([1, 2, 3]);
    const before = memoryStats().liveTensors;
    x.add_(y).mul_(2).addcmul_(y, y).clamp_(0, 100).fill_(1).zero_();
    assert.equal(memoryStats().liveTensors, before);
  });

  test("addcmul_, addcdiv_, lerp_", () => {
    assert.deepEqual(
      tensor([1, 1])
        .addcmul_(tensor([2, 3]), tensor([4, 5]), 0.5)
        .toArray(),
      [5, 8.5],
    );
    assert.deepEqual(
      tensor([1, 1])
        .addcmul_(tensor([2, 3]), tensor([4, 5]))
        .toArray(),
      [9, 16],
    );
    assertTensorClose(tensor([1, 1]).addcdiv_(tensor([2, 3]), tensor([4, 5]), 2), [2, 2.2]);
    assert.deepEqual(
      tensor([0, 10])
        .lerp_(tensor([10, 20]), 0.25)
        .toArray(),
      [2.5, 12.5],
    );
    assert.deepEqual(
      tensor([0, 10])
        .lerp_(tensor([10, 20]), 1)
        .toArray(),
      [10, 20],
    );
  });

  test("erfinv_", () => {
    // inverse error function reference values
    assertTensorClose(f64([0, 0.5, -0.9]).erfinv_(), [0, 0.4769362762044699, -1.1630871536766743], { atol: 1e-12 });
  });

  test("clamp_, sqrt_, relu_, maskedFill_", () => {
    assert.deepEqual(tensor([-1, 0.5, 2]).clamp_(0, 1).toArray(), [0, 0.5, 1]);
    assert.deepEqual(tensor([-1, 0.5, 2]).clamp_(null, 0).toArray(), [-1, 0, 0]);
    assert.deepEqual(tensor([-1, 0.5, 2]).clamp_(0).toArray(), [0, 0.5, 2]);
    assert.deepEqual(tensor([4, 9]).sqrt_().toArray(), [2, 3]);
    assert.deepEqual(tensor([-4, 9]).relu_().toArray(), [0, 9]);
    assert.deepEqual(
      tensor([1, 2, 3])
        .maskedFill_(bool([true, false, true]), -1)
        .toArray(),
      [-1, 2, -1],
    );
  });

  test("copy_ broadcasts and converts; zero_ and fill_", () => {
    const x = zeros([2, 3]);
    x.copy_(tensor([1, 2, 3]));
    assert.deepEqual(x.toArray(), [
      [1, 2, 3],
      [1, 2, 3],
    ]);
    x.copy_(long([[7], [8]]));
    assert.deepEqual(
      [x.dtype, x.toArray()],
      [
        "float32",
        [
          [7, 7, 7],
          [8, 8, 8],
        ],
      ],
    );
    x.zero_();
    assert.deepEqual(x.toFlatArray(), [0, 0, 0, 0, 0, 0]);
    x.fill_(2.5);
    assert.deepEqual(x.toFlatArray(), [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
    const i = zeros([2], { dtype: "int32" }).fill_(7);
    assert.deepEqual([i.dtype, i.toFlatArray()], ["int32", [7, 7]]);
    assert.deepEqual(zeros([2], { dtype: "bool" }).fill_(true).toArray(), [true, true]);
  });

  test("in-place writes are visible through views", () => {
    const x = zeros([2, 2]);
    const row = x.select(0, 1);
    row.add_(5);
    assert.deepEqual(x.toArray(), [
      [0, 0],
      [5, 5],
    ]);
  });

  test("uniform_ stays in range, normal_ has the requested moments", () => {
    manualSeed(21);
    const u = empty([10000]).uniform_(-2, 3);
    const su = stats(u.toFlatArray());
    assert.ok(su.min >= -2 && su.max < 3, `uniform_ out of range: ${su.min}..${su.max}`);
    assert.ok(Math.abs(su.mean - 0.5) < 0.05, `uniform_ mean ${su.mean}`);
    const un = stats(empty([10000]).uniform_().toFlatArray());
    assert.ok(un.min >= 0 && un.max < 1);
    const n = empty([10000], { dtype: "float64" }).normal_(5, 2);
    const sn = stats(n.toFlatArray());
    assert.ok(Math.abs(sn.mean - 5) < 0.1, `normal_ mean ${sn.mean}`);
    assert.ok(Math.abs(sn.std - 2) < 0.1, `normal_ std ${sn.std}`);
  });
});

describe("random state", () => {
  test("same seed, identical values; different seed, different values", () => {
    const draw = (seed: number): number[][] => {
      manualSeed(seed);
      return [
        randn([5]).toFlatArray(),
        rand([5]).toFlatArray(),
        randint(0, 1000, [5]).toFlatArray(),
        randperm(10).toFlatArray(),
        F.dropout(ones([20]), 0.5).toFlatArray(),
        empty([5]).uniform_().toFlatArray(),
        empty([5]).normal_().toFlatArray(),
        randnLike(zeros([3], { dtype: "float64" })).toFlatArray(),
      ];
    };
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42)[0], draw(43)[0]);
  });

  test("manualSeed(0); randn([3]) matches PyTorch's values", () => {
    manualSeed(0);
    // torch.manual_seed(0); torch.randn(3)
    assertTensorClose(randn([3]), [1.5409960746765137, -0.293428897857666, -2.1787893772125244], { atol: 1e-6, rtol: 0 });
    manualSeed(0);
    // torch.manual_seed(0); torch.rand(3) -> tensor([0.4963, 0.7682, 0.0885])
    assertTensorClose(rand([3]), [0.4963, 0.7682, 0.0885], { atol: 1e-4, rtol: 0 });
  });
});

describe("autograd", () => {
  test("noGrad records no history and restores grad mode", () => {
    const x = ones([3], { requiresGrad: true });
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      return x.mul(2);
    });
    assert.equal(isGradEnabled(), true);
    assert.equal(y.requiresGrad, false);
    assert.equal(y.gradFn, null);
    const z = x.mul(2);
    assert.equal(z.requiresGrad, true);
    assert.equal(z.gradFn, "MulBackward0");
    assert.equal(z.isLeaf, false);
    assert.throws(() =>
      noGrad(() => {
        throw new Error("inside");
      }),
    );
    assert.equal(isGradEnabled(), true, "grad mode restored after a throw");
    const w = noGrad(() => enableGrad(() => x.mul(3)));
    assert.equal(w.requiresGrad, true, "enableGrad inside noGrad records again");
    assert.equal(
      noGrad(() => x.detach().requiresGrad),
      false,
    );
  });

  test("in-place updates of a leaf under noGrad (optimizer step)", () => {
    const p = tensor([1, 2], { requiresGrad: true });
    noGrad(() => p.sub_(tensor([0.5, 0.5])));
    assert.deepEqual(p.toArray(), [0.5, 1.5]);
    assert.equal(p.requiresGrad, true);
    assert.equal(p.isLeaf, true);
  });

  test("autograd.grad returns gradients and leaves .grad untouched", () => {
    const x = tensor([1, -2, 3], { requiresGrad: true });
    const y = x.mul(x).sum();
    const [g] = autograd.grad(y, x);
    assert.deepEqual(g?.toArray(), [2, -4, 6]);
    assert.equal(x.grad === null, true, ".grad is unset");
    x.mul(3).sum().backward();
    assert.deepEqual(x.grad?.toArray(), [3, 3, 3]);
    const [g2] = autograd.grad(x.mul(x).sum(), [x]);
    assert.deepEqual(g2?.toArray(), [2, -4, 6]);
    assert.deepEqual(x.grad?.toArray(), [3, 3, 3], "autograd.grad does not accumulate into .grad");
  });

  test("autograd.grad with gradOutputs, allowUnused, createGraph", () => {
    const x = tensor([1, 2], { requiresGrad: true });
    const u = tensor([5, 5], { requiresGrad: true });
    const [g] = autograd.grad(x.mul(3), x, { gradOutputs: [tensor([1, 10])] });
    assert.deepEqual(g?.toArray(), [3, 30]);
    const [gx, gu] = autograd.grad(x.sum(), [x, u], { allowUnused: true });
    assert.deepEqual(gx?.toArray(), [1, 1]);
    assert.equal(gu, null);
    const [d1] = autograd.grad(x.pow(3).sum(), x, { createGraph: true });
    assert.deepEqual(d1?.toArray(), [3, 12]);
    const [d2] = autograd.grad((d1 as Tensor).sum(), x);
    assert.deepEqual(d2?.toArray(), [6, 12], "second derivative 6x");
  });

  test("backward with a gradient argument, accumulation and retainGraph", () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(tensor([1, 2, 3]));
    y.backward(tensor([1, 10, 100]));
    assert.deepEqual(x.grad?.toArray(), [1, 20, 300]);
    const z = x.mul(x).sum();
    z.backward(undefined, { retainGraph: true });
    assert.deepEqual(x.grad?.toArray(), [3, 24, 306], "gradients accumulate into .grad");
    z.backward();
    assert.deepEqual(x.grad?.toArray(), [5, 28, 312], "retainGraph allows a second backward");
    x.grad = null;
    assert.equal(x.grad === null, true, ".grad is unset");
    x.grad = tensor([7, 7, 7]);
    assert.deepEqual(x.grad?.toArray(), [7, 7, 7]);
  });

  test("backward through the tensor API into .grad of several leaves", () => {
    const w = tensor([[1, 2]], { requiresGrad: true });
    const b = tensor([0.5], { requiresGrad: true });
    const xin = tensor([[3], [4]]);
    // loss = sum((w @ x + b)^2) with w @ x = 11
    w.matmul(xin).add(b).pow(2).sum().backward();
    assert.deepEqual(w.grad?.toArray(), [[2 * 11.5 * 3, 2 * 11.5 * 4]]);
    assert.deepEqual(b.grad?.toArray(), [23]);
  });
});

describe("threads", () => {
  test("setNumThreads / getNumThreads", () => {
    const prev = getNumThreads();
    assert.ok(Number.isInteger(prev) && prev >= 1);
    try {
      setNumThreads(1);
      assert.equal(getNumThreads(), 1);
      assert.deepEqual(
        ones([2, 2])
          .matmul(ones([2, 2]))
          .toFlatArray(),
        [2, 2, 2, 2],
      );
    } finally {
      setNumThreads(prev);
    }
    assert.equal(getNumThreads(), prev);
  });
});

describe("nn functional forward", () => {
  const lse = (v: number[]): number => Math.log(v.reduce((a, b) => a + Math.exp(b), 0));

  test("softmax and logSoftmax", () => {
    const z = [1, 2, 3];
    const e = z.map((v) => Math.exp(v - lse(z)));
    assertTensorClose(F.softmax(tensor([z, z]), 1), [...e, ...e]);
    assertTensorClose(F.softmax(tensor([[1], [1]]), 0), [0.5, 0.5]);
    assertTensorClose(
      F.logSoftmax(tensor(z), 0),
      z.map((v) => v - lse(z)),
    );
  });

  test("gelu exact and tanh approximation", () => {
    // x * Phi(x) with Phi(1) = 0.8413447460685429, Phi(2) = 0.9772498680518208
    assertTensorClose(F.gelu(f64([-1, 0, 1, 2])), [-0.15865525393145707, 0, 0.8413447460685429, 1.9544997361036416], {
      atol: 1e-10,
    });
    const approx = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    assertTensorClose(F.gelu(f64([-1, 0, 1, 2]), "tanh"), [-1, 0, 1, 2].map(approx), { atol: 1e-12 });
  });

  test("crossEntropy: reductions, class weights, ignoreIndex, label smoothing", () => {
    const logits = [
      [1, 2, 3],
      [1, 1, 1],
      [0, 2, -1],
    ];
    const target = [2, 0, 1];
    const per = logits.map((z, i) => lse(z) - (z[target[i] as number] as number));
    const L = tensor(logits, { dtype: "float64" });
    const T = long(target);
    assertTensorClose(F.crossEntropy(L, T, { reduction: "none" }), per);
    assertTensorClose(F.crossEntropy(L, T), [per.reduce((a, b) => a + b) / 3]);
    assertTensorClose(F.crossEntropy(L, T, { reduction: "sum" }), [per.reduce((a, b) => a + b)]);
    const w = [0.5, 2, 1];
    const wt = target.map((t) => w[t] as number);
    const weighted = per.reduce((a, l, i) => a + l * (wt[i] as number), 0) / wt.reduce((a, b) => a + b);
    assertTensorClose(F.crossEntropy(L, T, { weight: f64(w) }), [weighted]);
    assertTensorClose(F.crossEntropy(L, long([2, -100, 1])), [((per[0] as number) + (per[2] as number)) / 2]);
    assertTensorClose(F.crossEntropy(L, long([2, 0, 1]), { ignoreIndex: 0 }), [((per[0] as number) + (per[2] as number)) / 2]);
    // Label smoothing eps: (1 - eps) * nll + eps * mean over classes of -log p_c.
    const eps = 0.1;
    const smooth = logits.map((z, i) => (1 - eps) * (per[i] as number) + (eps * z.reduce((a, zc) => a + lse(z) - zc, 0)) / 3);
    assertTensorClose(F.crossEntropy(L, T, { labelSmoothing: eps, reduction: "none" }), smooth);
    assertTensorClose(F.crossEntropy(L, T, { labelSmoothing: eps }), [smooth.reduce((a, b) => a + b) / 3]);
  });

  test("nllLoss, klDiv, mseLoss", () => {
    const lp = f64([
      [-1, -2, -3],
      [-0.5, -1.5, -2.5],
    ]);
    assertTensorClose(F.nllLoss(lp, long([1, 2])), [(2 + 2.5) / 2]);
    assertTensorClose(F.nllLoss(lp, long([1, 2]), { reduction: "sum" }), [4.5]);
    assertTensorClose(F.nllLoss(lp, long([1, 2]), { reduction: "none" }), [2, 2.5]);
    const input = [
      [-1, -2],
      [-0.5, -0.25],
    ];
    const target = [
      [0.25, 0.75],
      [0.5, 0.5],
    ];
    const terms = input.flatMap((r, i) => r.map((v, j) => (target[i]?.[j] as number) * (Math.log(target[i]?.[j] as number) - v)));
    const sum = terms.reduce((a, b) => a + b);
    assertTensorClose(F.klDiv(f64(input), f64(target), { reduction: "none" }), terms);
    assertTensorClose(F.klDiv(f64(input), f64(target), { reduction: "sum" }), [sum]);
    assertTensorClose(F.klDiv(f64(input), f64(target)), [sum / 4]);
    assertTensorClose(F.klDiv(f64(input), f64(target), { reduction: "batchmean" }), [sum / 2]);
    const logT = target.map((r) => r.map(Math.log));
    assertTensorClose(F.klDiv(f64(input), f64(logT), { reduction: "batchmean", logTarget: true }), [sum / 2]);
    assertTensorClose(F.mseLoss(tensor([1, 2, 3]), tensor([1, 4, 0])), [13 / 3]);
    assertTensorClose(F.mseLoss(tensor([1, 2, 3]), tensor([1, 4, 0]), { reduction: "sum" }), [13]);
    assertTensorClose(F.mseLoss(tensor([1, 2, 3]), tensor([1, 4, 0]), { reduction: "none" }), [0, 4, 9]);
  });

  test("conv2d: plain, bias, stride/padding, dilation, groups", () => {
    const x = arange(1, 10).float().reshape(1, 1, 3, 3);
    const diff = tensor([
      [
        [
          [1, 0],
          [0, -1],
        ],
      ],
    ]);
    assert.deepEqual(F.conv2d(x, diff).toArray(), [
      [
        [
          [-4, -4],
          [-4, -4],
        ],
      ],
    ]);
    assert.deepEqual(F.conv2d(x, diff, tensor([1])).toArray(), [
      [
        [
          [-3, -3],
          [-3, -3],
        ],
      ],
    ]);
    const box = ones([1, 1, 2, 2]);
    assert.deepEqual(F.conv2d(x, box, null, { stride: 2, padding: 1 }).toArray(), [
      [
        [
          [1, 5],
          [11, 28],
        ],
      ],
    ]);
    assert.deepEqual(F.conv2d(x, box, null, { dilation: 2 }).toArray(), [[[[20]]]]);
    const two = cat([x, x.mul(10)], 1);
    const g = F.conv2d(two, tensor([[[[2]]], [[[3]]]]), null, { groups: 2 });
    const xs = [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ];
    assert.deepEqual(g.toArray(), [[xs.map((r) => r.map((v) => 2 * v)), xs.map((r) => r.map((v) => 30 * v))]]);
    assert.deepEqual(F.conv2d(x, box, null, { stride: [1, 2], padding: [0, 1] }).toArray(), [
      [
        [
          [1 + 4, 2 + 3 + 5 + 6],
          [4 + 7, 5 + 6 + 8 + 9],
        ],
      ],
    ]);
  });

  test("linear, batchNorm (eval and train with running stats), layerNorm", () => {
    const W = tensor([
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    assert.deepEqual(F.linear(tensor([[1, 2]]), W, tensor([0, 0, 1])).toArray(), [[1, 2, 4]]);
    assert.deepEqual(F.linear(tensor([[1, 2]]), W).toArray(), [[1, 2, 3]]);

    // [N=2, C=2] input
    const x = f64([
      [1, 10],
      [3, 20],
    ]);
    const eps = 1e-5;
    const rm = f64([1, 5]);
    const rv = f64([4, 25]);
    const wt = f64([2, 1]);
    const bs = f64([0.5, -1]);
    const evalOut = F.batchNorm(x, rm, rv, { weight: wt, bias: bs, training: false });
    const ev = (v: number, c: number): number => ((v - [1, 5][c]!) / Math.sqrt([4, 25][c]! + eps)) * [2, 1][c]! + [0.5, -1][c]!;
    assertTensorClose(evalOut, [ev(1, 0), ev(10, 1), ev(3, 0), ev(20, 1)], { atol: 1e-12 });
    assert.deepEqual(rm.toFlatArray(), [1, 5], "eval mode leaves running stats alone");

    const trainOut = F.batchNorm(x, rm, rv, { training: true, momentum: 0.1 });
    // channel 0: mean 2, biased var 1; channel 1: mean 15, biased var 25
    const tr = (v: number, m: number, s2: number): number => (v - m) / Math.sqrt(s2 + eps);
    assertTensorClose(trainOut, [tr(1, 2, 1), tr(10, 15, 25), tr(3, 2, 1), tr(20, 15, 25)], { atol: 1e-12 });
    // running stats updated in place: (1 - m) * old + m * batch, with the unbiased batch variance.
    assertTensorClose(rm, [0.9 * 1 + 0.1 * 2, 0.9 * 5 + 0.1 * 15], { atol: 1e-12 });
    assertTensorClose(rv, [0.9 * 4 + 0.1 * 2, 0.9 * 25 + 0.1 * 50], { atol: 1e-12 });

    const ln = F.layerNorm(f64([[1, 2, 3, 4]]), [4], f64([1, 1, 2, 2]), f64([0, 0, 0, 1]));
    const n = [1, 2, 3, 4].map((v) => (v - 2.5) / Math.sqrt(1.25 + 1e-5));
    assertTensorClose(ln, [n[0]!, n[1]!, 2 * n[2]!, 2 * n[3]! + 1], { atol: 1e-12 });
  });

  test("pooling: avg, max, adaptive", () => {
    const x = arange(1, 17).float().reshape(1, 1, 4, 4);
    assert.deepEqual(F.avgPool2d(x, 2).toArray(), [
      [
        [
          [3.5, 5.5],
          [11.5, 13.5],
        ],
      ],
    ]);
    assert.deepEqual(F.maxPool2d(x, 2).toArray(), [
      [
        [
          [6, 8],
          [14, 16],
        ],
      ],
    ]);
    assert.deepEqual(F.maxPool2d(x, 3, { stride: 1 }).toArray(), [
      [
        [
          [11, 12],
          [15, 16],
        ],
      ],
    ]);
    // padding 1, kernel 2, stride 2 on 1..9: windows see 1, 2+3, 4+7, 5+6+8+9 cells.
    const y = arange(1, 10).float().reshape(1, 1, 3, 3);
    assert.deepEqual(F.avgPool2d(y, 2, { padding: 1 }).toArray(), [
      [
        [
          [1 / 4, 5 / 4],
          [11 / 4, 28 / 4],
        ],
      ],
    ]);
    assert.deepEqual(F.avgPool2d(y, 2, { padding: 1, countIncludePad: false }).toArray(), [
      [
        [
          [1, 2.5],
          [5.5, 7],
        ],
      ],
    ]);
    assert.deepEqual(F.avgPool2d(y, 2, { ceilMode: true }).toArray(), [
      [
        [
          [3, 4.5],
          [7.5, 9],
        ],
      ],
    ]);
    assert.deepEqual(F.adaptiveAvgPool2d(y, 1).toArray(), [[[[5]]]]);
    // 3 -> 2 bins: [0, 2) and [1, 3) on each axis.
    assert.deepEqual(F.adaptiveAvgPool2d(y, 2).toArray(), [
      [
        [
          [3, 4],
          [6, 7],
        ],
      ],
    ]);
    assert.deepEqual(F.adaptiveMaxPool2d(y, [2, 2]).toArray(), [
      [
        [
          [5, 6],
          [8, 9],
        ],
      ],
    ]);
  });

  test("interpolate: nearest, bilinear, bicubic, antialias", () => {
    const a = tensor([
      [
        [
          [1, 2],
          [3, 4],
        ],
      ],
    ]);
    assert.deepEqual(F.interpolate(a, { scaleFactor: 2 }).toArray(), [
      [
        [
          [1, 1, 2, 2],
          [1, 1, 2, 2],
          [3, 3, 4, 4],
          [3, 3, 4, 4],
        ],
      ],
    ]);
    assert.deepEqual(F.interpolate(a, { size: [1, 3] }).toArray(), [[[[1, 1, 2]]]]);
    const b = tensor([
      [
        [
          [0, 1],
          [2, 3],
        ],
      ],
    ]);
    assertTensorClose(F.interpolate(b, { size: 3, mode: "bilinear", alignCorners: true }), [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
    // align_corners=False: src = (dst + 0.5) / 2 - 0.5, clamped at 0.
    assertTensorClose(F.interpolate(tensor([[[[0, 1]]]]), { size: [1, 4], mode: "bilinear" }), [0, 0.25, 0.75, 1]);
    // Bicubic (A = -0.75) with clamped borders on a ramp, align_corners=True, src = dst / 2.
    assertTensorClose(
      F.interpolate(tensor([[[[0, 1, 2, 3]]]], { dtype: "float64" }), { size: [1, 7], mode: "bicubic", alignCorners: true }),
      [0, 0.40625, 1, 1.5, 2, 2.59375, 3],
      { atol: 1e-12 },
    );
    // Downsampling a ramp by 2: plain bilinear samples at 0.5 and 2.5; antialias uses a
    // triangle filter of support 2 (weights .75 .75 .25 / 1.75).
    const ramp = tensor([[[[0, 1, 2, 3]]]], { dtype: "float64" });
    assertTensorClose(F.interpolate(ramp, { size: [1, 2], mode: "bilinear" }), [0.5, 2.5], { atol: 1e-12 });
    assertTensorClose(F.interpolate(ramp, { size: [1, 2], mode: "bilinear", antialias: true }), [1.25 / 1.75, 4 / 1.75], {
      atol: 1e-12,
    });
    const c = full([1, 2, 6, 6], 3, { dtype: "float64" });
    assertTensorClose(F.interpolate(c, { size: [3, 4], mode: "bicubic", antialias: true }), new Array(24).fill(3), {
      atol: 1e-12,
    });
  });

  test("oneHot and dropout", () => {
    const o = F.oneHot(long([0, 2]), 3);
    assert.deepEqual(
      [o.dtype, o.toArray()],
      [
        "int64",
        [
          [1, 0, 0],
          [0, 0, 1],
        ],
      ],
    );
    assert.deepEqual(F.oneHot(long([1, 3])).shape, [2, 4]);
    manualSeed(5);
    const d = F.dropout(ones([4000]), 0.25).toFlatArray();
    assert.ok(
      d.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6),
      "kept values are scaled by 1 / (1 - p)",
    );
    const dropped = d.filter((v) => v === 0).length / d.length;
    assert.ok(Math.abs(dropped - 0.25) < 0.03, `dropped fraction ${dropped}`);
    assert.deepEqual(F.dropout(tensor([1, 2]), 0.5, false).toArray(), [1, 2]);
    assert.deepEqual(F.dropout(tensor([1, 2]), 0).toArray(), [1, 2]);
  });
});

describe("ops: no leaks", () => {
  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startTensors);
  });
});
