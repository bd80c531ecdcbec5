// Autograd gradients against central finite differences, in float64, for every
// differentiable op robust-moe exposes. Inputs stay away from kinks (abs, relu, clamp,
// max at ties) so that the finite difference is well defined.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { F } from "../../src/index.js";
import {
  cat,
  einsum,
  manualSeed,
  memoryStats,
  type NestedArray,
  rand,
  randn,
  scope,
  stack,
  type Tensor,
  tensor,
  where,
} from "../../src/tensor/index.js";
import { type GradcheckOptions, gradcheck } from "../helpers/gradcheck.js";

const startTensors = memoryStats().liveTensors;

const f64 = (data: NestedArray): Tensor => tensor(data, { dtype: "float64" });
const long = (data: NestedArray): Tensor => tensor(data, { dtype: "int64" });
const bool = (data: NestedArray): Tensor => tensor(data, { dtype: "bool" });
const rn = (...shape: number[]): Tensor => randn(shape, { dtype: "float64" });
/** Uniform in [0.5, 2): safe for log, sqrt, rsqrt, fractional powers, divisors. */
const pos = (...shape: number[]): Tensor => rand(shape, { dtype: "float64" }).mul(1.5).add(0.5);
/** Standard normal pushed at least 0.3 away from 0: safe for abs, relu, sign, 1-norms. */
const away = (...shape: number[]): Tensor => {
  const x = rn(...shape);
  return x.add(x.sign().mul(0.3));
};

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h % 100000;
}

/** One test: make() builds the inputs (seeded by the test name), f is checked at them. */
function check(name: string, make: () => Tensor[], f: (x: Tensor[]) => Tensor, options: GradcheckOptions = {}): void {
  it(name, () => {
    scope(() => {
      manualSeed(seedOf(name));
      const n = gradcheck(f, make(), { name, ...options });
      assert.ok(n > 0, `${name}: nothing compared`);
    });
  });
}

const a0 = (x: Tensor[]): Tensor => x[0] as Tensor;
const a1 = (x: Tensor[]): Tensor => x[1] as Tensor;
const a2 = (x: Tensor[]): Tensor => x[2] as Tensor;
const a3 = (x: Tensor[]): Tensor => x[3] as Tensor;
const a4 = (x: Tensor[]): Tensor => x[4] as Tensor;

describe("gradcheck helper", () => {
  it("accepts a correct gradient and counts the compared elements", () => {
    scope(() => {
      const n = gradcheck((x) => a0(x).mul(a1(x)), [rn(2, 3), rn(2, 3)]);
      assert.equal(n, 12);
    });
  });

  it("rejects a wrong gradient (x * detach(x) has autograd gradient x, true gradient 2x)", () => {
    scope(() => {
      assert.throws(() => gradcheck((x) => a0(x).mul(a0(x).detach()), [f64([0.5, -1.5, 2])]), /autograd .* finite difference/);
    });
  });

  it("rejects a wrong gradient of a non-scalar output via the weighting", () => {
    scope(() => {
      // out = [x0, x1] with autograd seeing only x0's contribution on the second element.
      const f = (x: Tensor[]): Tensor => stack([a0(x).select(0, 0), a0(x).select(0, 1).detach().add(a0(x).select(0, 0))]);
      assert.throws(() => gradcheck(f, [f64([1, 2])]), /finite difference/);
    });
  });
});

