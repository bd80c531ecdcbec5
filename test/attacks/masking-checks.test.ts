// Gradient-masking checks: quiet on an honest model, loud on a model that hides its
// gradient (it detaches its input, so every input gradient is zero while the function
// is unchanged and as breakable as before). The step and restart checks compare paired
// runs: they never flag a deterministic model (independent random starts did, by chance)
// and do flag one whose output is random.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkGradientMasking } from "../../src/attacks/index.js";
import { Flatten, Linear, Module, ReLU, Sequential } from "../../src/nn/index.js";
import { manualSeed, noGrad, rand, randnLike, scope, type Tensor } from "../../src/tensor/index.js";
import { guardLeaks, loadReference, metaNumber, type ReferenceFixture } from "./helpers.js";

class Detached extends Module {
  constructor(readonly inner: Sequential) {
    super();
    this.registerModule("inner", inner);
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.inner.forward(x.detach()));
  }
}

/** Randomised smoothing of the input at every forward, in eval mode too: a stochastic defence. */
class Noisy extends Module {
  constructor(readonly inner: Sequential) {
    super();
    this.registerModule("inner", inner);
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.inner.forward(x.add(randnLike(x).mul(0.5))));
  }
}

describe("gradient-masking checks", () => {
  let ref: ReferenceFixture;
  let x: Tensor;
  let y: Tensor;
  guardLeaks(
    () => {
      ref = loadReference();
      [x, y] = scope(() => [ref.x.narrow(0, 0, 100).clone(), ref.y.narrow(0, 0, 100).clone()]);
    },
    () => {
      x.dispose();
      y.dispose();
      ref.dispose();
    },
  );

  it("raise no flag on the honest reference CNN", (t) => {
    manualSeed(5);
    const report = checkGradientMasking(ref.net, x, y, { eps: metaNumber(ref.metadata, "eps_linf") });
    for (const line of report.notes) t.diagnostic(line);
    assert.equal(report.flagged, false, report.notes.join("\n"));
    assert.equal(report.checks.length, 6);
    assert.ok(report.accuracies.pgd < report.accuracies.clean);
    assert.equal(report.accuracies.unbounded, 0);
  });

  it("flag zero gradients, random search beating PGD and a failed unbounded attack on a detached model", (t) => {
    manualSeed(5);
    const masked = new Detached(ref.net);
    const report = checkGradientMasking(masked, x, y, { eps: metaNumber(ref.metadata, "eps_linf") });
    for (const line of report.notes) t.diagnostic(line);
    const byId = new Map(report.checks.map((c) => [c.id, c]));
    assert.equal(report.flagged, true);
    assert.equal(byId.get("zero-gradients")?.value, 1);
    assert.equal(byId.get("zero-gradients")?.flagged, true);
    assert.equal(byId.get("random-search-beats-gradient")?.flagged, true);
    assert.ok((byId.get("random-search-beats-gradient")?.samples?.length ?? 0) > 0);
    assert.equal(byId.get("unbounded-attack")?.flagged, true);
    // Without a gradient PGD only has its random start; random search does better.
    assert.ok(report.accuracies.randomSearch < report.accuracies.pgd);
    assert.ok(report.notes[0]?.startsWith("FLAG"));
  });

  it("never flag more steps or restarts on a deterministic model (paired runs), whatever the global generator", () => {
    manualSeed(1);
    const net = new Sequential(new Flatten(), new Linear(16, 32), new ReLU(), new Linear(32, 5)).eval();
    const [xs, ys] = scope(() => {
      const v = rand([64, 1, 4, 4]);
      return [v, noGrad(() => net.forward(v).argmax(1))];
    });
    // With independent random starts, 1 of these 20 runs flagged an honest model.
    for (let s = 0; s < 20; s++) {
      manualSeed(100 + s);
      const r = checkGradientMasking(net, xs, ys, { eps: 0.05, steps: 3, queries: 20, seed: s });
      for (const id of ["more-steps", "more-restarts"]) {
        const c = r.checks.find((k) => k.id === id);
        assert.equal(c?.flagged, false, `seed ${s}: ${c?.note}`);
        assert.deepEqual(c?.samples, [], `seed ${s}: ${id} lost no sample`);
      }
      assert.ok(r.accuracies.pgdMoreSteps <= r.accuracies.pgd && r.accuracies.pgdRestarts <= r.accuracies.pgd);
    }
    xs.dispose();
    ys.dispose();
    net.dispose();
  });

  it("flag more steps or restarts losing samples on a model whose output is random", (t) => {
    manualSeed(3);
    const noisy = new Noisy(ref.net);
    const report = checkGradientMasking(noisy, x, y, { eps: metaNumber(ref.metadata, "eps_linf"), seed: 3 });
    for (const line of report.notes) t.diagnostic(line);
    const lost = report.checks.filter((c) => (c.id === "more-steps" || c.id === "more-restarts") && c.flagged);
    assert.ok(lost.length > 0, report.notes.join("\n"));
    assert.ok((lost[0]?.samples?.length ?? 0) > 0);
  });
});
