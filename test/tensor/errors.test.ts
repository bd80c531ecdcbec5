// Bad input must give a readable JS exception that names the problem, must not leak the
// tensors created on the way to the error, and must leave the process usable.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { F } from "../../src/index.js";
import {
  autograd,
  callOp,
  cat,
  cuda,
  type DType,
  einsum,
  manualSeed,
  memoryStats,
  noGrad,
  ones,
  randn,
  scope,
  setNumThreads,
  type Tensor,
  tensor,
  where,
  zeros,
} from "../../src/tensor/index.js";

const startTensors = memoryStats().liveTensors;

function test(name: string, fn: () => void): void {
  it(name, () => {
    scope(fn);
  });
}

/** assert.throws, plus: the failed call left no new live tensor behind. */
function throwsCleanly(fn: () => unknown, expected: RegExp | { name: string; message: RegExp }, what?: string): void {
  const before = memoryStats().liveTensors;
  assert.throws(fn, expected, what);
  assert.equal(memoryStats().liveTensors, before, `${what ?? "the failed call"} leaked a tensor`);
}

/** LibTorch's internal dispatcher dumps and C++ locations are not readable errors. */
function assertReadable(fn: () => unknown, pattern: RegExp): void {
  let message = "";
  try {
    fn();
  } catch (e) {
    message = e instanceof Error ? e.message : String(e);
  }
  assert.match(message, pattern);
  assert.doesNotMatch(
    message,
    /registered at|Exception raised from|\.cpp:\d+/,
    `not a readable message: ${message.slice(0, 300)}`,
  );
  assert.ok(message.length < 500, `message is ${message.length} characters long: ${message.slice(0, 300)}...`);
}

