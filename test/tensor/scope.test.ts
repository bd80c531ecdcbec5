import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dispose, keep, memoryStats, ones, randn, scope, tensor, zeros } from "../../src/tensor/index.js";

describe("scope", () => {
  it("frees intermediates and keeps the returned tensor", () => {
    const before = memoryStats().liveTensors;
    const out = scope(() => {
      const a = ones([4, 4]);
      const b = a.mul(3).add(1);
      return b.sum();
    });
    assert.equal(memoryStats().liveTensors, before + 1);
    assert.equal(out.item(), 64);
    out.dispose();
    assert.equal(memoryStats().liveTensors, before);
  });

  it("keeps tensors inside returned arrays and objects and hands them to the parent scope", () => {
    const before = memoryStats().liveTensors;
    scope(() => {
      const inner = scope(() => ({ pair: [zeros([2]), ones([2])], junk: 1 }));
      assert.equal(memoryStats().liveTensors, before + 2);
      assert.equal(inner.pair[1]?.sum().item(), 2);
    });
    assert.equal(memoryStats().liveTensors, before);
  });

  it("frees everything when fn throws", () => {
    const before = memoryStats().liveTensors;
    assert.throws(() =>
      scope(() => {
        randn([3]);
        throw new Error("boom");
      }),
    );
    assert.equal(memoryStats().liveTensors, before);
  });

  it("does not free kept tensors", () => {
    const before = memoryStats().liveTensors;
    let kept: ReturnType<typeof tensor> | undefined;
    scope(() => {
      kept = keep(tensor([1, 2, 3]));
      zeros([5]);
    });
    assert.equal(memoryStats().liveTensors, before + 1);
    assert.deepEqual(kept?.toArray(), [1, 2, 3]);
    dispose(kept);
    assert.equal(memoryStats().liveTensors, before);
  });

  it("rejects async functions instead of freeing at the wrong time", () => {
    assert.throws(() => scope(() => Promise.resolve(1)), /synchronous/);
  });

  it("using a disposed tensor is an error, disposing twice is not", () => {
    const t = ones([2]);
    t.dispose();
    t.dispose();
    assert.throws(() => t.add(1), /disposed/);
  });
});
