import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { autograd, manualSeed, memoryStats, rand, scope, type Tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";

/** Three branches on disjoint data; two share the leaf w (its gradient accumulates from both threads). */
function setup(): { w: Tensor; v: Tensor; inputs: Tensor[] } {
  manualSeed(11);
  const w = rand([6, 4], { dtype: "float64" }).keep().requiresGrad_();
  const v = rand([4, 3], { dtype: "float64" }).keep().requiresGrad_();
  const inputs = [6, 6, 3].map((n) => rand([5, n], { dtype: "float64" }).keep());
  return { w, v, inputs };
}

function branchOutputs(w: Tensor, v: Tensor, inputs: Tensor[]): Tensor[] {
  const [a, b, c] = inputs as [Tensor, Tensor, Tensor];
  return [a.matmul(w).tanh().matmul(v), b.matmul(w.mul(2)).sigmoid(), c.matmul(v.T).relu()];
}

function lossOf(ys: Tensor[]): Tensor {
  const [y0, y1, y2] = ys as [Tensor, Tensor, Tensor];
  return y0.pow(2).sum().add(y1.mul(3).sum()).add(y2.sum().mul(0.5));
}

/** Drops the leaves' gradients and frees the fixture. */
function teardown(w: Tensor, v: Tensor, inputs: Tensor[]): void {
  w.grad = null;
  v.grad = null;
  for (const t of [w, v, ...inputs]) t.dispose();
}

function grads(w: Tensor, v: Tensor): number[][] {
  const out = [w, v].map((p) => {
    const g = p.grad as Tensor;
    const a = g.toFlatArray();
    g.dispose();
    return a;
  });
  w.grad = null;
  v.grad = null;
  return out;
}

describe("autograd.concurrentBranches", () => {
  it("gives the gradients of the ordinary sequential backward", () => {
    const live = memoryStats().liveTensors;
    const { w, v, inputs } = setup();
    scope(() => lossOf(branchOutputs(w, v, inputs)).backward());
    const expected = grads(w, v);
    scope(() => lossOf(autograd.concurrentBranches(branchOutputs(w, v, inputs))).backward());
    const actual = grads(w, v);
    assertClose(actual[0] as number[], expected[0] as number[], { atol: 1e-12, rtol: 1e-12 }, "grad w");
    assertClose(actual[1] as number[], expected[1] as number[], { atol: 1e-12, rtol: 1e-12 }, "grad v");
    teardown(w, v, inputs);
    assert.equal(memoryStats().liveTensors, live);
  });

  it("returns copies with the roots' values, and skips branches the loss does not use", () => {
    const { w, v, inputs } = setup();
    scope(() => {
      const ys = branchOutputs(w, v, inputs);
      const zs = autograd.concurrentBranches(ys);
      zs.forEach((z, i) => {
        assert.deepEqual(z.toFlatArray(), (ys[i] as Tensor).toFlatArray());
        assert.equal(z.requiresGrad, true);
      });
      // Only the third branch: v gets c's gradient, w none at all.
      (zs[2] as Tensor).sum().backward();
    });
    assert.equal(w.grad, null);
    const gv = v.grad as Tensor;
    const expected = scope(() => {
      const c = inputs[2] as Tensor;
      // d/dv sum(relu(c v^T)) = (1[c v^T > 0])^T c
      return c.matmul(v.T).gt(0).to("float64").T.matmul(c).toFlatArray();
    });
    assertClose(gv.toFlatArray(), expected, { atol: 1e-12 }, "grad v");
    gv.dispose();
    teardown(w, v, inputs);
  });

  it("honours retainGraph: a second backward through the same graph adds the same gradients", () => {
    const { w, v, inputs } = setup();
    scope(() => {
      const loss = lossOf(autograd.concurrentBranches(branchOutputs(w, v, inputs)));
      loss.backward(undefined, { retainGraph: true });
      const once = (w.grad as Tensor).toFlatArray();
      loss.backward();
      const twice = (w.grad as Tensor).toFlatArray();
      assertClose(
        twice,
        once.map((x) => 2 * x),
        { atol: 1e-12, rtol: 1e-12 },
        "accumulated grad",
      );
    });
    teardown(w, v, inputs);
  });

  it("refuses createGraph instead of dropping second-order terms", () => {
    const { w, v, inputs } = setup();
    scope(() => {
      const loss = lossOf(autograd.concurrentBranches(branchOutputs(w, v, inputs)));
      assert.throws(() => loss.backward(undefined, { createGraph: true }), /create_graph=true is not supported/);
    });
    teardown(w, v, inputs);
  });

  it("refuses autograd.grad through the node, allowUnused or not, instead of a silent null or zero", () => {
    const { w, v, inputs } = setup();
    scope(() => {
      const loss = lossOf(autograd.concurrentBranches(branchOutputs(w, v, inputs)));
      const message = /goes through experts differentiated concurrently/;
      assert.throws(() => autograd.grad(loss, w), message);
      assert.throws(() => autograd.grad(loss, [w, v], { allowUnused: true }), message);
    });
    assert.equal(w.grad, null);
    teardown(w, v, inputs);
  });

  it("detects a root changed in place after the forward, and a second backward without retainGraph", () => {
    const { w, v, inputs } = setup();
    scope(() => {
      const ys = branchOutputs(w, v, inputs);
      const loss = lossOf(autograd.concurrentBranches(ys));
      (ys[0] as Tensor).mul_(2);
      assert.throws(() => loss.backward(), /modified by an inplace operation/);
    });
    w.grad = null;
    v.grad = null;
    scope(() => {
      const loss = lossOf(autograd.concurrentBranches(branchOutputs(w, v, inputs)));
      loss.backward();
      assert.throws(() => loss.backward(), /backward through the graph a second time/);
    });
    teardown(w, v, inputs);
  });
});