describe("gradcheck: elementwise math", () => {
  check(
    "add broadcast",
    () => [rn(3, 4), rn(4)],
    (x) => a0(x).add(a1(x)),
  );
  check(
    "add with alpha",
    () => [rn(3, 4), rn(3, 4)],
    (x) => a0(x).add(a1(x), 2.5),
  );
  check(
    "add scalar",
    () => [rn(3, 4)],
    (x) => a0(x).add(1.5),
  );
  check(
    "sub with alpha",
    () => [rn(2, 3), rn(2, 3)],
    (x) => a0(x).sub(a1(x), 0.5),
  );
  check(
    "sub broadcast",
    () => [rn(2, 1), rn(1, 3)],
    (x) => a0(x).sub(a1(x)),
  );
  check(
    "sub scalar",
    () => [rn(5)],
    (x) => a0(x).sub(3),
  );
  check(
    "mul broadcast",
    () => [rn(3, 4), rn(3, 1)],
    (x) => a0(x).mul(a1(x)),
  );
  check(
    "mul scalar",
    () => [rn(3, 4)],
    (x) => a0(x).mul(-2.5),
  );
  check(
    "div",
    () => [rn(3, 4), away(3, 4)],
    (x) => a0(x).div(a1(x)),
  );
  check(
    "div broadcast",
    () => [rn(3, 4), away(4)],
    (x) => a0(x).div(a1(x)),
  );
  check(
    "div scalar",
    () => [rn(3, 4)],
    (x) => a0(x).div(0.7),
  );
  check(
    "pow scalar fractional",
    () => [pos(3, 4)],
    (x) => a0(x).pow(2.5),
  );
  check(
    "pow scalar negative",
    () => [pos(3, 4)],
    (x) => a0(x).pow(-1.5),
  );
  check(
    "pow scalar integer on negative base",
    () => [rn(3, 4)],
    (x) => a0(x).pow(3),
  );
  check(
    "pow scalar 0.5",
    () => [pos(6)],
    (x) => a0(x).pow(0.5),
  );
  check(
    "pow tensor exponent",
    () => [pos(3, 4), rn(3, 4)],
    (x) => a0(x).pow(a1(x)),
  );
  check(
    "pow tensor exponent broadcast",
    () => [pos(3, 4), rn(4)],
    (x) => a0(x).pow(a1(x)),
  );
  check(
    "neg",
    () => [rn(3, 4)],
    (x) => a0(x).neg(),
  );
  check(
    "abs",
    () => [away(3, 4)],
    (x) => a0(x).abs(),
  );
  check(
    "sign (zero gradient)",
    () => [away(3, 4)],
    (x) => a0(x).sign().mul(a0(x)),
  );
  check(
    "exp",
    () => [rn(3, 4)],
    (x) => a0(x).exp(),
  );
  check(
    "log",
    () => [pos(3, 4)],
    (x) => a0(x).log(),
  );
  check(
    "sqrt",
    () => [pos(3, 4)],
    (x) => a0(x).sqrt(),
  );
  check(
    "rsqrt",
    () => [pos(3, 4)],
    (x) => a0(x).rsqrt(),
  );
  check(
    "tanh",
    () => [rn(3, 4)],
    (x) => a0(x).tanh(),
  );
  check(
    "sigmoid",
    () => [rn(3, 4)],
    (x) => a0(x).sigmoid(),
  );
  check(
    "erf",
    () => [rn(3, 4)],
    (x) => a0(x).erf(),
  );
  check(
    "relu",
    () => [away(3, 4)],
    (x) => a0(x).relu(),
  );
  check(
    "F.relu",
    () => [away(3, 4)],
    (x) => F.relu(a0(x)),
  );
  const clampInput = () => [f64([-2, -0.7, -0.3, 0.1, 0.45, 0.8, 1.9, -1.1])];
  check("clamp min and max", clampInput, (x) => a0(x).clamp(-0.5, 0.6));
  check("clamp min only", clampInput, (x) => a0(x).clamp(-0.5));
  check("clamp max only", clampInput, (x) => a0(x).clamp(null, 0.6));
  check(
    "clamp with tensor bounds (grad to x, min and max)",
    () => [f64([-2, -0.2, 0.3, 1.5, 0.9, -1]), f64([-1, -0.5, 0.5, -1, -1, -0.5]), f64([1, 1, 1, 1, 0.5, 0])],
    (x) => a0(x).clamp(a1(x), a2(x)),
  );
  check(
    "minimum",
    () => [rn(3, 4), rn(3, 4)],
    (x) => a0(x).minimum(a1(x)),
  );
  check(
    "maximum",
    () => [rn(3, 4), rn(3, 4)],
    (x) => a0(x).maximum(a1(x)),
  );
  check(
    "maximum broadcast",
    () => [rn(3, 4), rn(4)],
    (x) => a0(x).maximum(a1(x)),
  );
});

