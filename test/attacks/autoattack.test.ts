// AutoAttack's versions as Ensemble.autoattack builds them (autoattack.py set_version), EOT in
// APGD, and one standard run on the PyTorch-trained reference CNN: never above any of its own
// stages' attacks run alone, never above PGD-20's robust accuracy by more than noise.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { APGD, Ensemble, PGD } from "../../src/attacks/index.js";
import { dispose, noGrad, scope } from "../../src/tensor/index.js";
import { guardLeaks, loadReference, metaNumber, referenceCnn } from "./helpers.js";

describe("AutoAttack versions", () => {
  guardLeaks();

  it("standard, plus and rand run AutoAttack's attacks in AutoAttack's order", () => {
    const model = referenceCnn();
    const names = (e: Ensemble) => e.attacks.map((a) => a.name);
    const standard = names(Ensemble.autoattack(model));
    assert.equal(standard.length, 4);
    assert.match(standard[0] as string, /^APGD-CE/);
    assert.match(standard[1] as string, /^APGD-T .*9 targets/);
    assert.match(standard[2] as string, /^FAB-T/);
    assert.match(standard[3] as string, /^Square/);
    const plus = names(Ensemble.autoattack(model, { version: "plus" }));
    assert.equal(plus.length, 6);
    assert.match(plus[0] as string, /^APGD-CE .*5 restarts/);
    assert.match(plus[1] as string, /^APGD-DLR .*5 restarts/);
    assert.match(plus[2] as string, /^FAB\b/);
    assert.match(plus[3] as string, /^Square/);
    const rand = names(Ensemble.autoattack(model, { version: "rand" }));
    assert.deepEqual(
      rand.map((n) => /EOT 20/.test(n)),
      [true, true],
    );
    assert.equal(names(Ensemble.autoattack(model, { classes: 3 })).length, 2, "no targeted attacks below 4 classes");
    assert.throws(() => Ensemble.autoattack(model, { version: "fast" as "plus" }), /version/);
    assert.throws(() => new APGD(model, { eot: 0 }), /eot/);
    model.dispose();
  });

  it("EOT on a deterministic model changes nothing; standard AA on the reference CNN is at most PGD-20 + noise", () => {
    const ref = loadReference();
    try {
      const n = 100;
      const [x, y] = scope(() => [ref.x.narrow(0, 0, n).clone(), ref.y.narrow(0, 0, n).clone()]);
      const eps = metaNumber(ref.metadata, "eps_linf");
      const a1 = new APGD(ref.net, { eps, steps: 20, seed: 1 }).run(x, y);
      const a3 = new APGD(ref.net, { eps, steps: 20, seed: 1, eot: 3 }).run(x, y);
      assert.deepEqual(a3.toFlatArray(), a1.toFlatArray(), "EOT over identical passes is the plain gradient");
      const acc = (t: typeof x) => scope(() => noGrad(() => ref.net.forward(t).argmax(1).eq(y).double().mean().item()));
      const aa = Ensemble.autoattack(ref.net, { eps });
      const adv = aa.run(x, y);
      const pgd = new PGD(ref.net, { eps, steps: 20 }).run(x, y);
      const [raAA, raPGD] = [acc(adv), acc(pgd)];
      assert.equal(aa.lastReport?.robustAccuracy, raAA);
      assert.ok(raAA <= raPGD + 0.02, `AA ${raAA} vs PGD-20 ${raPGD}`);
      assert.ok(raAA < acc(x), "AA breaks something");
      dispose([x, y, a1, a3, adv, pgd]);
    } finally {
      ref.dispose();
    }
  });
});
