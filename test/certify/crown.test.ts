// CROWN (src/certify/crown.ts): exact on affine chains (against the product matrix), sound on
// random and PGD points for small nets, a ResNet18 and MoEs (its bounds alone, not only after
// the intersection with IBP), at least as tight as IBP, and sound as a certificate on the
// trained synthetic task.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CrownUnsupportedError, crownBounds, crownRefiner } from "../../src/certify/crown.js";
import { type ClassifierBounds, ibpCertify, ibpClassifierBounds, inputBox } from "../../src/certify/ibp.js";
import { DualModel, ResNet18 } from "../../src/models/index.js";
import { Flatten, GELU, Linear, type Module, ReLU, Sequential } from "../../src/nn/index.js";
import { manualSeed, memoryStats, noGrad, rand, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import {
  checkSoundness,
  MOE_SHAPE,
  pgdBreaks,
  randomizeBatchNorms,
  smallMoE,
  smallNet,
  trainedSyntheticMoE,
} from "./ibp-helpers.js";

const crownIbp = (m: Module, lower: Tensor, upper: Tensor) => crownBounds(m, lower, upper);
const crownFull = (m: Module, lower: Tensor, upper: Tensor) => crownBounds(m, lower, upper, { mode: "crown" });
const refined = (m: Module, lower: Tensor, upper: Tensor) => ibpClassifierBounds(m, lower, upper, { refine: crownRefiner() });

function mlp(): Sequential {
  return new Sequential(new Flatten(), new Linear(16, 20), new ReLU(), new Linear(20, 12), new ReLU(), new Linear(12, 4));
}

function meanWidth(b: ClassifierBounds): number {
  return scope(() => b.upper.sub(b.lower).mean().item());
}

describe("CROWN", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  it("is exact on a chain of affine layers (the product matrix's interval), where IBP is not", () => {
    manualSeed(1);
    scope(() => {
      const net = new Sequential(new Linear(10, 7), new Linear(7, 5), new Linear(5, 3)).to("float64").eval();
      const x = rand([4, 10], { dtype: "float64" });
      const box = inputBox(x, 0.1);
      // Independent reference: the composed map W = W3 W2 W1, applied to the box's center and radius.
      const [l1, l2, l3] = [net.at(0), net.at(1), net.at(2)] as Linear[];
      const w = (l3 as Linear).weight.matmul((l2 as Linear).weight).matmul((l1 as Linear).weight);
      const mu = box.lower.add(box.upper).mul(0.5);
      const r = box.upper.sub(box.lower).mul(0.5);
      const center = noGrad(() => net.forward(mu));
      const radius = r.matmul(w.abs().transpose(0, 1));
      const c = crownBounds(net, box.lower, box.upper);
      assertClose(c.lower.toFlatArray(), center.sub(radius).toFlatArray(), { atol: 1e-12 }, "lower");
      assertClose(c.upper.toFlatArray(), center.add(radius).toFlatArray(), { atol: 1e-12 }, "upper");
      // Differences too: (W_i - W_j) mu -+ |W_i - W_j| r.
      const dw = w.unsqueeze(1).sub(w.unsqueeze(0)); // [3, 3, 10]
      const dc = center.unsqueeze(2).sub(center.unsqueeze(1));
      const dr = r.matmul(dw.abs().reshape(9, 10).transpose(0, 1)).view(4, 3, 3);
      assertClose(c.diffLower.toFlatArray(), dc.sub(dr).toFlatArray(), { atol: 1e-12 }, "differences");
      const ibp = ibpClassifierBounds(net, box.lower, box.upper);
      assert.ok(meanWidth(ibp) > meanWidth(c) * 1.05, "IBP is looser on a product of matrices");
      net.dispose();
    });
  });

  describe("soundness: random and PGD points stay inside CROWN's own bounds", () => {
    it("an MLP (crown-ibp and full crown)", () => {
      for (const seed of [2, 3]) {
        manualSeed(seed);
        const net = mlp().to("float64").eval();
        checkSoundness(net, MOE_SHAPE, `mlp ${seed} crown-ibp`, [4 / 255, 32 / 255], 8, crownIbp);
        checkSoundness(net, MOE_SHAPE, `mlp ${seed} crown`, [4 / 255, 32 / 255], 8, crownFull);
        net.dispose();
      }
    });

    it("a conv/BN/residual net (crown-ibp and full crown)", () => {
      manualSeed(4);
      const net = smallNet().to("float64");
      randomizeBatchNorms(net);
      net.eval();
      checkSoundness(net, [3, 8, 8], "small net crown-ibp", [1 / 255, 16 / 255], 6, crownIbp);
      checkSoundness(net, [3, 8, 8], "small net crown", [1 / 255, 16 / 255], 6, crownFull);
      net.dispose();
    });

    it("a tiny ResNet18 (crown-ibp)", () => {
      manualSeed(5);
      const net = new ResNet18({ width: 2, numClasses: 4 }).to("float64");
      randomizeBatchNorms(net);
      net.eval();
      checkSoundness(net, [3, 8, 8], "resnet18 crown-ibp", [1 / 255, 8 / 255], 4, crownIbp);
      net.dispose();
    });

    for (const [gating, k, renormalize, router] of [
      ["topk", 1, false, "linear"],
      ["topk", 2, true, "conv"],
      ["dense", 3, false, "linear"],
    ] as const) {
      it(`a MoE through the IBP route rules with CROWN experts and router (${gating}, k ${k}, ${router})`, () => {
        manualSeed(6);
        const moe = smallMoE(gating, k, renormalize, router);
        checkSoundness(moe, MOE_SHAPE, `moe ${gating} crown`, [1 / 255, 16 / 255], 6, refined);
        moe.dispose();
      });
    }
  });

  it("is at least as tight as IBP (much tighter on an MLP), and full crown tightens crown-ibp", () => {
    manualSeed(7);
    scope(() => {
      const net = mlp().to("float64").eval();
      const x = rand([16, ...MOE_SHAPE], { dtype: "float64" });
      const box = inputBox(x, 8 / 255);
      const ibp = ibpClassifierBounds(net, box.lower, box.upper);
      const ci = refined(net, box.lower, box.upper);
      const cf = ibpClassifierBounds(net, box.lower, box.upper, { refine: crownRefiner({ mode: "crown" }) });
      assert.ok(ci.lower.sub(ibp.lower).min().item() >= 0 && ibp.upper.sub(ci.upper).min().item() >= 0, "refined within IBP");
      assert.ok(meanWidth(ci) < 0.7 * meanWidth(ibp), `crown-ibp ${meanWidth(ci)} vs ibp ${meanWidth(ibp)}`);
      assert.ok(meanWidth(cf) <= meanWidth(ci) * (1 + 1e-9), `crown ${meanWidth(cf)} vs crown-ibp ${meanWidth(ci)}`);
      net.dispose();
    });
  });

  it("on the trained task: certifies at least what IBP does, and PGD breaks none of its certificates", () => {
    manualSeed(60);
    const task = trainedSyntheticMoE();
    const eps = [2 / 255, 8 / 255, 32 / 255];
    scope(() => {
      const { x, y } = task.sample(120);
      const ibp = ibpCertify(task.moe, x, y, eps);
      const crown = ibpCertify(task.moe, x, y, eps, { refine: crownRefiner({ mode: "crown" }) });
      eps.forEach((e, i) => {
        const ci = crown.certified[i] as boolean[];
        (ibp.certified[i] as boolean[]).forEach((c, n) => {
          if (c) assert.ok(ci[n], `eps ${e * 255}/255 sample ${n}: IBP certifies, CROWN does not`);
        });
        const idx = ci.flatMap((c, n) => (c ? [n] : []));
        if (idx.length === 0) return;
        const rows = tensor(idx, { dtype: "int64" });
        const broken = pgdBreaks(task.moe, x.indexSelect(0, rows), y.indexSelect(0, rows), e, 4, 40);
        assert.equal(broken, 0, `PGD broke ${broken} of ${idx.length} CROWN certificates at ${e * 255}/255`);
      });
      const last = eps.length - 1;
      const count = (r: boolean[] | undefined) => (r ?? []).filter(Boolean).length;
      assert.ok(count(crown.certified[last]) >= count(ibp.certified[last]));
      // A dual model takes its members' CROWN bounds through the same refiner.
      const dual = new DualModel(task.moe, task.moe, { alpha: 0.5 });
      const d = ibpCertify(dual, x, y, [eps[last] as number], { refine: crownRefiner() });
      assert.ok(count(d.certified[0]) >= count(ibp.certified[last]));
    });
    task.dispose();
  });

  it("names an unsupported module", () => {
    scope(() => {
      const net = new Sequential(new Flatten(), new Linear(16, 8), new GELU(), new Linear(8, 3));
      const x = rand([2, ...MOE_SHAPE]);
      assert.throws(() => crownBounds(net, x, x), CrownUnsupportedError);
      assert.throws(() => crownBounds(net, x, x), /'GELU'/);
      net.dispose();
    });
  });
});
