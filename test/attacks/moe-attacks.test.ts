// RA-E and RA-R on hand-built 2-expert MoEs whose answers follow by hand, and the two
// frozen models checked against their definitions on a random MoE.
//
// Inputs: x = 0.5 + u, |u_k| <= 0.01, four pixels, label 0, L-inf eps 0.1. Router (on the
// raw pixels: normalisation mean 0, std 1): r_0 - r_1 = v.x + c with v = (1, -1, 1, -1), so
// v.x = v.u is within +-0.04 and an attack can move the route margin by eps |v|_1 = 0.4.
//
// Scenario A, "weak experts, harmless router": expert e outputs (s.x - t_e, 0) with
// s = (1, 1, 1, 1), t = (1.8, 1.9): clean margins 0.2 and 0.1 (+-0.04), both class 0;
// c = 0.05 routes every sample to expert 0. Moving every pixel by -eps lowers both expert
// margins by 0.4, below zero (and leaves v.x unchanged): RA-E = 0 and the real MoE on
// those inputs is fooled with its route unchanged. With the experts frozen at their clean
// (class-0) outputs, any non-negative mixture says class 0: RA-R = 1 whatever the route.
//
// Scenario B, "robust experts, weak router": constant experts, expert 0 says class 0 and
// expert 1 class 1; c = 0.1. The experts ignore x, so RA-E = 1; the router margin
// 0.1 +- 0.04 < 0.4 flips under attack, the mixture then says class 1: RA-R = 0, the real
// MoE is fooled too and every route flips.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExpertAttack, RouterAttack } from "../../src/attacks/index.js";
import { MoE } from "../../src/models/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { manualSeed, noGrad, rand, scope, type Tensor, tensor, zeros } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { guardLeaks, MOE_SHAPE, tinyMoE } from "./helpers.js";

type Gating = { k?: number; gating?: "topk" | "dense" | "hard"; renormalize?: boolean };

function linear(weight: number[][], bias: number[]): Linear {
  const l = new Linear(weight[0]?.length ?? 0, weight.length);
  noGrad(() =>
    scope(() => {
      l.weight.copy_(tensor(weight));
      l.bias?.copy_(tensor(bias));
    }),
  );
  return l;
}

function handMoE(scenario: "A" | "B", gating: Gating): MoE<Sequential> {
  const s = [1, 1, 1, 1];
  const z = [0, 0, 0, 0];
  const experts =
    scenario === "A" ? [linear([s, z], [-1.8, 0]), linear([s, z], [-1.9, 0])] : [linear([z, z], [1, 0]), linear([z, z], [0, 1])];
  const moe = new MoE(
    experts.map((l) => new Sequential(new Flatten(), l)),
    { imageShape: [1, 2, 2], normalize: { mean: [0], std: [1] }, ...gating },
  );
  const gate = moe.router.gate as Linear;
  noGrad(() =>
    scope(() => {
      gate.weight.copy_(tensor([[1, -1, 1, -1], z]));
      gate.bias?.copy_(tensor([scenario === "A" ? 0.05 : 0.1, 0]));
    }),
  );
  return moe.to("float64").eval();
}

function inputs(): { x: Tensor; y: Tensor } {
  manualSeed(21);
  const x = scope(() => rand([6, 1, 2, 2], { dtype: "float64" }).sub(0.5).mul(0.02).add(0.5));
  return { x, y: zeros([6], { dtype: "int64" }) };
}

const EPS = 0.1;
const pgd = { eps: EPS, steps: 10 };