describe("gradcheck: reductions", () => {
  check(
    "sum all",
    () => [rn(3, 4)],
    (x) => a0(x).sum(),
  );
  check(
    "sum dim keepdim",
    () => [rn(3, 4)],
    (x) => a0(x).sum(1, true),
  );
  check(
    "sum several dims",
    () => [rn(2, 3, 4)],
    (x) => a0(x).sum([0, 2]),
  );
  check(
    "mean all",
    () => [rn(3, 4)],
    (x) => a0(x).mean(),
  );
  check(
    "mean dim",
    () => [rn(3, 4)],
    (x) => a0(x).mean(0),
  );
  check(
    "mean negative dim keepdim",
    () => [rn(2, 3, 4)],
    (x) => a0(x).mean(-1, true),
  );
  check(
    "var all (unbiased)",
    () => [rn(3, 4)],
    (x) => a0(x).var(),
  );
  check(
    "var dim correction 0 keepdim",
    () => [rn(3, 4)],
    (x) => a0(x).var(1, { correction: 0, keepdim: true }),
  );
  check(
    "std all",
    () => [rn(3, 4)],
    (x) => a0(x).std(),
  );
  check(
    "std dim",
    () => [rn(3, 4)],
    (x) => a0(x).std(0),
  );
  check(
    "norm p=2 all",
    () => [rn(3, 4)],
    (x) => a0(x).norm(),
  );
  check(
    "norm p=2 dim",
    () => [rn(3, 4)],
    (x) => a0(x).norm(2, 1),
  );
  check(
    "norm p=1 all",
    () => [away(3, 4)],
    (x) => a0(x).norm(1),
  );
  check(
    "norm p=1 dim keepdim",
    () => [away(3, 4)],
    (x) => a0(x).norm(1, 0, true),
  );
  check(
    "norm p=Infinity all",
    () => [
      f64([
        [0.5, -3, 1],
        [2.5, -0.2, 1.5],
      ]),
    ],
    (x) => a0(x).norm(Number.POSITIVE_INFINITY),
  );
  check(
    "norm p=Infinity dim",
    () => [
      f64([
        [0.5, -3, 1],
        [2.5, -0.2, 1.5],
      ]),
    ],
    (x) => a0(x).norm(Number.POSITIVE_INFINITY, 1),
  );
  check(
    "norm p=3",
    () => [away(2, 3)],
    (x) => a0(x).norm(3),
  );
  check(
    "max all",
    () => [rn(3, 4)],
    (x) => a0(x).max(),
  );
  check(
    "min all",
    () => [rn(3, 4)],
    (x) => a0(x).min(),
  );
  check(
    "max along dim (values)",
    () => [rn(3, 4)],
    (x) => a0(x).max(1)[0],
  );
  check(
    "max along dim keepdim",
    () => [rn(3, 4)],
    (x) => a0(x).max(0, true)[0],
  );
  check(
    "min along dim (values)",
    () => [rn(3, 4)],
    (x) => a0(x).min(0)[0],
  );
  check(
    "logsumexp dim",
    () => [rn(3, 4)],
    (x) => a0(x).logsumexp(1),
  );
  check(
    "logsumexp dims keepdim",
    () => [rn(2, 3, 2)],
    (x) => a0(x).logsumexp([0, 2], true),
  );
  check(
    "cumsum dim 0",
    () => [rn(3, 4)],
    (x) => a0(x).cumsum(0),
  );
  check(
    "cumsum dim -1",
    () => [rn(3, 4)],
    (x) => a0(x).cumsum(-1),
  );
  check(
    "topk values largest",
    () => [rn(3, 5)],
    (x) => a0(x).topk(3)[0],
  );
  check(
    "topk values smallest along dim 0",
    () => [rn(5, 3)],
    (x) => a0(x).topk(2, 0, false)[0],
  );
  check(
    "sort values ascending",
    () => [rn(3, 5)],
    (x) => a0(x).sort()[0],
  );
  check(
    "sort values descending dim 0",
    () => [rn(4, 3)],
    (x) => a0(x).sort(0, true)[0],
  );
});

