// Attack names: parsing, canonical spellings, errors, and the attack each name builds.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { APGD, APGDT, Ensemble, FGSM, PGD, Square } from "../../src/attacks/index.js";
import {
  AttackSpecError,
  buildAttack,
  EpsError,
  formatEps,
  parseAttackList,
  parseAttackSpec,
  parseEps,
  toAttackSpecs,
} from "../../src/eval/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { linearModel } from "./helpers.js";

describe("attack names", () => {
  it("parses every name to its canonical spec", () => {
    assert.deepEqual(parseAttackSpec("fgsm"), { kind: "fgsm", name: "fgsm" });
    assert.deepEqual(parseAttackSpec("pgd50"), { kind: "pgd", name: "pgd50", steps: 50 });
    assert.deepEqual(parseAttackSpec(" PGD010 "), { kind: "pgd", name: "pgd10", steps: 10 });
    for (const n of ["apgd-ce", "apgd-dlr", "apgd-t", "square", "aa", "aa-plus", "aa-rand", "aa-fast"])
      assert.deepEqual(parseAttackSpec(n), { kind: n, name: n });
    assert.deepEqual(
      parseAttackList("pgd50,apgd-ce,apgd-dlr").map((s) => s.name),
      ["pgd50", "apgd-ce", "apgd-dlr"],
    );
    assert.deepEqual(parseAttackList("none"), []);
    assert.deepEqual(
      toAttackSpecs(["fgsm", parseAttackSpec("pgd3")]).map((s) => s.name),
      ["fgsm", "pgd3"],
    );
  });

  it("rejects unknown, incomplete, empty and repeated names with a message naming them", () => {
    const cases: [string, RegExp][] = [
      [
        "pgdx",
        /unknown attack 'pgdx' \(known: fgsm, pgd<steps>, apgd-ce, apgd-dlr, apgd-t, square, aa, aa-plus, aa-rand, aa-fast\)/,
      ],
      ["pgd", /unknown attack 'pgd' \(give the steps: pgd10, pgd50\)/],
      ["apgd", /unknown attack 'apgd' \(apgd-ce or apgd-dlr\)/],
      ["pgd0", /attack 'pgd0': PGD needs between 1 and 100000 steps/],
      ["pgd1000000", /PGD needs between 1 and 100000 steps/],
      ["cw", /unknown attack 'cw'/],
    ];
    for (const [name, re] of cases)
      assert.throws(
        () => parseAttackSpec(name),
        (e: Error) => e instanceof AttackSpecError && re.test(e.message),
        name,
      );
    assert.throws(() => parseAttackList("pgd10,,fgsm"), /empty attack name/);
    assert.throws(() => parseAttackList("pgd10,fgsm,PGD10"), /attack 'pgd10' is listed twice/);
    assert.throws(() => parseAttackList("fgsm,bogus"), /unknown attack 'bogus'/);
  });

  describe("buildAttack", () => {
    guardLeaks();
    it("builds each attack with the evaluation's threat model and budgets", () => {
      const model = linearModel(1);
      const s = { eps: 4 / 255, norm: "linf" as const, numClasses: 5, restarts: 2, apgdSteps: 7, queries: 11 };
      const pgd = buildAttack(parseAttackSpec("pgd20"), model, s);
      assert.ok(pgd instanceof PGD);
      assert.equal(pgd.options.steps, 20);
      assert.equal(pgd.options.alpha, 1 / 255);
      assert.equal(pgd.options.restarts, 2);
      assert.equal(pgd.options.eps, 4 / 255);
      const fgsm = buildAttack(parseAttackSpec("fgsm"), model, s);
      assert.ok(fgsm instanceof FGSM && fgsm.eps === 4 / 255);
      const ce = buildAttack(parseAttackSpec("apgd-ce"), model, s);
      assert.ok(ce instanceof APGD && ce.steps === 7 && ce.lossName === "ce" && ce.restarts === 2);
      const dlr = buildAttack(parseAttackSpec("apgd-dlr"), model, s);
      assert.ok(dlr instanceof APGD && dlr.lossName === "dlr");
      const t = buildAttack(parseAttackSpec("apgd-t"), model, s);
      assert.ok(t instanceof APGDT && t.targets === 4, "targets: min(9, classes - 1)");
      const sq = buildAttack(parseAttackSpec("square"), model, s);
      assert.ok(sq instanceof Square && sq.queries === 11);
      // 'aa' is AutoAttack's standard version (APGD iterations and Square queries from the settings).
      const aa = buildAttack(parseAttackSpec("aa"), model, s);
      assert.ok(aa instanceof Ensemble);
      assert.deepEqual(
        aa.attacks.map((a) => a.constructor.name),
        ["APGD", "APGDT", "FABT", "Square"],
      );
      const aa3 = buildAttack(parseAttackSpec("aa"), model, { ...s, numClasses: 3 });
      assert.ok(aa3 instanceof Ensemble);
      assert.deepEqual(
        aa3.attacks.map((a) => a.constructor.name),
        ["APGD", "Square"],
        "the targeted attacks need 4 classes",
      );
      const plus = buildAttack(parseAttackSpec("aa-plus"), model, s) as Ensemble;
      assert.deepEqual(
        plus.attacks.map((a) => a.constructor.name),
        ["APGD", "APGD", "FAB", "Square", "APGDT", "FABT"],
      );
      const fast = buildAttack(parseAttackSpec("aa-fast"), model, s) as Ensemble;
      assert.deepEqual(
        fast.attacks.map((a) => a.constructor.name),
        ["APGD", "APGDT", "RandomSearch"],
      );
      const l2 = buildAttack(parseAttackSpec("pgd5"), model, { eps: 0.5, norm: "l2", numClasses: 5 });
      assert.ok(l2 instanceof PGD && l2.options.norm === "l2" && l2.options.alpha === 0.125);
      model.dispose();
    });

    it("refuses attacks the model's class count cannot support", () => {
      const model = linearModel(1, 2);
      assert.throws(
        () => buildAttack(parseAttackSpec("apgd-dlr"), model, { eps: 0.1, norm: "linf", numClasses: 2 }),
        /'apgd-dlr' needs at least 3 classes, the model has 2/,
      );
      assert.throws(
        () => buildAttack(parseAttackSpec("apgd-t"), model, { eps: 0.1, norm: "linf", numClasses: 3 }),
        /'apgd-t' needs at least 4 classes, the model has 3/,
      );
      model.dispose();
    });
  });
});

describe("eps", () => {
  it("parses fractions and numbers", () => {
    assert.equal(parseEps("8/255"), 8 / 255);
    assert.equal(parseEps(" 2 / 255 "), 2 / 255);
    assert.equal(parseEps("0.5"), 0.5);
    assert.equal(parseEps("0"), 0);
    assert.equal(parseEps("1e-2"), 0.01);
    assert.equal(parseEps(".25"), 0.25);
  });

  it("rejects what is not a radius", () => {
    for (const t of ["", "abc", "-1", "8/", "/255", "8/255/2", "1/0", "nan", "Infinity"]) {
      assert.throws(() => parseEps(t), EpsError, t);
    }
  });

  it("prints whole 1/255 steps as fractions", () => {
    assert.equal(formatEps(8 / 255), "8/255");
    assert.equal(formatEps(2 / 255), "2/255");
    assert.equal(formatEps(0.5), "0.5");
    assert.equal(formatEps(0), "0");
    assert.equal(formatEps(1), "1");
  });
});
