// Ensemble semantics with scripted attacks on an identity "model" (logits = pixels, label 0,
// so the margin is x0 - x1): each attack adds a fixed amount to x1 and records what it was
// given. Only samples every earlier attack left robust may reach an attack, and each
// sample ends at the point that fooled the model, else at its highest-loss point.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Attack, Ensemble, type EnsembleStage } from "../../src/attacks/index.js";
import { Linear } from "../../src/nn/index.js";
import { noGrad, scope, type Tensor, tensor, zeros } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { guardLeaks } from "./helpers.js";

class Shift extends Attack<Linear> {
  readonly received: number[][] = [];
  calls = 0;
  constructor(
    model: Linear,
    readonly amount: number,
    readonly label: string,
  ) {
    super(model);
  }
  get name(): string {
    return this.label;
  }
  protected perturb(x: Tensor): Tensor {
    this.calls++;
    this.received.push(...(x.toArray() as number[][]));
    return noGrad(() => scope(() => x.add(tensor([0, this.amount], { dtype: "float64" }))));
  }
}

function identity(): Linear {
  const m = new Linear(2, 2).to("float64");
  noGrad(() =>
    scope(() => {
      m.weight.copy_(
        tensor([
          [1, 0],
          [0, 1],
        ]),
      );
      m.bias?.zero_();
    }),
  );
  return m;
}

// Margins 0.1, 0.2, -0.4 (misclassified from the start), 0.3, 0.4, 0.5.
const X = [
  [0.55, 0.45],
  [0.6, 0.4],
  [0.3, 0.7],
  [0.65, 0.35],
  [0.7, 0.3],
  [0.75, 0.25],
];

describe("Ensemble", () => {
  guardLeaks();

  it("attacks only the still-robust samples and keeps the worst case per sample", () => {
    const model = identity();
    const x = tensor(X, { dtype: "float64" });
    const y = zeros([6], { dtype: "int64" });
    const a = new Shift(model, 0.25, "A"); // fools margins below 0.25
    const b = new Shift(model, 0.35, "B"); // fools margin 0.3 of what is left
    const c = new Shift(model, 0.05, "C"); // fools nothing, and is weaker than B
    const seen: EnsembleStage[] = [];
    const ensemble = new Ensemble(model, [a, b, c], { onStage: (s) => seen.push(s) });
    const adv = ensemble.run(x, y);

    assert.deepEqual(a.received, [X[0], X[1], X[3], X[4], X[5]], "A sees every clean-correct sample");
    assert.deepEqual(b.received, [X[3], X[4], X[5]], "B sees only what A left robust");
    assert.deepEqual(c.received, [X[4], X[5]], "C sees only what A and B left robust");
    const expected = [
      [0.55, 0.7], // A's
      [0.6, 0.65], // A's
      [0.3, 0.7], // never attacked
      [0.65, 0.7], // B's
      [0.7, 0.65], // B's: not fooled, but a higher loss than C's
      [0.75, 0.6], // B's
    ];
    assertClose(adv.toFlatArray(), expected.flat(), { atol: 1e-15 }, "worst case per sample");

    const report = ensemble.lastReport;
    assert.ok(report !== null);
    assert.equal(report.n, 6);
    assert.equal(report.cleanAccuracy, 5 / 6);
    assert.equal(report.robustAccuracy, 2 / 6);
    assert.deepEqual(
      report.stages.map((s) => [s.attack, s.attacked, s.fooled, s.robustAccuracy]),
      [
        ["A", 5, 2, 3 / 6],
        ["B", 3, 1, 2 / 6],
        ["C", 2, 0, 2 / 6],
      ],
    );
    assert.deepEqual(seen, report.stages);
    for (const t of [adv, x, y]) t.dispose();
    model.dispose();
  });

  it("skips attacks once every sample is fooled", () => {
    const model = identity();
    const x = tensor(X.slice(0, 3), { dtype: "float64" });
    const y = zeros([3], { dtype: "int64" });
    const a = new Shift(model, 0.25, "A");
    const never = new Shift(model, 0.5, "never");
    const report = new Ensemble(model, [a, never]).evaluate(x, y);
    assert.equal(never.calls, 0);
    assert.equal(report.robustAccuracy, 0);
    assert.deepEqual(
      report.stages.map((s) => s.attacked),
      [2, 0],
    );
    for (const t of [x, y]) t.dispose();
    model.dispose();
  });
});
