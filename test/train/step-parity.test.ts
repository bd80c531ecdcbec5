// One training step of each method from the same weights gives the same updated weights (and
// BatchNorm statistics) as an independent PyTorch implementation of that step, to 1e-5
// (fixture: test/fixtures/gen_train_reference.py, float64, random start off, 3 attack steps,
// SGD lr 0.05 momentum 0.9 weight decay 5e-4). Each level of JTDMoE is checked separately.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { DualModel, type MoE } from "../../src/models/index.js";
import type { SGD } from "../../src/optim/sgd.js";
import { dispose, manualSeed, memoryStats, type Tensor } from "../../src/tensor/index.js";
import { methodSpec } from "../../src/train/methods/index.js";
import { trainStep } from "../../src/train/trainer.js";
import { assertTensorClose } from "../helpers/close.js";
import { fixturePath } from "../helpers/paths.js";
import { prefixed, referenceMoE, SETTINGS, sgd } from "./helpers.js";

/** Every entry of the model's state dict against the fixture's (parameters and BN buffers). */
function assertStateClose(model: MoE, expected: Map<string, Tensor>, what: string): void {
  const sd = model.stateDict();
  assert.equal(sd.size, expected.size, `${what}: state dict size`);
  for (const [k, want] of expected) {
    const got = sd.get(k);
    assert.ok(got !== undefined, `${what}: missing ${k}`);
    assertTensorClose(got, want, { atol: 1e-5, rtol: 1e-5 }, `${what}: ${k}`);
  }
}

function assertStateEqual(model: MoE, expected: Map<string, Tensor>, what: string): void {
  for (const [k, v] of model.stateDict()) {
    const want = expected.get(k) as Tensor;
    assert.deepEqual(v.toBytes(), want.toBytes(), `${what}: ${k} must not change`);
  }
}

describe("one training step matches PyTorch (float64)", () => {
  let fixture: Map<string, Tensor>;
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
    fixture = loadSafetensors(fixturePath("train_reference.safetensors")).tensors;
  });
  after(() => {
    dispose(fixture);
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });
  const batch = () => ({ x: fixture.get("x") as Tensor, y: fixture.get("y") as Tensor });
  const scalar = (name: string) => (fixture.get(name) as Tensor).item();

  for (const name of ["pgd-at", "trades", "rt-er"] as const) {
    it(`${name}: updated weights, BatchNorm statistics and loss terms`, () => {
      const moe = referenceMoE(prefixed(fixture, "init.robust."));
      const method = methodSpec(name).create(moe, SETTINGS);
      const levels = method.levels.map((l) => ({ optimizer: sgd(l.parameters) }));
      // TRADES' start is the step's first random draw, as in the fixture.
      manualSeed(7);
      const m = trainStep(moe, method, levels, batch());
      assert.ok(
        Math.abs((m.loss as number) - scalar(`${name}.loss`)) < 1e-9,
        `${name}: loss ${m.loss} vs ${scalar(`${name}.loss`)}`,
      );
      if (name !== "pgd-at") {
        assert.ok(Math.abs((m.ce as number) - scalar(`${name}.ce`)) < 1e-9, `${name}: ce`);
        assert.ok(Math.abs((m.kl as number) - scalar(`${name}.kl`)) < 1e-9, `${name}: kl`);
      }
      assertStateClose(moe, prefixed(fixture, `${name}.after.`), name);
      for (const l of levels) l.optimizer.dispose();
      moe.dispose();
    });
  }

  it("jtdmoe: level 1 (RT-ER on F_R) and level 2 (clean dual CE on F_S) each match, and each moves only its model", () => {
    const robust = referenceMoE(prefixed(fixture, "init.robust."));
    const standard = referenceMoE(prefixed(fixture, "init.standard."));
    const dual = new DualModel(standard, robust, { alpha: 0.7 });
    const method = methodSpec("jtdmoe").create(dual, SETTINGS);
    assert.deepEqual(
      method.levels.map((l) => l.name),
      ["robust", "standard"],
    );
    const levels = method.levels.map((l) => ({ optimizer: sgd(l.parameters) }));
    // Level 1 alone: the same step with only the lower level.
    const lower = { name: "jtdmoe-lower", levels: [method.levels[0] as (typeof method.levels)[number]] };
    trainStep(dual, lower, [levels[0] as { optimizer: SGD }], batch());
    assertStateClose(robust, prefixed(fixture, "jtdmoe.level1.robust."), "level 1 robust");
    assertStateEqual(standard, prefixed(fixture, "init.standard."), "level 1 standard");
    const upper = { name: "jtdmoe-upper", levels: [method.levels[1] as (typeof method.levels)[number]] };
    const m = trainStep(dual, upper, [levels[1] as { optimizer: SGD }], batch());
    assert.ok(Math.abs((m.loss as number) - scalar("jtdmoe.level2.loss")) < 1e-9, `level 2 loss ${m.loss}`);
    assertStateClose(standard, prefixed(fixture, "jtdmoe.level2.standard."), "level 2 standard");
    assertStateClose(robust, prefixed(fixture, "jtdmoe.level2.robust."), "level 2 robust");
    // Both levels through one trainStep, from fresh copies: the same end point.
    const r2 = referenceMoE(prefixed(fixture, "init.robust."));
    const s2 = referenceMoE(prefixed(fixture, "init.standard."));
    const dual2 = new DualModel(s2, r2, { alpha: 0.7 });
    const method2 = methodSpec("jtdmoe").create(dual2, SETTINGS);
    const levels2 = method2.levels.map((l) => ({ optimizer: sgd(l.parameters) }));
    const both = trainStep(dual2, method2, levels2, batch());
    assert.ok(Math.abs((both["robust.loss"] as number) - scalar("jtdmoe.level1.loss")) < 1e-9, "level 1 loss in the joint step");
    assertStateClose(r2, prefixed(fixture, "jtdmoe.level2.robust."), "joint step robust");
    assertStateClose(s2, prefixed(fixture, "jtdmoe.level2.standard."), "joint step standard");
    for (const l of [...levels, ...levels2]) l.optimizer.dispose();
    dual.dispose();
    dual2.dispose();
  });
});
