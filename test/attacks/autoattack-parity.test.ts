// Parity of `Ensemble.autoattack` (standard) with the official AutoAttack on the
// PyTorch-trained reference CNN: the official robust accuracy on the first 250 test images
// (one AutoAttack batch, so the subset is attacked exactly as in the official run) is stored in
// test/fixtures/autoattack_reference.json, made by bench/reference/autoattack.py. The issue's
// target is within 0.5 percentage points of the official result and never above it by more.
// 250 images keep the run to about 25 s on one loaded core; the 1000-image comparison is in
// docs/ATTACKS.md.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Ensemble, type EnsembleStage } from "../../src/attacks/index.js";
import { dispose, noGrad, scope } from "../../src/tensor/index.js";
import { fixturePath } from "../helpers/paths.js";
import { guardLeaks, loadReference, metaNumber } from "./helpers.js";

interface OfficialRun {
  images: number;
  firstImage: number;
  cleanAccuracy: number;
  robustAccuracy: number;
  stages: { attack: string; robustAccuracy: number }[];
}

interface OfficialReference {
  eps: number;
  runs: { first250: OfficialRun; all1000: OfficialRun };
}

/** 0.5 percentage points, plus float slack for accuracies stored as decimals. */
const TOLERANCE = 0.005 + 1e-9;

describe("AutoAttack parity with the official code", () => {
  guardLeaks();

  it("standard AutoAttack on the first 250 reference images is within 0.5 pp of the official run, never above", () => {
    const official = JSON.parse(readFileSync(fixturePath("autoattack_reference.json"), "utf8")) as OfficialReference;
    const run = official.runs.first250;
    const ref = loadReference();
    try {
      const eps = metaNumber(ref.metadata, "eps_linf");
      assert.equal(eps, official.eps, "the fixture was made at the reference model's eps");
      const [x, y] = scope(() => [
        ref.x.narrow(0, run.firstImage, run.images).clone(),
        ref.y.narrow(0, run.firstImage, run.images).clone(),
      ]);
      const stages: EnsembleStage[] = [];
      const aa = Ensemble.autoattack(ref.net, { eps, onStage: (s) => stages.push(s) });
      const adv = aa.run(x, y);
      const clean = scope(() => noGrad(() => ref.net.forward(x).argmax(1).eq(y).double().mean().item()));
      const robust = scope(() => noGrad(() => ref.net.forward(adv).argmax(1).eq(y).double().mean().item()));
      dispose([x, y, adv]);
      assert.equal(clean, run.cleanAccuracy, "same model, same images: same clean accuracy");
      assert.equal(aa.lastReport?.robustAccuracy, robust);
      const detail = `ours ${robust} (${stages.map((s) => `${s.attack.split(" ")[0]} ${s.robustAccuracy}`).join(", ")}), official ${run.robustAccuracy} (${run.stages.map((s) => `${s.attack} ${s.robustAccuracy}`).join(", ")})`;
      assert.ok(robust <= run.robustAccuracy + TOLERANCE, `above the official AutoAttack: ${detail}`);
      assert.ok(robust >= run.robustAccuracy - TOLERANCE, `more than 0.5 pp below the official AutoAttack: ${detail}`);
    } finally {
      ref.dispose();
    }
  });
});
