// Gradient-masking checks: quiet on an honest model, loud on a model that hides its
// gradient (it detaches its input, so every input gradient is zero while the function
// is unchanged and as breakable as before).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkGradientMasking } from "../../src/attacks/index.js";
import { Module, type Sequential } from "../../src/nn/index.js";
import { manualSeed, scope, type Tensor } from "../../src/tensor/index.js";
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
});