describe("shape errors", () => {
  test("matmul / mm / bmm with mismatched shapes", () => {
    const a = ones([2, 3]);
    const b = ones([4, 2]);
    throwsCleanly(() => a.matmul(a), /shapes cannot be multiplied \(2x3 and 2x3\)/);
    throwsCleanly(() => a.mm(b), /shapes cannot be multiplied \(2x3 and 4x2\)/);
    throwsCleanly(() => a.bmm(a), /batch1 must be a 3D tensor/);
    throwsCleanly(() => einsum("ij,jk->ik", a, a), /einsum\(\): subscript j has size 2 for operand 1/);
  });

  test("add with shapes that do not broadcast", () => {
    const a = ones([2, 3]);
    const b = ones([2, 4]);
    const c = ones([3, 3]);
    throwsCleanly(() => a.add(b), /size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton dimension 1/);
    throwsCleanly(() => a.add_(c), /size of tensor a \(2\) must match the size of tensor b \(3\)/);
    throwsCleanly(() => cat([a, b]), /Sizes of tensors must match except in dimension 0/);
  });

  test("conv2d with the wrong number of input channels or a too small input", () => {
    const x = ones([1, 3, 5, 5]);
    const w = ones([2, 2, 3, 3]);
    throwsCleanly(
      () => F.conv2d(x, w),
      /weight of size \[2, 2, 3, 3\], expected input\[1, 3, 5, 5\] to have 2 channels, but got 3 channels/,
    );
    const small = ones([1, 1, 2, 2]);
    const k3 = ones([1, 1, 3, 3]);
    throwsCleanly(() => F.conv2d(small, k3), /Kernel size can't be greater than actual input size/);
    const a = ones([2, 3]);
    const w45 = ones([4, 5]);
    throwsCleanly(() => F.linear(a, w45), /shapes cannot be multiplied \(2x3 and 5x4\)/);
  });

  test("reshape, view, expand, permute, dims and indices out of range", () => {
    const x = ones([3, 4]);
    const xt = x.T;
    const v = ones([3]);
    throwsCleanly(() => x.reshape(5), /shape '\[5\]' is invalid for input of size 12/);
    throwsCleanly(() => xt.view(12), /view size is not compatible with input tensor's size and stride.*reshape/);
    throwsCleanly(() => v.expand(4, 2), /expanded size of the tensor \(2\) must match the existing size \(3\)/);
    throwsCleanly(() => x.permute(0, 0), /duplicate dims/);
    throwsCleanly(() => x.sum(5), /Dimension out of range \(expected to be in range of \[-2, 1\], but got 5\)/);
    throwsCleanly(() => F.softmax(x, 2), /Dimension out of range/);
    throwsCleanly(() => x.select(0, 10), /index 10 out of range/);
    throwsCleanly(() => x.narrow(1, 2, 5), /start \(2\) \+ length \(5\) exceeds dimension size \(4\)/);
    throwsCleanly(() => x.topk(10), /k out of range/);
  });

  test("index tensors out of bounds", () => {
    const x = ones([3, 4]);
    const i5 = tensor([5], { dtype: "int64" });
    const i10 = tensor([10], { dtype: "int64" });
    const g = tensor([[4], [0], [0]], { dtype: "int64" });
    const s = tensor([[5, 0, 0, 0]], { dtype: "int64" });
    const src = ones([1, 4]);
    const one = ones([1]);
    const z3 = zeros([3]);
    const z32 = zeros([3, 2]);
    const row = ones([1, 2]);
    const floatIndex = ones([3]);
    throwsCleanly(() => x.index([i10]), /index 10 is out of bounds for dimension 0 with size 3/);
    throwsCleanly(() => x.gather(1, g), /index 4 is out of bounds for dimension 1/);
    throwsCleanly(() => x.scatter(0, s, src), /index 5 is out of bounds/);
    throwsCleanly(() => z3.scatterAdd(0, i5, one), /index 5 is out of bounds/);
    throwsCleanly(() => x.indexSelect(0, i5), /index out of range/);
    throwsCleanly(() => z32.indexAdd(0, i5, row), /index out of range/);
    throwsCleanly(() => x.index([floatIndex]), /indices must be long, byte or bool tensors/);
  });

  test("item() of a tensor with several elements", () => {
    const x = ones([2, 3]);
    throwsCleanly(() => x.item(), /item: tensor with 6 elements cannot be converted to a number/);
  });
});

describe("dtype errors", () => {
  test("crossEntropy / nllLoss with float class targets or classes out of range", () => {
    const logits = randn([2, 3]);
    const floatTarget = tensor([0, 1]);
    const t7 = tensor([7, 0], { dtype: "int64" });
    const tNeg = tensor([0, -3], { dtype: "int64" });
    throwsCleanly(() => F.crossEntropy(logits, floatTarget), /expected scalar type Long but found Float/);
    throwsCleanly(() => F.nllLoss(logits, floatTarget), /expected scalar type Long but found Float/);
    throwsCleanly(() => F.crossEntropy(logits, t7), /Target 7 is out of bounds/);
    throwsCleanly(() => F.crossEntropy(logits, tNeg), /Target -3 is out of bounds/);
  });

  test("unknown dtypes are named", () => {
    const bad = "float8" as DType;
    const x = ones([2]);
    throwsCleanly(() => zeros([2], { dtype: bad }), /unknown dtype 'float8'; expected one of .*float32/);
    throwsCleanly(() => x.to(bad), /unknown dtype 'float8'/);
    throwsCleanly(() => tensor([1, 2], { dtype: bad }), /unknown dtype 'float8'/);
  });

  test("integer tensors cannot require grad; float-only reductions say so", () => {
    const i = tensor([1, 2], { dtype: "int64" });
    throwsCleanly(() => i.requiresGrad_(), /Only Tensors of floating point .*can require gradients/);
    throwsCleanly(() => i.mean(), /mean\(\): could not infer output dtype.*Long/);
  });

  test("masks must be bool (a float mask would be read as raw bytes)", () => {
    const x = zeros([4]);
    const floatMask = tensor([1, 0, 2.5, 0]);
    const value = tensor(7);
    throwsCleanly(() => x.maskedFill(floatMask, 7), /mask.*bool/i, "maskedFill with a float mask");
    throwsCleanly(() => x.maskedFill_(floatMask, 7), /mask.*bool/i, "maskedFill_ with a float mask");
    throwsCleanly(() => x.maskedFill(floatMask, value), /mask.*bool/i, "maskedFill with a float mask and a tensor value");
    const cond = ones([4]);
    throwsCleanly(() => where(cond, x, x), /where expected condition to be a boolean tensor, but got a tensor with dtype Float/);
  });
});

describe("argument errors", () => {
  test("unknown named argument", () => {
    const a = ones([2]);
    throwsCleanly(() => callOp("add", [a, a], { beta: 2 }), {
      name: "TypeError",
      message: /aten::add\.Tensor: unknown argument 'beta'/,
    });
  });

  test("wrong argument types name the op, the argument and the value", () => {
    const x = ones([2, 3]);
    throwsCleanly(() => x.transpose("a" as unknown as number, 1), {
      name: "TypeError",
      message: /aten::transpose\.int: argument 'dim0' must be an integer, got "a"/,
    });
    throwsCleanly(() => x.reshape(1.5), {
      name: "TypeError",
      message: /aten::reshape: argument 'shape' must be an integer, got 1\.5/,
    });
    throwsCleanly(() => x.add({} as unknown as Tensor), {
      name: "TypeError",
      message: /argument 'other' must be a tensor, got an object/,
    });
    throwsCleanly(() => x.add(1, "x" as unknown as number), {
      name: "TypeError",
      message: /argument 'alpha' must be a number, got "x"/,
    });
    throwsCleanly(() => callOp("full", [[2], "a"]), {
      name: "TypeError",
      message: /argument 'fill_value' must be a number, got "a"/,
    });
    throwsCleanly(() => callOp("neg", [x, x]), { name: "TypeError", message: /aten::neg: takes at most 1 arguments, got 2/ });
    throwsCleanly(() => callOp("add", [x]), { name: "TypeError", message: /aten::add\.Tensor: missing argument 'other'/ });
  });

  test("integers beyond the int64 range are rejected, not wrapped around", () => {
    throwsCleanly(() => zeros([1e20]), /zeros: shape\[0\] = 100000000000000000000 is not a non-negative integer/);
    const x = ones([3]);
    // 2^64 does not fit an int64: the binding must reject it (like 1.5), not let a
    // static_cast turn it into INT64_MIN and report that number.
    const messageOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        return (e as Error).message;
      }
      return "(no error)";
    };
    assert.doesNotMatch(
      messageOf(() => x.select(0, 2 ** 64)),
      /-9223372036854775808|no error/,
    );
    assert.doesNotMatch(
      messageOf(() => x.narrow(0, 0, 2 ** 63)),
      /-9223372036854775808|no error/,
    );
    assert.doesNotMatch(
      messageOf(() => x.reshape(1e19)),
      /is_symbolic|no error/,
    );
  });

  test("functional option errors", () => {
    const x = ones([1, 1, 4, 4]);
    const small = ones([1, 1, 2, 2]);
    const x2 = ones([2, 3]);
    const z4 = zeros([4]);
    const o4 = ones([4]);
    const neg = tensor([-1, 2], { dtype: "int64" });
    const threeD = ones([1, 2, 2]);
    throwsCleanly(() => F.interpolate(x, {}), /give exactly one of size and scaleFactor/);
    throwsCleanly(() => F.interpolate(x, { size: 2, antialias: true }), /antialias needs mode 'bilinear' or 'bicubic'/);
    throwsCleanly(() => F.mseLoss(x, x, { reduction: "avg" as "mean" }), /reduction must be 'none', 'mean' or 'sum', got 'avg'/);
    throwsCleanly(() => F.dropout(x, 2), { name: "RangeError", message: /dropout: p must be in \[0, 1\], got 2/ });
    throwsCleanly(() => F.pad(x, [1, 1], "reflect"), /pad: mode 'reflect' takes 4 padding values \(2-D\), got 2/);
    throwsCleanly(
      () => F.pad(small, [3, 3, 3, 3], "reflect"),
      /Padding size should be less than the corresponding input dimension/,
    );
    throwsCleanly(() => F.avgPool2d(small, 3), /Output size is too small/);
    throwsCleanly(() => F.maxPool2d(x, 2, { padding: 2 }), /pad should be at most half of kernel size/);
    throwsCleanly(() => F.layerNorm(x2, [4]), /normalized_shape=\[4\], expected input with shape \[\*, 4\]/);
    throwsCleanly(() => F.batchNorm(x2, z4, o4), /running_mean should contain 3 elements not 4/);
    throwsCleanly(() => F.oneHot(neg, 3), /Class values must be non-negative/);
    assertReadable(() => F.interpolate(threeD, { size: 4, mode: "bilinear" }), /4-D|\[N, C, H, W\]/);
    assertReadable(() => F.interpolate(threeD, { size: 4 }), /4-D|\[N, C, H, W\]/);
  });
});

