// What each method may touch: RT-ER's KL term reaches exactly the experts that are someone's
// runner-up (not the router, not an expert that is nobody's second choice); BatchNorm is in
// training mode for the update's forwards and in eval mode inside every attack; JTDMoE's
// lower level moves only F_R and its upper level only F_S (with the real per-level optimizers).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { DualModel } from "../../src/models/index.js";
import { BatchNorm2d } from "../../src/nn/batch-norm.js";
import { autograd, dispose, isGradEnabled, memoryStats, scope, type Tensor } from "../../src/tensor/index.js";
import { methodSpec } from "../../src/train/methods/index.js";
import { rtErLoss } from "../../src/train/methods/rt-er.js";
import { trainStep } from "../../src/train/trainer.js";
import { fixturePath } from "../helpers/paths.js";
import { prefixed, referenceMoE, SETTINGS, sgd } from "./helpers.js";

describe("what the training methods touch", () => {
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

  it("RT-ER: the KL term's gradient reaches the runner-up experts only", () => {
    const moe = referenceMoE(prefixed(fixture, "init.robust."));
    moe.train();
    const second = scope(() => moe.secondExpert(batch().x).toFlatArray());
    assert.deepEqual(second, (fixture.get("rt-er.second") as Tensor).toFlatArray(), "runner-up experts as in PyTorch");
    const runnersUp = new Set(second);
    assert.equal(runnersUp.has(0), false, "the fixture has an expert that is nobody's second choice");
    const groups = {
      router: moe.router.parameters(),
      ...Object.fromEntries([0, 1, 2].map((e) => [`expert ${e}`, moe.experts.at(e).parameters()])),
    };
    const norms = scope(() => {
      const { terms } = rtErLoss(moe, batch(), SETTINGS);
      const all = Object.values(groups).flat();
      const grads = autograd.grad(terms.kl as Tensor, all, { allowUnused: true });
      const out: Record<string, number> = {};
      let i = 0;
      for (const [name, params] of Object.entries(groups)) {
        let sum = 0;
        for (const _ of params) {
          const g = grads[i++];
          sum += g === null || g === undefined ? 0 : g.abs().sum().item();
        }
        out[name] = sum;
      }
      return out;
    });
    assert.equal(norms.router, 0, "router gets no gradient from the KL term");
    assert.equal(norms["expert 0"], 0, "expert 0 is nobody's runner-up");
    assert.ok(
      (norms["expert 1"] as number) > 0 && (norms["expert 2"] as number) > 0,
      `runner-up experts get a gradient: ${JSON.stringify(norms)}`,
    );
    moe.dispose();
  });

  for (const name of ["pgd-at", "trades", "rt-er", "advmoe"] as const) {
    it(`${name}: BatchNorm in training mode for the update, in eval mode inside the attacks`, () => {
      const moe = referenceMoE(prefixed(fixture, "init.robust."));
      const calls: { training: boolean; attack: boolean }[] = [];
      for (const expert of moe.experts) {
        const forward = expert.forward.bind(expert);
        const bns = [...expert.modules()].filter((m) => m instanceof BatchNorm2d);
        // An attack differentiates w.r.t. its input (or computes clean logits without a graph);
        // an update's forward sees plain data with grad mode on.
        expert.forward = (x: Tensor) => {
          const attack = x.requiresGrad || !isGradEnabled();
          for (const bn of bns) calls.push({ training: bn.training, attack });
          return forward(x);
        };
      }
      const method = methodSpec(name).create(moe, SETTINGS);
      const levels = method.levels.map((l) => ({ optimizer: sgd(l.parameters) }));
      trainStep(moe, method, levels, batch());
      const attack = calls.filter((c) => c.attack);
      const update = calls.filter((c) => !c.attack);
      assert.ok(attack.length > 0 && update.length > 0, `${name}: both kinds of forward happened`);
      assert.ok(
        attack.every((c) => !c.training),
        `${name}: BatchNorm in training mode during an attack`,
      );
      assert.ok(
        update.every((c) => c.training),
        `${name}: BatchNorm in eval mode during an update`,
      );
      for (const l of levels) l.optimizer.dispose();
      moe.dispose();
    });
  }

  it("JTDMoE: the lower level moves only F_R, the upper level only F_S (and the robust model is frozen in eval mode)", () => {
    const robust = referenceMoE(prefixed(fixture, "init.robust."));
    const standard = referenceMoE(prefixed(fixture, "init.standard."));
    const dual = new DualModel(standard, robust, { alpha: 0.7 });
    const method = methodSpec("jtdmoe").create(dual, SETTINGS);
    const snapshot = (m: typeof robust) =>
      new Map([...m.stateDict()].map(([k, v]) => [k, Buffer.from(v.toBytes()).toString("base64")]));
    const changed = (m: typeof robust, before: Map<string, string>) =>
      [...m.stateDict()].filter(([k, v]) => Buffer.from(v.toBytes()).toString("base64") !== before.get(k)).map(([k]) => k);
    const levels = method.levels.map((l) => ({ optimizer: sgd(l.parameters) }));
    const [lower, upper] = method.levels;
    const s0 = snapshot(standard);
    const r0 = snapshot(robust);
    trainStep(
      dual,
      { name: "lower", levels: [lower as NonNullable<typeof lower>] },
      [levels[0] as { optimizer: ReturnType<typeof sgd> }],
      batch(),
    );
    assert.deepEqual(changed(standard, s0), [], "level 1 left F_S alone");
    assert.ok(changed(robust, r0).length > 300, "level 1 moved F_R");
    const s1 = snapshot(standard);
    const r1 = snapshot(robust);
    trainStep(
      dual,
      { name: "upper", levels: [upper as NonNullable<typeof upper>] },
      [levels[1] as { optimizer: ReturnType<typeof sgd> }],
      batch(),
    );
    assert.deepEqual(changed(robust, r1), [], "level 2 left F_R alone (parameters and BatchNorm statistics)");
    assert.ok(changed(standard, s1).length > 300, "level 2 moved F_S");
    for (const l of levels) l.optimizer.dispose();
    dual.dispose();
  });
});
