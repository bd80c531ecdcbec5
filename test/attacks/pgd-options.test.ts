// What training needs from the attack library: the last iterate (checked against an
// independent hand-written PGD loop), targeted PGD, the model's mode during the attack, a
// Gaussian start, and random starts from a Generator that leave the global stream alone.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PGD, pgdOn } from "../../src/attacks/pgd.js";
import { crossEntropy } from "../../src/nn/functional.js";
import { BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential } from "../../src/nn/index.js";
import {
  autograd,
  defaultGenerator,
  Generator,
  manualSeed,
  noGrad,
  rand,
  randint,
  scope,
  type Tensor,
  tensor,
} from "../../src/tensor/index.js";
import { assertInThreatModel, guardLeaks } from "./helpers.js";

function net(): Sequential {
  return new Sequential(
    new Conv2d(1, 4, 3, { padding: 1 }),
    new BatchNorm2d(4),
    new ReLU(),
    new Flatten(),
    new Linear(4 * 16, 5),
  );
}

const EPS = 0.1;
const STEP = 0.03;

/** PGD written out by hand: sign steps of the mean-free summed CE, projection, last iterate. */
function manualPgd(model: Sequential, x: Tensor, y: Tensor, steps: number): Tensor {
  return scope(() => {
    let xa = x.clone();
    for (let s = 0; s < steps; s++) {
      const leaf = xa.detach().requiresGrad_();
      const [g] = autograd.grad(crossEntropy(model.forward(leaf), y, { reduction: "sum" }), [leaf]);
      xa = noGrad(() =>
        xa
          .add((g as Tensor).sign().mul(STEP))
          .clamp(x.sub(EPS), x.add(EPS))
          .clamp(0, 1),
      );
    }
    return xa;
  });
}

describe("PGD options for training", () => {
  guardLeaks();

  it("iterate 'last' is the plain PGD loop's last iterate; 'best' is at least as strong per sample", () => {
    manualSeed(1);
    const model = net().eval();
    const x = rand([8, 1, 4, 4]);
    const y = randint(0, 5, [8]);
    const last = pgdOn((xa) => model.forward(xa), x, y, { eps: EPS, alpha: STEP, steps: 4, randomStart: false, iterate: "last" });
    const ref = manualPgd(model, x, y, 4);
    assert.deepEqual(last.toFlatArray(), ref.toFlatArray());
    const best = new PGD(model, { eps: EPS, alpha: STEP, steps: 4, randomStart: false }).run(x, y);
    scope(() => {
      const ce = (t: Tensor) => noGrad(() => crossEntropy(model.forward(t), y, { reduction: "none" }).toFlatArray());
      const wrong = (t: Tensor) => noGrad(() => model.forward(t).argmax(1).ne(y).toFlatArray());
      const [lb, ll, wb, wl] = [ce(best), ce(last), wrong(best), wrong(last)];
      for (let i = 0; i < 8; i++)
        assert.ok(
          (wb[i] as number) >= (wl[i] as number) &&
            ((wb[i] as number) > (wl[i] as number) || (lb[i] as number) >= (ll[i] as number) - 1e-6),
          `sample ${i}`,
        );
    });
    for (const t of [x, y, last, ref, best]) t.dispose();
    model.dispose();
  });

  it("targeted PGD moves predictions to the target and needs one", () => {
    manualSeed(2);
    const model = net().eval();
    const x = rand([16, 1, 4, 4]);
    const y = randint(0, 5, [16]);
    const target = tensor(
      y.toFlatArray().map((c) => (c + 1) % 5),
      { dtype: "int64" },
    );
    const attack = new PGD(model, { eps: 1, alpha: 0.1, steps: 30, targeted: true });
    assert.match(attack.name, /targeted/);
    const adv = attack.run(x, y, target);
    const hit = scope(() => noGrad(() => model.forward(adv).argmax(1).eq(target).double().mean().item()));
    const before = scope(() => noGrad(() => model.forward(x).argmax(1).eq(target).double().mean().item()));
    assert.ok(hit >= 0.5 && hit > before + 0.25, `targets reached: ${hit} (clean ${before})`);
    assert.throws(() => attack.run(x, y), /needs run\(x, y, target\)/);
    assert.throws(() => new PGD(model).run(x, y, target), /untargeted/);
    for (const t of [x, y, target, adv]) t.dispose();
    model.dispose();
  });

  it("mode: 'eval' leaves BatchNorm statistics alone, 'train' updates them, 'keep' uses the current mode; modes are restored", () => {
    manualSeed(3);
    const model = net();
    const bn = model.at(1) as BatchNorm2d;
    const x = rand([8, 1, 4, 4]);
    const y = randint(0, 5, [8]);
    const stats = () => (bn.runningMean as Tensor).toFlatArray();
    for (const [mode, training, changes] of [
      ["eval", true, false],
      ["train", false, true],
      ["keep", false, false],
      ["keep", true, true],
    ] as const) {
      model.train(training);
      const before = stats();
      const adv = new PGD(model, { eps: EPS, steps: 2, mode }).run(x, y);
      assert.equal(model.training, training, `${mode}: mode restored`);
      assert.equal(JSON.stringify(stats()) !== JSON.stringify(before), changes, `${mode} from training=${training}`);
      adv.dispose();
    }
    for (const t of [x, y]) t.dispose();
    model.dispose();
  });

  it("a Generator makes random starts reproducible without touching the global stream; a Gaussian start stays in the ball", () => {
    manualSeed(4);
    const model = net().eval();
    const x = rand([8, 1, 4, 4]);
    const y = randint(0, 5, [8]);
    const run = (seed: number) => {
      const generator = new Generator({ seed });
      const out = new PGD(model, { eps: EPS, steps: 2, generator }).run(x, y);
      generator.dispose();
      return out;
    };
    const state = defaultGenerator.getState();
    const [a, b, c] = [run(7), run(7), run(8)];
    assert.deepEqual(Buffer.from(defaultGenerator.getState()), Buffer.from(state), "global generator untouched");
    assert.deepEqual(a.toFlatArray(), b.toFlatArray());
    assert.notDeepEqual(a.toFlatArray(), c.toFlatArray());
    const g = pgdOn((xa) => model.forward(xa), x, y, { eps: EPS, steps: 0, gaussianStart: 0.05, iterate: "last" });
    assertInThreatModel(g, x, EPS, "linf", "gaussian start");
    const moved = scope(() => g.sub(x).abs().max().item());
    assert.ok(moved > 0, "the Gaussian start moved x");
    assert.throws(() => new PGD(model, { gaussianStart: -1 }), /gaussianStart/);
    assert.throws(() => new PGD(model, { iterate: "first" as "last" }), /iterate/);
    assert.throws(() => new PGD(model, { iterate: "last", restarts: 2 }), /single restart/);
    for (const t of [x, y, a, b, c, g]) t.dispose();
    model.dispose();
  });
});
