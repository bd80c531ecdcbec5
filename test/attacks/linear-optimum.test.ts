// On a 2-class linear model the worst case is known in closed form: the logit margin
// z_y - z_j = (w_y - w_j) . x + (b_y - b_j) falls by at most eps |w_y - w_j|_1 in the L-inf
// ball and eps |w_y - w_j|_2 in the L2 ball, attained at delta = -eps sign(w_y - w_j) and
// -eps (w_y - w_j) / |w_y - w_j|_2. With x in the middle of the box the box never binds,
// so the attacks must reach these values.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { APGD, type Attack, FGSM, PGD } from "../../src/attacks/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { manualSeed, noGrad, rand, randn, scope, type Tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { guardLeaks } from "./helpers.js";

const D = 16;
const N = 32;

function setup(): { model: Sequential; x: Tensor; y: Tensor; w: number[][]; b: number[] } {
  manualSeed(11);
  const linear = new Linear(D, 2);
  const model = new Sequential(new Flatten(), linear).to("float64");
  noGrad(() =>
    scope(() => {
      linear.weight.copy_(randn([2, D], { dtype: "float64" }));
      // Centre the decision boundary on the middle of the box so that clean margins are small.
      linear.bias?.copy_(
        linear.weight
          .sum(1)
          .mul(-0.5)
          .add(randn([2], { dtype: "float64" }).mul(0.1)),
      );
    }),
  );
  const x = scope(() => rand([N, 1, 4, 4], { dtype: "float64" }).sub(0.5).mul(0.1).add(0.5));
  const y = noGrad(() => scope(() => model.forward(x).argmax(1)));
  const w = linear.weight.toArray() as number[][];
  const b = (linear.bias as Tensor).toFlatArray();
  return { model, x, y, w, b };
}

/** Achieved margin z_y - z_j per sample. */
function margins(model: Sequential, x: Tensor, y: number[]): number[] {
  const z = scope(() => noGrad(() => model.forward(x).toArray() as number[][]));
  return z.map((row, i) => (row[y[i] as number] as number) - (row[1 - (y[i] as number)] as number));
}

function analytic(
  w: number[][],
  b: number[],
  xs: number[][],
  y: number[],
  eps: number,
  norm: "linf" | "l2",
): { clean: number[]; worst: number[] } {
  const clean: number[] = [];
  const worst: number[] = [];
  xs.forEach((xi, i) => {
    const c = y[i] as number;
    const wd = (w[c] as number[]).map((v, k) => v - ((w[1 - c] as number[])[k] as number));
    const m0 = wd.reduce((s, v, k) => s + v * (xi[k] as number), 0) + (b[c] as number) - (b[1 - c] as number);
    const size = norm === "linf" ? wd.reduce((s, v) => s + Math.abs(v), 0) : Math.sqrt(wd.reduce((s, v) => s + v * v, 0));
    clean.push(m0);
    worst.push(m0 - eps * size);
  });
  return { clean, worst };
}

describe("attacks reach the analytic worst case of a linear model", () => {
  guardLeaks();

  const cases: [string, "linf" | "l2", number, (m: Sequential, eps: number) => Attack, number][] = [
    ["PGD-20 L-inf, random start", "linf", 0.01, (m, eps) => new PGD(m, { eps, steps: 20 }), 1e-10],
    ["PGD-10 L-inf, 3 restarts", "linf", 0.01, (m, eps) => new PGD(m, { eps, steps: 10, restarts: 3 }), 1e-10],
    ["FGSM L-inf", "linf", 0.01, (m, eps) => new FGSM(m, { eps }), 1e-10],
    ["APGD-CE L-inf, 10 steps", "linf", 0.01, (m, eps) => new APGD(m, { eps, steps: 10 }), 1e-10],
    ["PGD-50 L2, random start", "l2", 0.03, (m, eps) => new PGD(m, { eps, steps: 50, norm: "l2" }), 1e-8],
    ["PGD-10 L2 from x", "l2", 0.03, (m, eps) => new PGD(m, { eps, steps: 10, norm: "l2", randomStart: false }), 1e-10],
    ["FGM (FGSM L2)", "l2", 0.03, (m, eps) => new FGSM(m, { eps, norm: "l2" }), 1e-10],
    ["APGD-CE L2, 50 steps", "l2", 0.03, (m, eps) => new APGD(m, { eps, steps: 50, norm: "l2" }), 1e-8],
  ];

  for (const [name, norm, eps, make, atol] of cases) {
    it(`${name}: margin = clean margin - eps * |w_y - w_j|_${norm === "linf" ? "1" : "2"}`, () => {
      const { model, x, y, w, b } = setup();
      const ys = y.toFlatArray();
      const xs = scope(() => x.flatten(1).toArray() as number[][]);
      const { clean, worst } = analytic(w, b, xs, ys, eps, norm);
      assertClose(margins(model, x, ys), clean, { atol: 1e-12, rtol: 0 }, "clean margins");
      // The analytic optimum must be reachable without touching the box.
      for (const xi of xs) for (const v of xi) assert.ok(v - eps >= 0 && v + eps <= 1);
      assert.ok(worst.some((m) => m < 0) && worst.some((m) => m > 0), "the batch should hold both breakable and robust samples");
      const adv = make(model, eps).run(x, y);
      assertClose(margins(model, adv, ys), worst, { atol, rtol: 0 }, `${name} margins`);
      for (const t of [adv, x, y]) t.dispose();
      model.dispose();
    });
  }
});