describe("RA-E and RA-R on hand-built MoEs", () => {
  guardLeaks();

  const gatings: [string, Gating][] = [
    ["top-1", { k: 1 }],
    ["top-2 renormalised", { k: 2, renormalize: true }],
    ["dense", { gating: "dense" }],
  ];
  for (const [label, gating] of gatings) {
    it(`scenario A (${label}): attacking the experts breaks every sample, attacking the router none`, () => {
      const moe = handMoE("A", gating);
      const { x, y } = inputs();
      const e = new ExpertAttack(moe, pgd).evaluate(x, y);
      assert.deepEqual(e, { n: 6, cleanAccuracy: 1, frozenRouterAccuracy: 0, moeAccuracy: 0, routeFlipRate: 0 });
      const r = new RouterAttack(moe, pgd).evaluate(x, y);
      assert.equal(r.cleanAccuracy, 1);
      assert.equal(r.frozenExpertAccuracy, 1, "frozen class-0 experts cannot be mixed into another class");
      // From d = 0 every step moves all pixels by the same amount along +-v, which is
      // orthogonal to the experts' s: the real MoE does not notice. (From a random start
      // s.d is whatever the start made it.)
      assert.equal(new RouterAttack(moe, { ...pgd, randomStart: false }).evaluate(x, y).moeAccuracy, 1);
      x.dispose();
      y.dispose();
      moe.dispose();
    });

    it(`scenario B (${label}): attacking the router flips every route and label, attacking the experts nothing`, () => {
      const moe = handMoE("B", gating);
      const { x, y } = inputs();
      const e = new ExpertAttack(moe, { ...pgd, randomStart: false }).evaluate(x, y);
      assert.deepEqual(e, { n: 6, cleanAccuracy: 1, frozenRouterAccuracy: 1, moeAccuracy: 1, routeFlipRate: 0 });
      const r = new RouterAttack(moe, pgd).evaluate(x, y);
      assert.deepEqual(r, { n: 6, cleanAccuracy: 1, frozenExpertAccuracy: 0, moeAccuracy: 0, routeFlipRate: 1 });
      const route = new RouterAttack(moe, { ...pgd, objective: "route" }).evaluate(x, y);
      assert.deepEqual(route, r, "flipping the route directly gives the same outcome here");
      x.dispose();
      y.dispose();
      moe.dispose();
    });
  }

  it("hard gating: the output objective has no gradient, the route objective still flips the route", () => {
    const b = handMoE("B", { gating: "hard" });
    const { x, y } = inputs();
    const stuck = new RouterAttack(b, { ...pgd, randomStart: false }).evaluate(x, y);
    assert.equal(stuck.frozenExpertAccuracy, 1);
    assert.equal(stuck.routeFlipRate, 0);
    const flipped = new RouterAttack(b, { ...pgd, objective: "route" }).evaluate(x, y);
    assert.deepEqual(flipped, { n: 6, cleanAccuracy: 1, frozenExpertAccuracy: 0, moeAccuracy: 0, routeFlipRate: 1 });
    const a = handMoE("A", { gating: "hard" });
    assert.equal(new ExpertAttack(a, pgd).evaluate(x, y).frozenRouterAccuracy, 0);
    assert.equal(new RouterAttack(a, { ...pgd, objective: "route" }).evaluate(x, y).frozenExpertAccuracy, 1);
    for (const t of [x, y]) t.dispose();
    a.dispose();
    b.dispose();
  });
});

describe("the frozen models follow their definitions", () => {
  guardLeaks();

  /** sum_j w_j f_{i_j}(xe) with gates taken at xg, sample by sample in JS. */
  function reference(moe: MoE<Sequential>, xg: Tensor, xe: Tensor): number[] {
    return scope(() => {
      const g = moe.gates(xg);
      const w = g.weights.toArray() as number[][];
      const idx = g.indices.toArray() as number[][];
      const outs = Array.from({ length: moe.numExperts }, (_, i) => moe.expertLogits(xe, i).toArray() as number[][]);
      return w.flatMap((row, b) => {
        const acc = new Array<number>(10).fill(0);
        row.forEach((wj, j) => {
          const o = (outs[(idx[b] as number[])[j] as number] as number[][])[b] as number[];
          for (let c = 0; c < 10; c++) acc[c] = (acc[c] as number) + (moe.gating === "hard" ? 1 : wj) * (o[c] as number);
        });
        return acc;
      });
    });
  }

  for (const gating of [
    { k: 1 },
    { k: 2 },
    { k: 2, renormalize: true },
    { gating: "dense" as const },
    { gating: "hard" as const },
  ]) {
    it(`${JSON.stringify(gating)}: RA-E model = gates at x, experts at x'; RA-R model = gates at x', experts at x`, () => {
      manualSeed(8);
      const moe = tinyMoE(gating).to("float64").eval();
      const x = rand([5, ...MOE_SHAPE], { dtype: "float64" });
      const x2 = scope(() =>
        x
          .add(
            rand([5, ...MOE_SHAPE], { dtype: "float64" })
              .sub(0.5)
              .mul(0.6),
          )
          .clamp(0, 1),
      );
      const ea = new ExpertAttack(moe);
      const ra = new RouterAttack(moe);
      const full = scope(() => moe.forward(x).toFlatArray());
      assertClose(
        scope(() => ea.frozenRouter(x)(x).toFlatArray()),
        full,
        { atol: 1e-12 },
        "RA-E model at d = 0",
      );
      assertClose(
        scope(() => ra.frozenExperts(x)(x).toFlatArray()),
        full,
        { atol: 1e-12 },
        "RA-R model at d = 0",
      );
      assertClose(
        scope(() => ea.frozenRouter(x)(x2).toFlatArray()),
        reference(moe, x, x2),
        { atol: 1e-12 },
        "RA-E model",
      );
      assertClose(
        scope(() => ra.frozenExperts(x)(x2).toFlatArray()),
        reference(moe, x2, x),
        { atol: 1e-12 },
        "RA-R model",
      );
      for (const t of [x, x2]) t.dispose();
      moe.dispose();
    });
  }
});
