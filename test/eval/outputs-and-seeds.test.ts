// Issue 15, item 7: every adversarial example an evaluation counts is checked against the
// threat model (within eps up to 1e-6 relative and one float rounding, in [0, 1], finite),
// default runs are reproducible (seed 0), and the helpers the MoE attacks expose run the
// model in eval mode as the attacks do.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExpertAttack, predict, projectL2, projectLinf, RouterAttack } from "../../src/attacks/index.js";
import {
  AdversarialOutputError,
  checkAdversarialOutput,
  evaluateRobustness,
  generateAdversarial,
  type RobustnessReport,
} from "../../src/eval/index.js";
import { dispose, manualSeed, noGrad, rand, randn, scope, type Tensor } from "../../src/tensor/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { linearModel, synthData, tinyMoE } from "./helpers.js";

const FAST = { apgdSteps: 5, queries: 20, moeSteps: 3 };

function withoutTimes(r: RobustnessReport): unknown {
  return JSON.parse(JSON.stringify(r, (k, v) => (k === "seconds" ? 0 : v)));
}

describe("adversarial outputs and seeds", () => {
  guardLeaks();

  it("checkAdversarialOutput accepts points projected onto the ball (float32, float64, L-inf, L2) and rejects the rest", () => {
    manualSeed(0);
    for (const dtype of ["float32", "float64"] as const) {
      for (const eps of [2 / 255, 8 / 255, 0.5]) {
        scope(() => {
          // Away from the box's faces, so that clipping to the box cannot pull an outside point back in.
          const x = rand([16, 3, 8, 8]).to(dtype).mul(0.5).add(0.25);
          // Far outside the ball, then projected: every coordinate sits on the ball's boundary or the box.
          const far = x.add(randn([16, 3, 8, 8]).to(dtype).sign().mul(10));
          const linf = projectLinf(far, x, eps);
          const l2 = projectL2(x.add(randn([16, 3, 8, 8]).to(dtype)), x, eps);
          checkAdversarialOutput("linf", x, linf, eps, "linf");
          checkAdversarialOutput("l2", x, l2, eps, "l2");
          assert.throws(
            () => checkAdversarialOutput("attack 'a'", x, projectLinf(far, x, eps * 1.001), eps, "linf", 100),
            (e) => {
              return (
                e instanceof AdversarialOutputError && /attack 'a' returned .*sample 1\d\d has L-inf distance/.test(e.message)
              );
            },
          );
          assert.throws(
            () => checkAdversarialOutput("l2", x, projectL2(x.add(randn([16, 3, 8, 8]).to(dtype)), x, eps * 1.001), eps, "l2"),
            /L2 distance/,
          );
        });
      }
    }
    scope(() => {
      const x = rand([2, 4]);
      assert.throws(() => checkAdversarialOutput("a", x, x.sub(1), 2, "linf"), /outside \[0, 1\]/);
      assert.throws(() => checkAdversarialOutput("a", x, x.div(0), 2, "linf"), /NaN or infinite/);
      assert.throws(() => checkAdversarialOutput("a", x, x.narrow(0, 0, 1), 2, "linf"), /shape \[1, 4\], expected \[2, 4\]/);
      assert.throws(() => checkAdversarialOutput("a", x, x.double(), 2, "linf"), /dtype float64, expected float32/);
    });
  });

  it("a default run (no seed given) is seeded: the same numbers twice, whatever the global generator did", () => {
    const ds = synthData(14, 3);
    const model = tinyMoE(4);
    const o = { attacks: ["fgsm", "pgd3", "apgd-ce", "square"], eps: 0.1, batchSize: 5, ...FAST } as const;
    manualSeed(11);
    const a = evaluateRobustness(model, ds, o);
    manualSeed(12345);
    const b = evaluateRobustness(model, ds, o);
    assert.equal(a.seed, 0);
    assert.deepEqual(withoutTimes(a), withoutTimes(b));
    const exA = generateAdversarial(model, ds, "pgd3", { eps: 0.1, batchSize: 5 });
    manualSeed(99);
    const exB = generateAdversarial(model, ds, "pgd3", { eps: 0.1, batchSize: 5 });
    assert.equal(
      scope(() => exA.xAdv.sub(exB.xAdv).abs().max().item()),
      0,
    );
    // The examples are those behind the evaluation's RA (same seeds, same batches).
    assert.equal(exA.robustAccuracy, a.attacks[1]?.accuracy);
    dispose([exA, exB]);
    model.dispose();
  });

  it("predict, frozenRouter, frozenExperts and expertOutputs run the model in eval mode", () => {
    const moe = tinyMoE(6);
    const x = scope(() => rand([9, 1, 4, 4]));
    const [clean, cleanPred] = noGrad(() => scope(() => [moe.forward(x), moe.forward(x).argmax(1)] as const));
    // Training mode with router noise: a forward in that mode would route at random.
    moe.routerNoise = 50;
    moe.train();
    const expert = new ExpertAttack(moe, { steps: 1 });
    const router = new RouterAttack(moe, { steps: 1 });
    const same = (t: Tensor, what: string) =>
      assert.equal(
        scope(() => t.sub(clean).abs().max().item()),
        0,
        what,
      );
    noGrad(() =>
      scope(() => {
        assert.equal(predict(moe, x).eq(cleanPred).all().item(), 1, "predict");
        same(expert.frozenRouter(x)(x), "frozenRouter");
        same(router.frozenExperts(x)(x), "frozenExperts");
        const outputs = router.expertOutputs(x);
        const eval0 = (() => {
          moe.eval();
          const o = moe.expertLogits(x, 0);
          moe.train();
          return o;
        })();
        assert.equal(outputs.select(1, 0).sub(eval0).abs().max().item(), 0, "expertOutputs");
      }),
    );
    assert.equal(moe.training, true, "modes are restored");
    dispose([x, clean, cleanPred]);
    moe.dispose();
  });

  it("attack outputs are checked in generateAdversarial too (its loop is the evaluation's)", () => {
    const ds = synthData(6, 1);
    const model = linearModel(2);
    const ex = generateAdversarial(model, ds, "fgsm", { eps: 2 / 255 });
    checkAdversarialOutput("fgsm", ex.x, ex.xAdv, 2 / 255, "linf");
    dispose(ex);
    model.dispose();
  });
});