describe("creation errors", () => {
  test("ragged nested arrays", () => {
    throwsCleanly(() => tensor([[1, 2], [3]]), /ragged nested array: data\[1\] has shape \[1\] but data\[0\] has \[2\]/);
    throwsCleanly(
      () => tensor([[[1], [2]], [[3]]]),
      /ragged nested array: data\[1\] has shape \[1,1\] but data\[0\] has \[2,1\]/,
    );
    throwsCleanly(() => tensor([[1, 2], 3]), /ragged nested array/);
  });

  test("non-numeric leaves and unsupported typed arrays", () => {
    throwsCleanly(() => tensor([1, "a"] as unknown as number[]), /tensor\(\): expected numbers or booleans, got string/);
    throwsCleanly(() => tensor([1, undefined] as unknown as number[]), /expected numbers or booleans, got undefined/);
    throwsCleanly(() => tensor(new Uint8ClampedArray(2) as unknown as Uint8Array), /unsupported typed array Uint8ClampedArray/);
    throwsCleanly(() => tensor([[1, 2]], { shape: [2] }), /give shape only with a typed array/);
  });

  test("typed array with a shape of the wrong size", () => {
    throwsCleanly(() => tensor(new Float32Array(5), { shape: [2, 2] }), /shape \[2, 2\] needs 4 values, got 5/);
    throwsCleanly(() => tensor(new BigInt64Array(3), { shape: [4] }), /shape \[4\] needs 4 values, got 3/);
  });

  test("negative and fractional shapes", () => {
    const x = ones([4]);
    throwsCleanly(() => zeros([-1]), /zeros: shape\[0\] = -1 is not a non-negative integer/);
    throwsCleanly(() => ones([2, -3]), /ones: shape\[1\] = -3 is not a non-negative integer/);
    throwsCleanly(() => randn([1.5]), /randn: shape\[0\] = 1.5 is not a non-negative integer/);
    throwsCleanly(() => zeros([Number.NaN]), /shape\[0\] = NaN/);
    throwsCleanly(
      () => tensor(new Float32Array(4), { shape: [-2, -2] }),
      /tensor\(\): shape\[0\] = -2 is not a non-negative integer/,
    );
    throwsCleanly(() => x.reshape(-2, 2), /invalid shape dimension -2/);
  });

  test("ranges", () => {
    throwsCleanly(() => callOp("arange", [0, 10, 0]), /step must be nonzero/);
    throwsCleanly(() => callOp("randint", [5, 3, [2]]), /expects 'from' to be less than 'to'/);
  });
});