describe("gradcheck: shape ops", () => {
  check(
    "reshape",
    () => [rn(3, 4)],
    (x) => a0(x).reshape(2, 6),
  );
  check(
    "reshape with -1",
    () => [rn(3, 4)],
    (x) => a0(x).reshape(-1, 3),
  );
  check(
    "view",
    () => [rn(3, 4)],
    (x) => a0(x).view(4, 3),
  );
  check(
    "permute",
    () => [rn(2, 3, 4)],
    (x) => a0(x).permute(2, 0, 1),
  );
  check(
    "transpose",
    () => [rn(2, 3, 4)],
    (x) => a0(x).transpose(0, 2),
  );
  check(
    "T",
    () => [rn(3, 4)],
    (x) => a0(x).T,
  );
  check(
    "flatten",
    () => [rn(2, 3, 4)],
    (x) => a0(x).flatten(1),
  );
  check(
    "squeeze all",
    () => [rn(3, 1, 4, 1)],
    (x) => a0(x).squeeze(),
  );
  check(
    "squeeze dim",
    () => [rn(3, 1, 4)],
    (x) => a0(x).squeeze(1),
  );
  check(
    "unsqueeze",
    () => [rn(3, 4)],
    (x) => a0(x).unsqueeze(1),
  );
  check(
    "expand",
    () => [rn(3, 1)],
    (x) => a0(x).expand(2, 3, 4),
  );
  check(
    "expand with -1",
    () => [rn(1, 4)],
    (x) => a0(x).expand(3, -1),
  );
  check(
    "expandAs",
    () => [rn(3, 1), rn(3, 4)],
    (x) => a0(x).expandAs(a1(x)).mul(a1(x)),
  );
  check(
    "contiguous of a permuted view",
    () => [rn(3, 4)],
    (x) => a0(x).T.contiguous(),
  );
  check(
    "clone",
    () => [rn(3, 4)],
    (x) => a0(x).clone().mul(a0(x)),
  );
  check(
    "cat dim 0",
    () => [rn(2, 3), rn(1, 3)],
    (x) => cat([a0(x), a1(x)]),
  );
  check(
    "cat dim 1 of three",
    () => [rn(2, 3), rn(2, 1), rn(2, 2)],
    (x) => cat([a0(x), a1(x), a2(x)], 1),
  );
  check(
    "stack",
    () => [rn(2, 3), rn(2, 3)],
    (x) => stack([a0(x), a1(x)], 1),
  );
  const weightParts = (parts: Tensor[]): Tensor => cat(parts.map((p, i) => p.mul(i + 1).flatten()));
  check(
    "split by size",
    () => [rn(5, 3)],
    (x) => weightParts(a0(x).split(2)),
  );
  check(
    "split by sizes along dim 1",
    () => [rn(2, 6)],
    (x) => weightParts(a0(x).split([1, 3, 2], 1)),
  );
  check(
    "chunk",
    () => [rn(3, 7)],
    (x) => weightParts(a0(x).chunk(3, 1)),
  );
  check(
    "narrow",
    () => [rn(4, 5)],
    (x) => a0(x).narrow(1, 1, 3),
  );
  check(
    "slice with step",
    () => [rn(7, 3)],
    (x) => a0(x).slice(0, 1, 6, 2),
  );
  check(
    "slice negative start",
    () => [rn(3, 6)],
    (x) => a0(x).slice(1, -4),
  );
  check(
    "select",
    () => [rn(3, 4)],
    (x) => a0(x).select(1, 2),
  );
  check(
    "select negative index",
    () => [rn(3, 4)],
    (x) => a0(x).select(0, -1),
  );
  check(
    "index with repeated indices",
    () => [rn(4, 3), long([2, 0, 2, 3])],
    (x) => a0(x).index([a1(x)]),
  );
  check(
    "index second dim (null keeps the first)",
    () => [rn(3, 4), long([3, 1, 1])],
    (x) => a0(x).index([null, a1(x)]),
  );
  check(
    "index with two index tensors",
    () => [rn(3, 4), long([0, 2, 2]), long([1, 3, 1])],
    (x) => a0(x).index([a1(x), a2(x)]),
  );
  check(
    "index with bool mask",
    () => [
      rn(2, 3),
      bool([
        [true, false, true],
        [false, true, true],
      ]),
    ],
    (x) => a0(x).index([a1(x)]),
  );
  check(
    "indexSelect with repeats",
    () => [rn(3, 4), long([3, 0, 3])],
    (x) => a0(x).indexSelect(1, a1(x)),
  );
  check(
    "gather",
    () => [
      rn(3, 4),
      long([
        [0, 3],
        [1, 1],
        [2, 0],
      ]),
    ],
    (x) => a0(x).gather(1, a1(x)),
  );
  check(
    "scatter src (grad to self and src)",
    () => [
      rn(3, 4),
      rn(2, 4),
      long([
        [0, 1, 2, 0],
        [2, 0, 1, 1],
      ]),
    ],
    (x) => a0(x).scatter(0, a2(x), a1(x)),
    { wrt: [0, 1] },
  );
  check(
    "scatter value",
    () => [
      rn(3, 4),
      long([
        [0, 3],
        [1, 2],
        [2, 2],
      ]),
    ],
    (x) => a0(x).scatter(1, a1(x), 0.5),
  );
  check(
    "scatterAdd with duplicates",
    () => [
      rn(3, 4),
      rn(2, 4),
      long([
        [0, 1, 2, 0],
        [0, 1, 1, 0],
      ]),
    ],
    (x) => a0(x).scatterAdd(0, a2(x), a1(x)),
    { wrt: [0, 1] },
  );
  check(
    "indexAdd with alpha and duplicates",
    () => [rn(4, 3), rn(3, 3), long([1, 3, 1])],
    (x) => a0(x).indexAdd(0, a2(x), a1(x), 2),
    { wrt: [0, 1] },
  );
  const mask = () =>
    bool([
      [true, false, false, true],
      [false, true, false, false],
      [true, true, false, true],
    ]);
  check(
    "maskedFill scalar",
    () => [rn(3, 4), mask()],
    (x) => a0(x).maskedFill(a1(x), -1.5),
  );
  check(
    "maskedFill 0-d tensor value (grad to value)",
    () => [rn(3, 4), mask(), f64(0.7)],
    (x) => a0(x).maskedFill(a1(x), a2(x)),
    {
      wrt: [0, 2],
    },
  );
  check(
    "where",
    () => [mask(), rn(3, 4), rn(3, 4)],
    (x) => where(a0(x), a1(x), a2(x)),
  );
  check(
    "where broadcast",
    () => [mask(), rn(3, 4), rn(4)],
    (x) => where(a0(x), a1(x), a2(x)),
  );
  check(
    "where with scalar",
    () => [mask(), rn(3, 4)],
    (x) => where(a0(x), a1(x), 2),
  );
  check(
    "pad constant",
    () => [rn(1, 2, 3, 3)],
    (x) => F.pad(a0(x), [1, 2, 0, 1], "constant", 0.5),
  );
  check(
    "pad constant negative (crop)",
    () => [rn(2, 4, 4)],
    (x) => F.pad(a0(x), [-1, 1, 1, -2]),
  );
  check(
    "pad reflect",
    () => [rn(1, 2, 4, 4)],
    (x) => F.pad(a0(x), [2, 1, 1, 3], "reflect"),
  );
  check(
    "pad replicate",
    () => [rn(1, 2, 3, 3)],
    (x) => F.pad(a0(x), [2, 1, 1, 3], "replicate"),
  );
  check(
    "repeat",
    () => [rn(2, 3)],
    (x) => a0(x).repeat(2, 1, 2),
  );
  check(
    "flip",
    () => [rn(3, 4)],
    (x) => a0(x).flip([0, 1]),
  );
  check(
    "flip one dim",
    () => [rn(3, 4)],
    (x) => a0(x).flip(1),
  );
  check(
    "roll along dims",
    () => [rn(3, 4)],
    (x) => a0(x).roll([1, -1], [0, 1]),
  );
  check(
    "roll flattened",
    () => [rn(3, 4)],
    (x) => a0(x).roll(5),
  );
});

