import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DualModel, ExpertUsage, MoE } from "../../src/models/index.js";
import { softmax } from "../../src/nn/functional.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { autograd, manualSeed, memoryStats, noGrad, rand, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { gradcheck } from "../helpers/gradcheck.js";

const SHAPE = [1, 2, 2] as const;

function tinyMoE(k: number, options: { renormalize?: boolean; gating?: "topk" | "dense" | "hard" } = {}): MoE<Sequential> {
  const experts = Array.from({ length: 3 }, () => new Sequential(new Flatten(), new Linear(4, 5)));
  const moe = new MoE(experts, { k, imageShape: SHAPE, normalize: { mean: [0.5], std: [0.25] }, ...options });
  return moe.to("float64");
}

/** The MoE written out sample by sample, from its parts: an independent reference. */
function perSample(moe: MoE<Sequential>, x: Tensor): number[][] {
  return scope(() => {
    const probs = softmax(moe.router.forward(moe.normalize.forward(x)), -1).toArray() as number[][];
    const rows: number[][] = [];
    for (let b = 0; b < x.size(0); b++) {
      const p = probs[b] as number[];
      const order = p.map((v, i) => [v, i] as const).sort((a, c) => c[0] - a[0]);
      const chosen = moe.gating === "dense" ? order : order.slice(0, moe.k);
      const total = moe.renormalize ? chosen.reduce((s, [v]) => s + v, 0) : 1;
      const acc = new Array<number>(5).fill(0);
      for (const [v, i] of chosen) {
        const w = moe.gating === "hard" ? 1 : v / total;
        const y = moe.experts
          .at(i)
          .forward(x.narrow(0, b, 1))
          .toFlatArray();
        for (let j = 0; j < 5; j++) acc[j] = (acc[j] as number) + w * (y[j] as number);
      }
      rows.push(acc);
    }
    return rows;
  });
}

describe("MoE", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  for (const [k, renormalize, gating] of [
    [1, false, "topk"],
    [2, false, "topk"],
    [2, true, "topk"],
    [3, false, "dense"],
    [1, false, "hard"],
  ] as const) {
    it(`batched dispatch equals the per-sample definition (gating ${gating}, k ${k}, renormalize ${renormalize})`, () => {
      manualSeed(3);
      const moe = tinyMoE(k, { renormalize, gating });
      const x = rand([9, ...SHAPE], { dtype: "float64" });
      const out = scope(() => moe.forward(x));
      assertClose(out.toFlatArray(), perSample(moe, x).flat(), { atol: 1e-12, rtol: 1e-12 }, "MoE output");
      // forwardDetailed gives the same logits, and its gates count every sample once.
      const usage = new ExpertUsage(moe.numExperts);
      const detailed = scope(() => {
        const d = moe.forwardDetailed(x);
        usage.add(d.gates);
        return d.logits;
      });
      assertClose(detailed.toFlatArray(), out.toFlatArray(), { atol: 0, rtol: 0 }, "forwardDetailed logits");
      assert.equal(
        usage.counts().reduce((a, b) => a + b, 0),
        9,
      );
      usage.dispose();
      for (const t of [out, x, detailed]) t.dispose();
      moe.dispose();
    });
  }

  it("input gradients through the gate weights match finite differences (top-2)", () => {
    manualSeed(4);
    const moe = tinyMoE(2).eval();
    const x = rand([4, ...SHAPE], { dtype: "float64" });
    gradcheck(([xi]) => moe.forward(xi as Tensor), [x], { name: "moe top-2 input" });
    x.dispose();
    moe.dispose();
  });

  it("router gradient matches finite differences for top-1 without renormalising, and is absent for hard gating", () => {
    manualSeed(5);
    const moe = tinyMoE(1).eval();
    const x = rand([6, ...SHAPE], { dtype: "float64" }).keep();
    const w = moe.router.gate.weight;
    const loss = () => scope(() => moe.forward(x).pow(2).sum().item());
    const [g] = scope(() => autograd.grad(moe.forward(x).pow(2).sum(), [w]));
    const analytic = g!.toFlatArray();
    g!.dispose();
    const h = 1e-6;
    const numeric: number[] = [];
    const n = w.numel;
    for (let i = 0; i < n; i++) {
      const bump = (s: number) =>
        noGrad(() =>
          scope(() => {
            const d = new Float64Array(n);
            d[i] = s;
            w.add_(tensor(d, { shape: w.shape }));
          }),
        );
      bump(h);
      const up = loss();
      bump(-2 * h);
      const down = loss();
      bump(h);
      numeric.push((up - down) / (2 * h));
    }
    assertClose(analytic, numeric, { atol: 1e-6, rtol: 1e-5 }, "router weight gradient");
    assert.ok(
      analytic.some((v) => Math.abs(v) > 1e-4),
      "top-1 without renormalising must train the router",
    );

    const hard = tinyMoE(1, { gating: "hard" }).eval();
    const [gh] = scope(() => autograd.grad(hard.forward(x).pow(2).sum(), [hard.router.gate.weight], { allowUnused: true }));
    assert.equal(gh, null, "hard gating gives the router no gradient");
    x.dispose();
    moe.dispose();
    hard.dispose();
  });

  it("secondExpert is the router's runner-up and the load-balancing loss is 1 when balanced", () => {
    manualSeed(6);
    const moe = tinyMoE(1);
    const x = rand([8, ...SHAPE], { dtype: "float64" });
    const second = scope(() => moe.secondExpert(x).toFlatArray());
    const probs = scope(() => softmax(moe.router.forward(moe.normalize.forward(x)), -1).toArray() as number[][]);
    probs.forEach((p, b) => {
      const order = p.map((v, i) => [v, i] as const).sort((a, c) => c[0] - a[0]);
      assert.equal(second[b], order[1]?.[1]);
    });
    // Balanced by construction: zero router weights give uniform probabilities.
    noGrad(() => {
      moe.router.gate.weight.zero_();
      moe.router.gate.bias!.zero_();
    });
    // Every forwardDetailed returns its own loss, in the caller's scope like the logits.
    const aux = scope(() => moe.forwardDetailed(x).loadBalancingLoss.item());
    assertClose([aux], [1], { atol: 1e-12 }, "switch loss at uniform routing");
    x.dispose();
    moe.dispose();
  });

  it("DualModel mixes logits or probabilities with a settable alpha", () => {
    manualSeed(7);
    const s = new Linear(3, 4);
    const r = new Linear(3, 4);
    const dual = new DualModel(s, r, { alpha: 0.25 });
    const x = rand([2, 3]);
    const [ys, yr, yd] = scope(() => [s.forward(x).toFlatArray(), r.forward(x).toFlatArray(), dual.forward(x).toFlatArray()]);
    assertClose(
      yd!,
      ys!.map((v, i) => 0.75 * v + 0.25 * (yr![i] as number)),
      { atol: 1e-6 },
      "logit mix",
    );
    dual.alpha = 1;
    assertClose(
      scope(() => dual.forward(x).toFlatArray()),
      yr!,
      { atol: 1e-6 },
      "alpha = 1 is the robust model",
    );
    dual.space = "probs";
    dual.alpha = 0.5;
    // The log of the mixture: exp sums to 1 and equals 0.5 softmax F_S + 0.5 softmax F_R.
    const p = scope(() => dual.forward(x).exp().sum(-1).toFlatArray());
    assertClose(p, [1, 1], { atol: 1e-6 }, "prob mix sums to 1");
    const mixed = scope(() => dual.forward(x).exp().toFlatArray());
    const rows = (v: number[]) => [v.slice(0, 4), v.slice(4, 8)];
    const soft = (v: number[]) =>
      rows(v).flatMap((row) => {
        const m = Math.max(...row);
        const e = row.map((z) => Math.exp(z - m));
        const t = e.reduce((a, b) => a + b, 0);
        return e.map((z) => z / t);
      });
    const [ps, pr] = [soft(ys!), soft(yr!)];
    assertClose(
      mixed,
      ps.map((v, i) => 0.5 * v + 0.5 * (pr[i] as number)),
      { atol: 1e-6 },
      "log of the prob mixture",
    );
    assert.throws(() => {
      dual.alpha = 1.5;
    }, /alpha must be in \[0, 1\]/);
    x.dispose();
    dual.dispose();
  });
});

