// Our PGD-20 against a plain PyTorch PGD-20 (test/fixtures/pgd_reference.py) on the same
// trained CNN, the same 1000 inputs and the same hyper-parameters: robust accuracies must
// agree within one point. Both sides average the same seeds; LibTorch's generator gives
// both the same random stream, but ours keeps the strongest iterate where PyTorch's keeps
// the last, and the start is computed with different float ops, so equality is not expected.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accuracy, PGD } from "../../src/attacks/index.js";
import { manualSeed, scope } from "../../src/tensor/index.js";
import { guardLeaks, loadReference, metaNumber, type ReferenceFixture } from "./helpers.js";

describe("PGD-20 robust accuracy matches PyTorch's on shared weights and inputs", () => {
  let ref: ReferenceFixture;
  guardLeaks(
    () => {
      ref = loadReference();
    },
    () => ref.dispose(),
  );

  it("clean accuracy is PyTorch's", () => {
    const clean = accuracy(ref.net, ref.x, ref.y);
    assert.ok(Math.abs(clean - metaNumber(ref.metadata, "clean_accuracy")) < 1e-6, `clean ${clean}`);
  });

  for (const norm of ["linf", "l2"] as const) {
    it(`${norm}: |ours - PyTorch| <= 1 point`, (t) => {
      const eps = metaNumber(ref.metadata, `eps_${norm}`);
      const theirs = metaNumber(ref.metadata, `robust_accuracy_${norm}`);
      const steps = metaNumber(ref.metadata, "steps");
      const seeds = (ref.metadata.seeds ?? "").split(",").map(Number);
      assert.ok(seeds.length > 0 && seeds.every(Number.isInteger), "fixture lists its seeds");
      const ours = seeds.map((seed) => {
        manualSeed(seed);
        return scope(() => accuracy(ref.net, new PGD(ref.net, { eps, alpha: eps / 4, steps, norm }).run(ref.x, ref.y), ref.y));
      });
      const mean = ours.reduce((a, b) => a + b, 0) / ours.length;
      t.diagnostic(
        `${norm} eps ${eps}, PGD-${steps}, seeds ${seeds}: ours ${mean.toFixed(4)} [${ours.map((a) => a.toFixed(3))}], ` +
          `PyTorch ${theirs.toFixed(4)} [${ref.metadata[`robust_accuracy_${norm}_per_seed`]}]`,
      );
      assert.ok(Math.abs(mean - theirs) <= 0.01, `${norm}: ours ${mean} vs PyTorch ${theirs}`);
    });
  }
});