describe("runtime settings", () => {
  test("setNumThreads rejects non-positive and fractional counts", () => {
    throwsCleanly(() => setNumThreads(0), /setNumThreads: expected a positive integer, got 0/);
    throwsCleanly(() => setNumThreads(-2), /expected a positive integer, got -2/);
    throwsCleanly(() => setNumThreads(1.5), /expected a positive integer, got 1.5/);
  });

  test("manualSeed rejects negative, fractional and unsafe seeds", () => {
    throwsCleanly(() => manualSeed(-1), /manualSeed: expected a non-negative integer, got -1/);
    throwsCleanly(() => manualSeed(0.5), /got 0.5/);
    throwsCleanly(() => manualSeed(Number.NaN), /got NaN/);
    throwsCleanly(() => manualSeed(2 ** 53), /got 9007199254740992/);
  });

  it("cuda device when CUDA is unavailable", { skip: cuda.isAvailable() && "CUDA is available here" }, () => {
    scope(() => {
      const x = ones([2]);
      for (const make of [
        () => ones([2], { device: "cuda" }),
        () => zeros([2], { device: "cuda:0" }),
        () => randn([2], { device: "cuda" }),
        () => tensor([1, 2], { device: "cuda" }),
        () => x.to("cuda"),
      ]) {
        assertReadable(make, /cuda/i);
        throwsCleanly(make, /cuda/i);
      }
    });
  });
});

