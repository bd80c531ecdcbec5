// IBP (src/certify/ibp.ts) against independent references: random and PGD-adversarial points
// inside the ball (a small PGD written here, not src/attacks), closed forms for single layers
// (a conv's matrix built from its responses to basis images), a line search for the first route
// flip of a linear router, and PGD with restarts on a model trained here.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Interval, ibpBounds, ibpCertify, ibpClassifierBounds, inputBox, marginLowerBound } from "../../src/certify/ibp.js";
import { DualModel, MoE, Normalize, ResNet18 } from "../../src/models/index.js";
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  GELU,
  Linear,
  ReLU,
  Sequential,
  type UnaryModule,
} from "../../src/nn/index.js";
import { manualSeed, memoryStats, noGrad, rand, randn, scope, type Tensor, tensor, zeros } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import {
  checkSoundness,
  MOE_SHAPE,
  mlpExpert,
  pgdBreaks,
  randomizeBatchNorms,
  smallMoE,
  smallNet,
  trainedSyntheticMoE,
} from "./ibp-helpers.js";

describe("IBP", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  describe("closed forms", () => {
    it("a Linear layer's bounds are exactly W mu +- |W| r, and attained at a vertex", () => {
      manualSeed(1);
      scope(() => {
        const lin = new Linear(6, 3).to("float64");
        const lower = rand([2, 6], { dtype: "float64" });
        const upper = lower.add(rand([2, 6], { dtype: "float64" }).mul(0.2));
        const b = ibpBounds(lin, lower, upper);
        const w = lin.weight.toArray() as number[][];
        const bias = lin.bias?.toFlatArray() as number[];
        const l = lower.toArray() as number[][];
        const u = upper.toArray() as number[][];
        const expLo: number[] = [];
        const expHi: number[] = [];
        const vertices: number[][] = [];
        for (let n = 0; n < 2; n++) {
          for (let o = 0; o < 3; o++) {
            let lo = bias[o] as number;
            let hi = bias[o] as number;
            const vertex: number[] = [];
            for (let i = 0; i < 6; i++) {
              const wi = (w[o] as number[])[i] as number;
              const li = (l[n] as number[])[i] as number;
              const ui = (u[n] as number[])[i] as number;
              lo += Math.min(wi * li, wi * ui);
              hi += Math.max(wi * li, wi * ui);
              vertex.push(wi > 0 ? ui : li);
            }
            expLo.push(lo);
            expHi.push(hi);
            vertices.push(vertex);
          }
        }
        assertClose(b.lower.toFlatArray(), expLo, { atol: 1e-12, rtol: 1e-12 }, "lower");
        assertClose(b.upper.toFlatArray(), expHi, { atol: 1e-12, rtol: 1e-12 }, "upper");
        // The maximising vertex attains the upper bound: the bound is the exact interval.
        const atVertex = noGrad(() => lin.forward(tensor(vertices, { dtype: "float64" }))).toArray() as number[][];
        const attained = vertices.map((_, idx) => (atVertex[idx] as number[])[idx % 3] as number);
        assertClose(attained, expHi, { atol: 1e-12, rtol: 1e-12 }, "attained");
        lin.dispose();
      });
    });

    it("a Conv2d's bounds equal the exact interval of its matrix (built from basis images)", () => {
      manualSeed(2);
      scope(() => {
        const conv = new Conv2d(2, 3, 3, { stride: 2, padding: 1 }).to("float64");
        const shape = [2, 5, 5];
        const d = 50;
        const basis = noGrad(() => {
          const eye = zeros([d, d], { dtype: "float64" });
          for (let i = 0; i < d; i++) eye.select(0, i).select(0, i).fill_(1);
          return eye.view(d, ...shape);
        });
        const zero = zeros([1, ...shape], { dtype: "float64" });
        const b0 = noGrad(() => conv.forward(zero)).flatten(); // the bias image
        const cols = noGrad(() => conv.forward(basis))
          .flatten(1)
          .sub(b0); // [d, out]
        const lower = rand([1, ...shape], { dtype: "float64" });
        const upper = lower.add(rand([1, ...shape], { dtype: "float64" }).mul(0.1));
        const mu = lower.add(upper).mul(0.5).flatten(1);
        const r = upper.sub(lower).mul(0.5).flatten(1);
        const c = mu.mm(cols).add(b0);
        const rad = r.mm(cols.abs());
        const b = ibpBounds(conv, lower, upper);
        assertClose(b.lower.flatten().toFlatArray(), c.sub(rad).toFlatArray(), { atol: 1e-12, rtol: 1e-10 }, "lower");
        assertClose(b.upper.flatten().toFlatArray(), c.add(rad).toFlatArray(), { atol: 1e-12, rtol: 1e-10 }, "upper");
        conv.dispose();
      });
    });

    it("monotone layers (ReLU, Normalize, pooling, Flatten) and eval BatchNorm are exact at the ends", () => {
      manualSeed(3);
      scope(() => {
        const lower = randn([2, 3, 4, 4], { dtype: "float64" });
        const upper = lower.add(rand([2, 3, 4, 4], { dtype: "float64" }));
        const layers: [string, UnaryModule][] = [
          ["relu", new ReLU()],
          ["normalize", new Normalize([0.1, 0.2, 0.3], [0.5, 0.25, 2]).to("float64")],
          ["pool", new AdaptiveAvgPool2d(2)],
          ["flatten", new Flatten()],
        ];
        for (const [name, m] of layers) {
          const b = ibpBounds(m, lower, upper);
          assertClose(b.lower.toFlatArray(), noGrad(() => m.forward(lower)).toFlatArray(), { atol: 1e-14 }, `${name} lower`);
          assertClose(b.upper.toFlatArray(), noGrad(() => m.forward(upper)).toFlatArray(), { atol: 1e-14 }, `${name} upper`);
        }
        // BatchNorm with negative scales: per channel the ends swap; both are attained.
        const bn = new BatchNorm2d(3).to("float64");
        randomizeBatchNorms(bn);
        bn.eval();
        const b = ibpBounds(bn, lower, upper);
        const fl = noGrad(() => bn.forward(lower));
        const fu = noGrad(() => bn.forward(upper));
        assertClose(b.lower.toFlatArray(), fl.minimum(fu).toFlatArray(), { atol: 1e-12 }, "bn lower");
        assertClose(b.upper.toFlatArray(), fl.maximum(fu).toFlatArray(), { atol: 1e-12 }, "bn upper");
        bn.dispose();
        for (const [, m] of layers) m.dispose();
      });
    });

    it("eps = 0 gives the forward itself; the pairwise bounds of a Linear head are exact differences", () => {
      manualSeed(4);
      scope(() => {
        const net = smallNet().to("float64");
        randomizeBatchNorms(net);
        net.eval();
        const x = rand([3, 3, 8, 8], { dtype: "float64" });
        const b = ibpClassifierBounds(net, x, x);
        const out = noGrad(() => net.forward(x));
        assertClose(b.lower.toFlatArray(), out.toFlatArray(), { atol: 1e-10 }, "lower");
        assertClose(b.upper.toFlatArray(), out.toFlatArray(), { atol: 1e-10 }, "upper");
        const diff = out.unsqueeze(2).sub(out.unsqueeze(1));
        assertClose(b.diffLower.toFlatArray(), diff.toFlatArray(), { atol: 1e-10 }, "differences");
        net.dispose();
      });
    });
  });

  describe("soundness: random and PGD points stay inside the bounds", () => {
    it("small conv/BN/residual/pool/linear nets (several seeds)", () => {
      for (const seed of [10, 11, 12]) {
        manualSeed(seed);
        const net = smallNet().to("float64");
        randomizeBatchNorms(net);
        net.eval();
        checkSoundness(net, [3, 8, 8], `small net seed ${seed}`, [0.5 / 255, 4 / 255, 32 / 255]);
        net.dispose();
      }
    });

    it("a tiny ResNet18 (width 2, projection shortcuts)", () => {
      manualSeed(20);
      const net = new ResNet18({ width: 2, numClasses: 4 }).to("float64");
      randomizeBatchNorms(net);
      net.eval();
      checkSoundness(net, [3, 8, 8], "resnet18", [1 / 255, 8 / 255], 5);
      net.dispose();
    });

    for (const [gating, k, renormalize, router] of [
      ["topk", 1, false, "linear"],
      ["topk", 1, false, "conv"],
      ["topk", 2, false, "linear"],
      ["topk", 2, true, "linear"],
      ["topk", 1, true, "linear"],
      ["dense", 3, false, "linear"],
      ["hard", 1, false, "linear"],
    ] as const) {
      it(`a MoE (gating ${gating}, k ${k}, renormalize ${renormalize}, ${router} router)`, () => {
        manualSeed(30 + k);
        const moe = smallMoE(gating, k, renormalize, router);
        checkSoundness(moe, MOE_SHAPE, `moe ${gating}/${k}/${renormalize}/${router}`, [1 / 255, 8 / 255, 32 / 255]);
        // At the largest eps the route does change for some samples (the union is exercised).
        scope(() => {
          const x = rand([16, ...MOE_SHAPE], { dtype: "float64" });
          const box = inputBox(x, 32 / 255);
          const b = ibpClassifierBounds(moe, box.lower, box.upper);
          assert.ok(b.route !== undefined, "route bounds");
          if (gating !== "dense") {
            assert.ok(b.route.stable.logicalNot().any().item(), "no sample has a reachable second expert at 32/255");
          }
        });
        moe.dispose();
      });
    }

    for (const space of ["logits", "probs"] as const) {
      it(`a dual model of two MoEs (${space} space)`, () => {
        manualSeed(40);
        const dual = new DualModel(smallMoE("topk", 1, false), smallMoE("topk", 2, true), { alpha: 0.3, space });
        checkSoundness(dual, MOE_SHAPE, `dual ${space}`, [1 / 255, 8 / 255]);
        dual.dispose();
      });
    }
  });

  describe("the route", () => {
    it("a linear router's route is provably stable below the line-search flip distance and reachable above it", () => {
      manualSeed(50);
      scope(() => {
        const experts = [mlpExpert(16, 3), mlpExpert(16, 3)];
        const moe = new MoE(experts, { k: 1, imageShape: MOE_SHAPE, normalize: { mean: [0.5], std: [0.3] } });
        moe.to("float64").eval();
        const x = rand([6, ...MOE_SHAPE], { dtype: "float64" })
          .mul(0.6)
          .add(0.2);
        const clean = moe.gates(x).indices.select(1, 0).toFlatArray() as number[];
        const w = moe.router.gate.weight; // [2, 16]
        for (let n = 0; n < 6; n++) {
          const i = clean[n] as number;
          const j = 1 - i;
          // The direction that raises r_j - r_i fastest (std > 0: the sign of W_j - W_i).
          const dir = w
            .select(0, j)
            .sub(w.select(0, i))
            .sign()
            .view(1, ...MOE_SHAPE);
          const xn = x.narrow(0, n, 1);
          const gap = (eps: number) =>
            scope(() => {
              const r = moe.routerLogits(xn.add(dir.mul(eps)).clamp(0, 1));
              return r.select(1, j).sub(r.select(1, i)).item();
            });
          if (gap(1) < 0) continue; // the route cannot flip at all within [0, 1]
          let lo = 0;
          let hi = 1;
          for (let it = 0; it < 60; it++) {
            const mid = (lo + hi) / 2;
            if (gap(mid) >= 0) hi = mid;
            else lo = mid;
          }
          const below = ibpClassifierBounds(moe, ...boxAt(xn, hi * (1 - 1e-6)));
          const above = ibpClassifierBounds(moe, ...boxAt(xn, hi * (1 + 1e-6)));
          assert.equal(below.route?.stable.item(), 1, `sample ${n}: stable just below the flip at ${hi}`);
          assert.equal(above.route?.stable.item(), 0, `sample ${n}: not stable just above the flip at ${hi}`);
          assert.equal(above.route?.reachable.select(1, j).item(), 1, `sample ${n}: expert ${j} reachable`);
          // The line search's point really routes to j.
          const flipped = moe.gates(xn.add(dir.mul(hi * (1 + 1e-6))).clamp(0, 1)).indices.item();
          assert.equal(flipped, j, `sample ${n}: the point beyond the flip routes to ${j}`);
        }
        moe.dispose();
      });
    });

    it("with a stable top-1 route the bounds are the routed expert's times the softmax weight's interval", () => {
      manualSeed(51);
      scope(() => {
        const moe = new MoE([mlpExpert(16, 3), mlpExpert(16, 3), mlpExpert(16, 3)], {
          k: 1,
          imageShape: MOE_SHAPE,
          normalize: { mean: [0.5], std: [0.3] },
        });
        moe.to("float64").eval();
        const x = rand([8, ...MOE_SHAPE], { dtype: "float64" });
        const box = inputBox(x, 0.5 / 255);
        const b = ibpClassifierBounds(moe, box.lower, box.upper);
        const route = b.route;
        assert.ok(route !== undefined);
        assert.ok(route.stable.all().item(), "route stable at 0.5/255");
        const clean = moe.gates(x).indices.select(1, 0).toFlatArray() as number[];
        // The router bounds themselves, independently: exact interval of a linear map.
        const r = ibpBounds(moe.router, ...normalizedBox(moe, box));
        const rl = r.lower.toArray() as number[][];
        const ru = r.upper.toArray() as number[][];
        for (let n = 0; n < 8; n++) {
          const e = clean[n] as number;
          const rowL = rl[n] as number[];
          const rowU = ru[n] as number[];
          // p_e >= 1 / sum_i exp(ru_i - rl_e) (a looser but independent bound than IBP's pairwise one).
          const pLoose = 1 / rowU.reduce((s, v, i) => s + Math.exp(i === e ? 0 : v - (rowL[e] as number)), 0);
          const wl = route.weightLower.select(0, n).select(0, e).item();
          const wu = route.weightUpper.select(0, n).select(0, e).item();
          const pClean = noGrad(() => moe.gates(x.narrow(0, n, 1)).weights.item());
          assert.ok(wl <= pClean && pClean <= wu, `sample ${n}: clean weight ${pClean} outside [${wl}, ${wu}]`);
          assert.ok(wl >= Math.max(pLoose, 1 / 3) - 1e-12, `sample ${n}: weight bound ${wl} looser than ${pLoose}`);
          const eb = ibpClassifierBounds(moe.experts.at(e), box.lower.narrow(0, n, 1), box.upper.narrow(0, n, 1));
          const fl = eb.lower.toFlatArray() as number[];
          const fu = eb.upper.toFlatArray() as number[];
          const lo = fl.map((v) => Math.min(wl * v, wu * v));
          const hi = fu.map((v) => Math.max(wl * v, wu * v));
          assertClose(b.lower.select(0, n).toFlatArray(), lo, { atol: 1e-12 }, `sample ${n} lower`);
          assertClose(b.upper.select(0, n).toFlatArray(), hi, { atol: 1e-12 }, `sample ${n} upper`);
        }
        moe.dispose();
      });
    });
  });

  describe("certification", () => {
    it("certifies some samples of a model trained here, and PGD with restarts breaks none of them", () => {
      manualSeed(60);
      const task = trainedSyntheticMoE();
      const { moe, sample } = task;
      const eps = [1 / 255, 2 / 255, 4 / 255, 8 / 255, 32 / 255];
      scope(() => {
        const { x, y } = sample(200);
        const res = ibpCertify(moe, x, y, eps, { batchSize: 64 });
        const counts = res.certified.map((row) => row.filter(Boolean).length);
        assert.ok((counts[0] as number) > 0, `nothing certified at 1/255 (${counts})`);
        // Monotone in eps: a smaller ball inside a certified one is certified.
        for (let i = 1; i < eps.length; i++) {
          res.certified[i]?.forEach((c, n) => {
            if (c) assert.ok(res.certified[i - 1]?.[n], `sample ${n} certified at ${eps[i]} but not at ${eps[i - 1]}`);
          });
        }
        const yArr = y.toFlatArray() as number[];
        eps.forEach((e, i) => {
          const idx = (res.certified[i] as boolean[]).flatMap((c, n) => (c ? [n] : []));
          if (idx.length === 0) return;
          const rows = tensor(idx, { dtype: "int64" });
          const xs = x.indexSelect(0, rows);
          const ys = y.indexSelect(0, rows);
          const broken = pgdBreaks(moe, xs, ys, e, 4, 40);
          assert.equal(broken, 0, `PGD broke ${broken} of ${idx.length} samples certified at ${e * 255}/255`);
          // Certified samples are correct at the clean point too.
          const pred = noGrad(() => moe.forward(xs))
            .argmax(1)
            .toFlatArray() as number[];
          pred.forEach((p, t) => {
            assert.equal(p, yArr[idx[t] as number]);
          });
        });
        // A dual model of the trained MoE with itself: the combined margin is the member's.
        const dual = new DualModel(moe, moe, { alpha: 0.4 });
        const dres = ibpCertify(dual, x, y, [1 / 255]);
        assert.deepEqual(dres.certified[0], res.certified[0], "dual(F, F) certifies what F certifies");
        const m1 = res.marginLower[0] as number[];
        (dres.marginLower[0] as number[]).forEach((v, n) => {
          assert.ok(Math.abs(v - (m1[n] as number)) <= 1e-5 * (1 + Math.abs(v)), `margin of dual(F,F) at ${n}`);
        });
      });
      task.dispose();
    });

    it("marginLowerBound takes the label's row and ignores the label column", () => {
      scope(() => {
        const d = tensor(
          [
            [
              [0, 2, -1],
              [-2, 0, 5],
              [1, -5, 0],
            ],
          ],
          { dtype: "float64" },
        );
        const b = { lower: zeros([1, 3]), upper: zeros([1, 3]), diffLower: d };
        assert.deepEqual(marginLowerBound(b, tensor([0], { dtype: "int64" })).toFlatArray(), [-1]);
        assert.deepEqual(marginLowerBound(b, tensor([1], { dtype: "int64" })).toFlatArray(), [-2]);
        assert.deepEqual(marginLowerBound(b, tensor([2], { dtype: "int64" })).toFlatArray(), [-5]);
      });
    });
  });

  describe("errors and memory", () => {
    it("refuses BatchNorm in training mode and names an unsupported module class", () => {
      scope(() => {
        const net = smallNet();
        const x = rand([1, 3, 8, 8]);
        assert.throws(() => ibpBounds(net, x, x), /BatchNorm2d is in training mode/);
        net.eval();
        const gelu = new Sequential(new Flatten(), new GELU(), new Linear(192, 2));
        assert.throws(() => ibpBounds(gelu, x, x), /no interval rule for module class 'GELU'/);
        assert.throws(() => ibpBounds(net, x.add(0.1), x), /lower > upper/);
        net.dispose();
        gelu.dispose();
      });
    });

    it("leaves no tensors behind (bounds, certify, float64 propagation of a float32 model)", () => {
      manualSeed(70);
      const moe = smallMoE("topk", 2, false);
      moe.to("float32");
      const x = rand([5, ...MOE_SHAPE]);
      const y = tensor([0, 1, 2, 3, 0], { dtype: "int64" });
      const run = () => {
        ibpCertify(moe, x, y, [1 / 255, 4 / 255], { batchSize: 2, dtype: "float64" });
        const b = ibpClassifierBounds(moe, x, x);
        for (const t of [b.lower, b.upper, b.diffLower]) t.dispose();
        if (b.route !== undefined) {
          const r = b.route;
          for (const t of [r.reachable, r.stable, r.weightLower, r.weightUpper, r.router.lower, r.router.upper]) t.dispose();
          r.router.diffLower.dispose();
        }
      };
      run();
      const before = memoryStats().liveTensors;
      for (let i = 0; i < 3; i++) run();
      assert.equal(memoryStats().liveTensors, before);
      x.dispose();
      y.dispose();
      moe.dispose();
    });
  });
});

function boxAt(x: Tensor, eps: number): [Tensor, Tensor] {
  const b = inputBox(x, eps);
  return [b.lower, b.upper];
}

function normalizedBox(moe: MoE, box: Interval): [Tensor, Tensor] {
  return [moe.normalize.forward(box.lower), moe.normalize.forward(box.upper)];
}
