// Gradient-ready notifications (the overlap of DataParallel): every parameter's gradient is
// announced exactly once per backward pass, after it is final; on the JS thread at once, and
// from the MoE's concurrent expert threads through drain().
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GradReadyHooks } from "../../src/dist/grad-ready.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { Linear, ReLU, Sequential } from "../../src/nn/index.js";
import { getNumThreads, manualSeed, rand, scope, setNumThreads, type Tensor } from "../../src/tensor/index.js";

describe("GradReadyHooks", () => {
  it("a plain model: each gradient announced once, on this thread, when it is already in .grad", () => {
    manualSeed(3);
    const net = new Sequential(new Linear(5, 7), new ReLU(), new Linear(7, 2));
    const params = net.parameters();
    const seen: number[] = [];
    const hooks = new GradReadyHooks(params, (i) => {
      // Final when announced: .grad is set (and stays what backward leaves).
      const g = (params[i] as Tensor).grad;
      assert.ok(g !== null, `parameter ${i} announced without a gradient`);
      g.dispose();
      seen.push(i);
    });
    try {
      for (let pass = 0; pass < 2; pass++) {
        seen.length = 0;
        net.zeroGrad();
        scope(() =>
          net
            .forward(rand([3, 5]))
            .sum()
            .backward(),
        );
        assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
        assert.deepEqual(hooks.drain(), []);
      }
      hooks.remove();
      seen.length = 0;
      scope(() =>
        net
          .forward(rand([3, 5]))
          .sum()
          .backward(),
      );
      assert.deepEqual(seen, [], "removed hooks still fire");
    } finally {
      hooks.remove();
      net.dispose();
    }
  });

  // The experts' accumulators run on the pool's threads: those notifications are queued and
  // handed over at the next one on this thread (the router's) or by drain().
  it("a MoE with concurrent expert backward: still every gradient exactly once", () => {
    const threads = getNumThreads();
    setNumThreads(2);
    manualSeed(4);
    const moe = new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })], { k: 2 });
    const params = moe.parameters();
    const seen: number[] = [];
    const hooks = new GradReadyHooks(params, (i) => seen.push(i));
    try {
      moe.train();
      scope(() =>
        moe
          .forward(rand([4, 3, 32, 32]))
          .sum()
          .backward(),
      );
      const drained = hooks.drain();
      const all = [...seen, ...drained].sort((a, b) => a - b);
      assert.deepEqual(
        all,
        params.map((_, i) => i),
        "every parameter exactly once",
      );
    } finally {
      hooks.remove();
      moe.zeroGrad();
      moe.dispose();
      setNumThreads(threads);
    }
  });
});