describe("lifetime and autograd errors", () => {
  test("using a disposed tensor, as receiver or as argument", () => {
    const t = ones([2]);
    const u = ones([2]);
    const parts = [u, t];
    t.dispose();
    throwsCleanly(() => t.add(1), /tensor was already disposed/);
    throwsCleanly(() => u.add(t), /tensor was already disposed/);
    throwsCleanly(() => t.shape, /tensor was already disposed/);
    throwsCleanly(() => t.toArray(), /tensor was already disposed/);
    throwsCleanly(() => cat(parts), /tensor was already disposed/);
    let escaped: Tensor | undefined;
    scope(() => {
      escaped = ones([2]);
    });
    throwsCleanly(() => escaped?.sum(), /tensor was already disposed/, "a tensor freed by its scope");
  });

  test("backward twice without retainGraph", () => {
    const x = ones([2], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward();
    throwsCleanly(() => y.backward(), /backward through the graph a second time.*retain_graph=True/s);
    const z = x.exp().sum();
    autograd.grad(z, x);
    throwsCleanly(() => autograd.grad(z, x), /backward through the graph a second time/);
  });

  test("grad of something that does not require grad", () => {
    const x = ones([2]);
    const w = ones([2], { requiresGrad: true });
    const unused = ones([2], { requiresGrad: true });
    const sx = x.sum();
    const sw = w.sum();
    const w2 = w.mul(2);
    throwsCleanly(() => sx.backward(), /element 0 of tensors does not require grad and does not have a grad_fn/);
    throwsCleanly(() => autograd.grad(sw, x, { retainGraph: true }), /One of the differentiated Tensors does not require grad/);
    throwsCleanly(() => autograd.grad(sw, unused), /appears to not have been used in the graph.*allow_unused/s);
    throwsCleanly(() => w2.backward(), /grad can be implicitly created only for scalar outputs/);
    const y = noGrad(() => w.mul(2).sum());
    throwsCleanly(() => y.backward(), /does not require grad/);
  });

  test("in-place update of a leaf that requires grad outside noGrad", () => {
    const w = ones([2], { requiresGrad: true });
    throwsCleanly(() => w.add_(1), /a leaf Variable that requires grad is being used in an in-place operation/);
  });

  test("async functions are refused by scope and noGrad", () => {
    throwsCleanly(() => scope(() => Promise.resolve(1)), /synchronous/);
    throwsCleanly(() => noGrad(() => Promise.resolve(1)), /synchronous/);
  });
});

describe("errors: the process survives", () => {
  test("after all of the above, ops still work", () => {
    for (let i = 0; i < 50; i++) {
      assert.throws(() => ones([2, 3]).matmul(ones([2, 3])));
      assert.throws(() => tensor([[1], [2, 3]]));
    }
    assert.equal(
      ones([2, 2])
        .matmul(ones([2, 2]))
        .sum()
        .item(),
      8,
    );
    const x = tensor([1, 2], { requiresGrad: true });
    x.mul(x).sum().backward();
    assert.deepEqual(x.grad?.toArray(), [2, 4]);
  });

  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startTensors);
  });
});
