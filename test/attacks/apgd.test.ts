// APGD: its checkpoint schedule, and its strength at equal budget on the reference CNN
// (10 gradient evaluations each: APGD's adaptive step and momentum should beat PGD-10's
// fixed eps/4 step). The numbers are printed as test diagnostics.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { apgdCheckpoints } from "../../src/attacks/apgd.js";
import { APGD, APGDT, accuracy, Ensemble, PGD } from "../../src/attacks/index.js";
import { manualSeed, scope } from "../../src/tensor/index.js";
import { guardLeaks, loadReference, metaNumber, type ReferenceFixture } from "./helpers.js";

describe("APGD", () => {
  let ref: ReferenceFixture;
  guardLeaks(
    () => {
      ref = loadReference();
    },
    () => ref.dispose(),
  );

  it("reviews the step size at Croce & Hein's checkpoints", () => {
    // p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), times 100.
    assert.deepEqual(apgdCheckpoints(100), [22, 41, 57, 70, 80, 87, 93, 99]);
    assert.deepEqual(apgdCheckpoints(10), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(apgdCheckpoints(1), [1]);
  });

  for (const norm of ["linf", "l2"] as const) {
    it(`${norm}: APGD-CE with 10 steps leaves fewer robust samples than PGD-10`, (t) => {
      const eps = metaNumber(ref.metadata, `eps_${norm}`);
      const acc = (make: () => PGD | APGD) => scope(() => accuracy(ref.net, make().run(ref.x, ref.y), ref.y));
      manualSeed(3);
      const pgd = acc(() => new PGD(ref.net, { eps, steps: 10, norm }));
      const apgd = acc(() => new APGD(ref.net, { eps, steps: 10, norm }));
      t.diagnostic(`${norm} eps ${eps}: PGD-10 ${pgd.toFixed(3)}, APGD-CE-10 ${apgd.toFixed(3)}`);
      assert.ok(apgd < pgd, `APGD-CE ${apgd} should be below PGD-10 ${pgd}`);
    });
  }

  it("the ensemble is at least as strong as each of its attacks, per sample", (t) => {
    const eps = metaNumber(ref.metadata, "eps_linf");
    const [x, y] = scope(() => [ref.x.narrow(0, 0, 300).clone(), ref.y.narrow(0, 0, 300).clone()]);
    manualSeed(4);
    const members = [new APGD(ref.net, { eps, steps: 10 }), new APGDT(ref.net, { eps, steps: 10, targets: 3 })];
    const single = members.map((a) => scope(() => accuracy(ref.net, a.run(x, y), y)));
    const ensemble = new Ensemble(ref.net, members);
    const report = ensemble.evaluate(x, y);
    t.diagnostic(
      `APGD-CE ${single[0]?.toFixed(3)}, APGD-T ${single[1]?.toFixed(3)}, ensemble ${report.robustAccuracy.toFixed(3)} ` +
        `(stages ${report.stages.map((s) => s.robustAccuracy.toFixed(3)).join(" -> ")})`,
    );
    assert.ok(report.robustAccuracy <= Math.min(...single) + 0.01);
    assert.equal(report.stages.length, 2);
    assert.equal(report.stages[1]?.attacked, Math.round((report.stages[0]?.robustAccuracy ?? 0) * 300));
    x.dispose();
    y.dispose();
  });
});