describe("gradcheck: linear algebra", () => {
  check(
    "matmul 2-D",
    () => [rn(3, 4), rn(4, 2)],
    (x) => a0(x).matmul(a1(x)),
  );
  check(
    "matmul batched broadcast",
    () => [rn(2, 3, 4), rn(4, 2)],
    (x) => a0(x).matmul(a1(x)),
  );
  check(
    "matmul vector-matrix",
    () => [rn(4), rn(4, 3)],
    (x) => a0(x).matmul(a1(x)),
  );
  check(
    "matmul matrix-vector",
    () => [rn(3, 4), rn(4)],
    (x) => a0(x).matmul(a1(x)),
  );
  check(
    "matmul dot",
    () => [rn(5), rn(5)],
    (x) => a0(x).matmul(a1(x)),
  );
  check(
    "mm",
    () => [rn(3, 4), rn(4, 2)],
    (x) => a0(x).mm(a1(x)),
  );
  check(
    "bmm",
    () => [rn(2, 3, 2), rn(2, 2, 3)],
    (x) => a0(x).bmm(a1(x)),
  );
  check(
    "einsum batched matmul",
    () => [rn(2, 3, 2), rn(2, 2, 3)],
    (x) => einsum("bij,bjk->bik", a0(x), a1(x)),
  );
  check(
    "einsum outer",
    () => [rn(3), rn(4)],
    (x) => einsum("i,j->ij", a0(x), a1(x)),
  );
  check(
    "einsum trace",
    () => [rn(4, 4)],
    (x) => einsum("ii->", a0(x)),
  );
  check(
    "einsum transpose-contract",
    () => [rn(3, 4), rn(3, 2)],
    (x) => einsum("ij,ik->jk", a0(x), a1(x)),
  );
});

