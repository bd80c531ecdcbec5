import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as F from "../../src/nn/functional.js";
import { autograd, manualSeed, memoryStats, noGrad, randint, randn, scope, type Tensor } from "../../src/tensor/index.js";

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

describe("native memory", () => {
  it("2,000 training-like steps inside scopes keep live tensors and RSS flat", () => {
    manualSeed(1);
    const start = memoryStats().liveTensors;
    const w1 = scope(() => randn([8, 3, 3, 3]).mul(0.1))
      .requiresGrad_()
      .keep();
    const w2 = scope(() => randn([10, 8]).mul(0.1))
      .requiresGrad_()
      .keep();
    const params = [w1, w2];
    const step = () =>
      scope(() => {
        const x = randn([32, 3, 12, 12]);
        const y = randint(0, 10, [32]);
        // A PGD-like input gradient followed by a parameter update, as in adversarial training.
        const xa = x.requiresGrad_();
        const logits = (inp: Tensor) =>
          F.linear(F.adaptiveAvgPool2d(F.relu(F.conv2d(inp, w1, null, { padding: 1 })), 1).flatten(1), w2);
        const [gx] = autograd.grad(F.crossEntropy(logits(xa), y), xa);
        const xadv = noGrad(() => x.add(gx!.sign().mul(0.01)).clamp(0, 1));
        const loss = F.crossEntropy(logits(xadv), y);
        const grads = autograd.grad(loss, params);
        noGrad(() => {
          for (const [i, p] of params.entries()) p.sub_(grads[i]!.mul(0.05));
        });
        return loss.item();
      });
    for (let i = 0; i < 500; i++) step();
    const liveAfterWarmup = memoryStats().liveTensors;
    const rssAfterWarmup = rssMiB();
    let last = 0;
    for (let i = 0; i < 1500; i++) last = step();
    assert.ok(Number.isFinite(last));
    assert.equal(memoryStats().liveTensors, liveAfterWarmup, "live tensors grew during training steps");
    assert.equal(liveAfterWarmup, start + 2);
    const growth = rssMiB() - rssAfterWarmup;
    // A step allocates ~0.5 MB of activations: leaking even half of one step's memory would
    // grow RSS by hundreds of MiB; allocator noise under load stays within a few tens.
    assert.ok(growth < 32, `RSS grew by ${growth.toFixed(1)} MiB over 1,500 steps`);
    for (const p of params) p.dispose();
    assert.equal(memoryStats().liveTensors, start);
  });

  it("reports bytes of live tensors", () => {
    const before = memoryStats();
    const t = randn([256, 256]);
    const after = memoryStats();
    assert.equal(after.liveTensors - before.liveTensors, 1);
    assert.equal(after.liveBytes - before.liveBytes, 256 * 256 * 4);
    t.dispose();
    assert.deepEqual(memoryStats(), before);
  });
});