describe("MoE concurrent expert backward", () => {
  const paramGrads = (moe: MoE<Sequential>): Map<string, number[]> => {
    const out = new Map<string, number[]>();
    for (const [name, p] of moe.namedParameters()) {
      const g = p.grad;
      out.set(name, g === null ? [] : g.toFlatArray());
      g?.dispose();
    }
    moe.zeroGrad();
    return out;
  };

  for (const [k, gating] of [
    [1, "topk"],
    [2, "topk"],
    [3, "dense"],
  ] as const) {
    it(`gives the sequential backward's gradients (gating ${gating}, k ${k})`, () => {
      const live = memoryStats().liveTensors;
      manualSeed(7);
      const moe = tinyMoE(k, { gating });
      moe.train();
      const x = rand([16, ...SHAPE], { dtype: "float64" }).keep();
      const run = (concurrent: boolean) => {
        moe.concurrentBackward = concurrent;
        scope(() => moe.forward(x).pow(2).sum().backward());
        return paramGrads(moe);
      };
      const sequential = run(false);
      const concurrent = run(true);
      for (const [name, g] of sequential) {
        assert.ok(g.length > 0, `${name} got no gradient`);
        assertClose(concurrent.get(name) as number[], g, { atol: 1e-12, rtol: 1e-12 }, name);
      }
      x.dispose();
      moe.dispose();
      assert.equal(memoryStats().liveTensors, live);
    });
  }

  it("is used for a training forward only: input gradients and eval mode keep the ordinary graph", () => {
    manualSeed(8);
    const moe = tinyMoE(1);
    const x = rand([12, ...SHAPE], { dtype: "float64" }).keep();
    const expertWeight = moe.experts.at(0).namedParameters().next().value?.[1] as Tensor;
    scope(() => {
      moe.train();
      // Training forward without input gradient: the experts are behind the concurrent node,
      // so autograd.grad is refused, not answered with 0 or null.
      assert.throws(() => autograd.grad(moe.forward(x).sum(), expertWeight), /differentiated concurrently/);
      assert.throws(
        () => autograd.grad(moe.forward(x).sum(), expertWeight, { allowUnused: true }),
        /differentiated concurrently/,
      );
      moe.concurrentBackward = false;
      assert.ok(autograd.grad(moe.forward(x).sum(), expertWeight)[0] !== null);
      moe.concurrentBackward = true;
      // An input that needs a gradient (an attack in training mode) keeps the ordinary graph.
      const xg = x.clone().requiresGrad_();
      const [gx] = autograd.grad(moe.forward(xg).sum(), xg);
      moe.concurrentBackward = false;
      const [gxRef] = autograd.grad(moe.forward(xg).sum(), xg);
      assertClose((gx as Tensor).toFlatArray(), (gxRef as Tensor).toFlatArray(), { atol: 1e-12 }, "input gradient");
      moe.concurrentBackward = true;
      moe.eval();
      assert.ok(autograd.grad(moe.forward(x).sum(), expertWeight)[0] !== null);
    });
    x.dispose();
    moe.dispose();
  });
});