describe("gradcheck: nn functional", () => {
  check(
    "conv2d with bias",
    () => [rn(1, 2, 5, 5), rn(3, 2, 3, 3), rn(3)],
    (x) => F.conv2d(a0(x), a1(x), a2(x)),
  );
  check(
    "conv2d no bias",
    () => [rn(2, 1, 4, 4), rn(2, 1, 2, 2)],
    (x) => F.conv2d(a0(x), a1(x)),
  );
  check(
    "conv2d stride 2 padding 1",
    () => [rn(1, 2, 5, 5), rn(2, 2, 3, 3), rn(2)],
    (x) => F.conv2d(a0(x), a1(x), a2(x), { stride: 2, padding: 1 }),
  );
  check(
    "conv2d dilation 2",
    () => [rn(1, 1, 6, 6), rn(2, 1, 2, 2), rn(2)],
    (x) => F.conv2d(a0(x), a1(x), a2(x), { dilation: 2 }),
  );
  check(
    "conv2d groups 2",
    () => [rn(1, 4, 4, 4), rn(4, 2, 2, 2), rn(4)],
    (x) => F.conv2d(a0(x), a1(x), a2(x), { groups: 2 }),
  );
  check(
    "conv2d asymmetric stride and padding pairs",
    () => [rn(1, 2, 4, 5), rn(2, 2, 3, 2)],
    (x) => F.conv2d(a0(x), a1(x), null, { stride: [1, 2], padding: [0, 1] }),
  );
  check(
    "linear with bias",
    () => [rn(2, 3), rn(4, 3), rn(4)],
    (x) => F.linear(a0(x), a1(x), a2(x)),
  );
  check(
    "linear no bias, 3-D input",
    () => [rn(2, 2, 3), rn(4, 3)],
    (x) => F.linear(a0(x), a1(x)),
  );
  check(
    "batchNorm training (no running stats)",
    () => [rn(4, 3, 2), pos(3), rn(3)],
    (x) => F.batchNorm(a0(x), null, null, { training: true, weight: a1(x), bias: a2(x) }),
  );
  check(
    "batchNorm training with running stats (4-D)",
    () => [rn(3, 2, 2, 2), pos(2), rn(2), rn(2), pos(2)],
    (x) => F.batchNorm(a0(x), a3(x).clone(), a4(x).clone(), { training: true, weight: a1(x), bias: a2(x) }),
    { wrt: [0, 1, 2] },
  );
  check(
    "batchNorm eval",
    () => [rn(4, 3, 2), pos(3), rn(3), rn(3), pos(3)],
    (x) => F.batchNorm(a0(x), a3(x), a4(x), { training: false, weight: a1(x), bias: a2(x), eps: 1e-3 }),
    { wrt: [0, 1, 2] },
  );
  check(
    "layerNorm last dim",
    () => [rn(2, 3, 4), pos(4), rn(4)],
    (x) => F.layerNorm(a0(x), [4], a1(x), a2(x)),
  );
  check(
    "layerNorm last two dims, no affine",
    () => [rn(2, 3, 4)],
    (x) => F.layerNorm(a0(x), [3, 4]),
  );
  check(
    "gelu exact",
    () => [rn(3, 4)],
    (x) => F.gelu(a0(x)),
  );
  check(
    "gelu tanh",
    () => [rn(3, 4)],
    (x) => F.gelu(a0(x), "tanh"),
  );
  check(
    "softmax dim 1",
    () => [rn(3, 4)],
    (x) => F.softmax(a0(x), 1),
  );
  check(
    "softmax dim 0",
    () => [rn(3, 4)],
    (x) => F.softmax(a0(x), 0),
  );
  check(
    "logSoftmax",
    () => [rn(3, 4)],
    (x) => F.logSoftmax(a0(x), -1),
  );
  check(
    "avgPool2d 2x2",
    () => [rn(1, 2, 4, 4)],
    (x) => F.avgPool2d(a0(x), 2),
  );
  check(
    "avgPool2d stride padding, countIncludePad false",
    () => [rn(1, 2, 5, 5)],
    (x) => F.avgPool2d(a0(x), 3, { stride: 2, padding: 1, countIncludePad: false }),
  );
  check(
    "avgPool2d ceilMode",
    () => [rn(1, 1, 5, 5)],
    (x) => F.avgPool2d(a0(x), 2, { ceilMode: true }),
  );
  check(
    "maxPool2d 2x2",
    () => [rn(1, 2, 4, 4)],
    (x) => F.maxPool2d(a0(x), 2),
  );
  check(
    "maxPool2d stride padding",
    () => [rn(1, 2, 5, 5)],
    (x) => F.maxPool2d(a0(x), 3, { stride: 2, padding: 1 }),
  );
  check(
    "maxPool2d dilation",
    () => [rn(1, 1, 6, 6)],
    (x) => F.maxPool2d(a0(x), 2, { stride: 1, dilation: 2 }),
  );
  check(
    "maxPool2d ceilMode",
    () => [rn(1, 1, 5, 5)],
    (x) => F.maxPool2d(a0(x), 2, { ceilMode: true }),
  );
  check(
    "adaptiveAvgPool2d non-divisible",
    () => [rn(1, 2, 5, 5)],
    (x) => F.adaptiveAvgPool2d(a0(x), [3, 2]),
  );
  check(
    "adaptiveAvgPool2d to 1",
    () => [rn(2, 2, 3, 3)],
    (x) => F.adaptiveAvgPool2d(a0(x), 1),
  );
  check(
    "adaptiveMaxPool2d",
    () => [rn(1, 2, 5, 5)],
    (x) => F.adaptiveMaxPool2d(a0(x), [2, 3]),
  );
  check(
    "interpolate nearest size",
    () => [rn(1, 2, 3, 3)],
    (x) => F.interpolate(a0(x), { size: [5, 7] }),
  );
  check(
    "interpolate nearest scale",
    () => [rn(1, 1, 3, 4)],
    (x) => F.interpolate(a0(x), { scaleFactor: 2 }),
  );
  check(
    "interpolate bilinear up",
    () => [rn(1, 2, 3, 3)],
    (x) => F.interpolate(a0(x), { size: [4, 6], mode: "bilinear" }),
  );
  check(
    "interpolate bilinear alignCorners",
    () => [rn(1, 1, 3, 4)],
    (x) => F.interpolate(a0(x), { scaleFactor: 2, mode: "bilinear", alignCorners: true }),
  );
  check(
    "interpolate bilinear down",
    () => [rn(1, 1, 6, 6)],
    (x) => F.interpolate(a0(x), { size: [4, 3], mode: "bilinear" }),
  );
  check(
    "interpolate bilinear antialias down",
    () => [rn(1, 2, 6, 6)],
    (x) => F.interpolate(a0(x), { size: [3, 2], mode: "bilinear", antialias: true }),
  );
  check(
    "interpolate bicubic up",
    () => [rn(1, 1, 4, 4)],
    (x) => F.interpolate(a0(x), { size: [6, 7], mode: "bicubic" }),
  );
  check(
    "interpolate bicubic alignCorners",
    () => [rn(1, 1, 3, 3)],
    (x) => F.interpolate(a0(x), { size: [5, 5], mode: "bicubic", alignCorners: true }),
  );
  check(
    "interpolate bicubic antialias down",
    () => [rn(1, 2, 6, 6)],
    (x) => F.interpolate(a0(x), { size: [3, 4], mode: "bicubic", antialias: true }),
  );
  check(
    "interpolate bicubic antialias up",
    () => [rn(1, 1, 3, 3)],
    (x) => F.interpolate(a0(x), { size: [5, 4], mode: "bicubic", antialias: true }),
  );
  const target = () => long([1, 0, 4, 2]);
  check(
    "crossEntropy mean",
    () => [rn(4, 5), target()],
    (x) => F.crossEntropy(a0(x), a1(x)),
  );
  check(
    "crossEntropy sum",
    () => [rn(4, 5), target()],
    (x) => F.crossEntropy(a0(x), a1(x), { reduction: "sum" }),
  );
  check(
    "crossEntropy none",
    () => [rn(4, 5), target()],
    (x) => F.crossEntropy(a0(x), a1(x), { reduction: "none" }),
  );
  check(
    "crossEntropy label smoothing mean",
    () => [rn(4, 5), target()],
    (x) => F.crossEntropy(a0(x), a1(x), { labelSmoothing: 0.1 }),
  );
  check(
    "crossEntropy label smoothing none",
    () => [rn(4, 5), target()],
    (x) => F.crossEntropy(a0(x), a1(x), { labelSmoothing: 0.25, reduction: "none" }),
  );
  check(
    "crossEntropy label smoothing sum with class weights",
    () => [rn(4, 5), target(), pos(5)],
    (x) => F.crossEntropy(a0(x), a1(x), { labelSmoothing: 0.2, reduction: "sum", weight: a2(x) }),
    { wrt: [0] },
  );
  check(
    "crossEntropy class weights mean",
    () => [rn(4, 5), target(), pos(5)],
    (x) => F.crossEntropy(a0(x), a1(x), { weight: a2(x) }),
    { wrt: [0] },
  );
  check(
    "crossEntropy ignoreIndex",
    () => [rn(4, 5), long([1, -100, 4, 2])],
    (x) => F.crossEntropy(a0(x), a1(x)),
  );
  check(
    "crossEntropy spatial [N, C, L]",
    () => [
      rn(2, 3, 4),
      long([
        [0, 1, 2, 1],
        [2, 2, 0, 1],
      ]),
    ],
    (x) => F.crossEntropy(a0(x), a1(x)),
  );
  check(
    "nllLoss mean",
    () => [rn(4, 5), target()],
    (x) => F.nllLoss(a0(x), a1(x)),
  );
  check(
    "nllLoss sum",
    () => [rn(4, 5), target()],
    (x) => F.nllLoss(a0(x), a1(x), { reduction: "sum" }),
  );
  check(
    "nllLoss none",
    () => [rn(4, 5), target()],
    (x) => F.nllLoss(a0(x), a1(x), { reduction: "none" }),
  );
  check(
    "nllLoss weighted mean with ignoreIndex",
    () => [rn(4, 5), long([1, 3, -100, 2]), pos(5)],
    (x) => F.nllLoss(a0(x), a1(x), { weight: a2(x) }),
    { wrt: [0] },
  );
  check(
    "nllLoss of logSoftmax",
    () => [rn(4, 5), target()],
    (x) => F.nllLoss(F.logSoftmax(a0(x), 1), a1(x)),
  );
  const probs = () => F.softmax(rn(3, 4), 1);
  check(
    "klDiv mean (grad to input and target)",
    () => [rn(3, 4), probs()],
    (x) => F.klDiv(a0(x), a1(x)),
  );
  check(
    "klDiv sum",
    () => [rn(3, 4), probs()],
    (x) => F.klDiv(a0(x), a1(x), { reduction: "sum" }),
  );
  check(
    "klDiv none",
    () => [rn(3, 4), probs()],
    (x) => F.klDiv(a0(x), a1(x), { reduction: "none" }),
  );
  check(
    "klDiv batchmean of logSoftmax",
    () => [rn(3, 4), probs()],
    (x) => F.klDiv(F.logSoftmax(a0(x), 1), a1(x), { reduction: "batchmean" }),
  );
  check(
    "klDiv logTarget",
    () => [rn(3, 4), rn(3, 4)],
    (x) => F.klDiv(a0(x), a1(x), { reduction: "batchmean", logTarget: true }),
  );
  check(
    "mseLoss mean",
    () => [rn(3, 4), rn(3, 4)],
    (x) => F.mseLoss(a0(x), a1(x)),
  );
  check(
    "mseLoss sum",
    () => [rn(3, 4), rn(3, 4)],
    (x) => F.mseLoss(a0(x), a1(x), { reduction: "sum" }),
  );
  check(
    "mseLoss none",
    () => [rn(3, 4), rn(3, 4)],
    (x) => F.mseLoss(a0(x), a1(x), { reduction: "none" }),
  );
  check(
    "dropout (same mask every evaluation via manualSeed)",
    () => [rn(4, 5)],
    (x) => {
      manualSeed(99);
      return F.dropout(a0(x), 0.4);
    },
  );
  check(
    "dropout eval is identity",
    () => [rn(4, 5)],
    (x) => F.dropout(a0(x), 0.4, false),
  );
});

describe("gradcheck: no leaks", () => {
  it("every tensor created by these tests was freed", () => {
    assert.equal(memoryStats().liveTensors, startTensors);
  });
});
