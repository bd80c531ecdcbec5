// Attack losses on hand-computed logits, their invariances and their gradients.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ceLoss, dlrLoss, klLoss, marginLoss, resolveLoss, targetedDlrLoss } from "../../src/attacks/index.js";
import { scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { gradcheck } from "../helpers/gradcheck.js";
import { guardLeaks } from "./helpers.js";

const Z = [
  [3, 1, 0.5, -1],
  [0, 2, 1, 1.5],
];

function logSoftmaxRow(r: number[]): number[] {
  const m = Math.max(...r);
  const lse = m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0));
  return r.map((v) => v - lse);
}

describe("attack losses", () => {
  guardLeaks();

  it("match hand-computed values", () => {
    scope(() => {
      const z = tensor(Z, { dtype: "float64" });
      const y = tensor([0, 3], { dtype: "int64" });
      const t = tensor([1, 2], { dtype: "int64" });
      const ce = Z.map((r, i) => -(logSoftmaxRow(r)[[0, 3][i] as number] as number));
      assertClose(ceLoss(z, y).toFlatArray(), ce, { atol: 1e-12 }, "CE");
      assertClose(marginLoss(z, y).toFlatArray(), [1 - 3, 2 - 1.5], { atol: 1e-12 }, "margin");
      // -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)
      assertClose(dlrLoss(z, y).toFlatArray(), [-(3 - 1) / (3 - 0.5), -(1.5 - 2) / (2 - 1)], { atol: 1e-9 }, "DLR");
      // -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
      assertClose(
        targetedDlrLoss(z, y, t).toFlatArray(),
        [-(3 - 1) / (3 - (0.5 - 1) / 2), -(1.5 - 1) / (2 - (1 + 0) / 2)],
        { atol: 1e-9 },
        "targeted DLR",
      );
      const clean = tensor([Z[1] as number[], Z[0] as number[]], { dtype: "float64" });
      const kl = Z.map((r, i) => {
        const lq = logSoftmaxRow(r);
        const lp = logSoftmaxRow((i === 0 ? Z[1] : Z[0]) as number[]);
        return lp.reduce((s, v, k) => s + Math.exp(v) * (v - (lq[k] as number)), 0);
      });
      assertClose(klLoss(z, clean).toFlatArray(), kl, { atol: 1e-12 }, "KL");
      assertClose(klLoss(z, z).toFlatArray(), [0, 0], { atol: 1e-12 }, "KL to itself");
      const viaName = resolveLoss("kl")(z, y, { cleanLogits: clean, target: null });
      assertClose(viaName.toFlatArray(), kl, { atol: 1e-12 }, "KL by name");
    });
  });

  it("DLR is invariant to shifting and positive scaling of the logits; CE is not", () => {
    scope(() => {
      const z = tensor(Z, { dtype: "float64" });
      const y = tensor([1, 2], { dtype: "int64" });
      const moved = z.mul(7.5).add(-3);
      assertClose(dlrLoss(moved, y).toFlatArray(), dlrLoss(z, y).toFlatArray(), { atol: 1e-12 }, "DLR");
      assertClose(
        targetedDlrLoss(moved, y, tensor([3, 0], { dtype: "int64" })).toFlatArray(),
        targetedDlrLoss(z, y, tensor([3, 0], { dtype: "int64" })).toFlatArray(),
        { atol: 1e-12 },
        "targeted DLR",
      );
      assert.notDeepEqual(ceLoss(moved, y).toFlatArray(), ceLoss(z, y).toFlatArray());
    });
  });

  it("have the gradients of their formulas (finite differences, float64)", () => {
    scope(() => {
      const z = tensor(
        [
          [0.3, 1.2, -0.7, 2.1, 0.05],
          [1.9, -0.4, 0.8, 0.2, 1.1],
          [-1.0, 0.6, 0.1, -0.3, 0.9],
        ],
        { dtype: "float64" },
      );
      const y = tensor([1, 0, 4], { dtype: "int64" });
      const t = tensor([3, 2, 1], { dtype: "int64" });
      gradcheck(([a]) => dlrLoss(a as Tensor, y), [z], { name: "DLR" });
      gradcheck(([a]) => targetedDlrLoss(a as Tensor, y, t), [z], { name: "targeted DLR" });
      gradcheck(([a]) => marginLoss(a as Tensor, y), [z], { name: "margin" });
      const clean = z.flip(1);
      gradcheck(([a]) => klLoss(a as Tensor, clean), [z], { name: "KL" });
    });
  });

  it("refuse logits with too few classes", () => {
    scope(() => {
      const z2 = tensor([[1, 2]], { dtype: "float64" });
      const y = tensor([0], { dtype: "int64" });
      assert.throws(() => dlrLoss(z2, y), /DLR loss needs logits \[N, K\] with K >= 3/);
      const z3 = tensor([[1, 2, 3]], { dtype: "float64" });
      assert.throws(() => targetedDlrLoss(z3, y, tensor([1], { dtype: "int64" })), /K >= 4/);
    });
  });
});
