// Same safetensors weights -> same logits, gradients and BatchNorm statistics as the PyTorch
// twins in ../shared/reference/models.py (fixtures: test/fixtures/gen_models_parity.py).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { DualModel, MoE, ResNet18, ViT, VitBlock } from "../../src/models/index.js";
import { crossEntropy, mseLoss } from "../../src/nn/functional.js";
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  Linear,
  type Module,
  ReLU,
  Sequential,
  type UnaryModule,
} from "../../src/nn/index.js";
import { dispose, memoryStats, noGrad, scope, type Tensor } from "../../src/tensor/index.js";
import { assertTensorClose } from "../helpers/close.js";
import { fixturePath } from "../helpers/paths.js";

type Case = { name: string; build: () => UnaryModule; loss: "ce" | "mse" };

function prefixed(all: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of all) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

const moe = (k: number, renormalize: boolean) => () =>
  new MoE(
    Array.from({ length: 3 }, () => new ResNet18({ width: 2 })),
    { k, renormalize },
  );

const CASES: Case[] = [
  {
    name: "small_cnn",
    loss: "ce",
    build: () =>
      new Sequential(
        new Conv2d(3, 8, 3, { padding: 1 }),
        new BatchNorm2d(8),
        new ReLU(),
        new Conv2d(8, 16, 3, { stride: 2, padding: 1, groups: 2 }),
        new BatchNorm2d(16),
        new ReLU(),
        new AdaptiveAvgPool2d(1),
        new Flatten(),
        new Linear(16, 10),
      ),
  },
  { name: "transformer_block", loss: "mse", build: () => new VitBlock(32, 4, 4) },
  { name: "resnet18_w4", loss: "ce", build: () => new ResNet18({ width: 4 }) },
  { name: "vit_tiny", loss: "ce", build: () => new ViT({ imageSize: 32, patchSize: 8, dim: 32, depth: 2, heads: 4 }) },
  { name: "moe_k1_plain", loss: "ce", build: moe(1, false) },
  { name: "moe_k1_renorm", loss: "ce", build: moe(1, true) },
  { name: "moe_k2_plain", loss: "ce", build: moe(2, false) },
  { name: "moe_k2_renorm", loss: "ce", build: moe(2, true) },
];

// float32 sums over a few thousand terms in a different order: a few ulps of the largest term.
const TOL = { atol: 1e-5, rtol: 1e-4 };

describe("models match their PyTorch twins on the same weights", () => {
  let start = 0;
  before(() => {
    start = memoryStats().liveTensors;
  });
  after(() => {
    assert.equal(memoryStats().liveTensors, start, "tests leaked tensors");
  });

  for (const c of CASES) {
    it(`${c.name}: eval logits, train logits, loss, input and parameter gradients, BN statistics`, () => {
      const { tensors: f } = loadSafetensors(fixturePath("models", `${c.name}.safetensors`));
      const model = c.build() as UnaryModule & Module;
      try {
        model.loadStateDict(prefixed(f, "w."));
        const x = f.get("x")!;
        const y = f.get("y")!;
        model.eval();
        scope(() =>
          assertTensorClose(
            noGrad(() => model.forward(x)),
            f.get("eval.logits")!,
            TOL,
            `${c.name} eval logits`,
          ),
        );
        if (model instanceof MoE && f.has("gates.weights")) {
          scope(() => {
            const g = model.gates(x);
            assertTensorClose(g.weights, f.get("gates.weights")!, TOL, "gate weights");
            assert.deepEqual(g.indices.toFlatArray(), f.get("gates.indices")!.toFlatArray(), "gate indices");
          });
        }
        model.train();
        scope(() => {
          const xg = x.clone().requiresGrad_();
          const out = model.forward(xg);
          const loss = c.loss === "ce" ? crossEntropy(out, y) : mseLoss(out, y);
          model.zeroGrad();
          loss.backward();
          assertTensorClose(out, f.get("train.logits")!, TOL, `${c.name} train logits`);
          assertTensorClose(loss, f.get("train.loss")!, TOL, `${c.name} loss`);
          assertTensorClose(xg.grad!, f.get("grad.x")!, TOL, `${c.name} input gradient`);
          let checked = 0;
          for (const [name, p] of model.namedParameters()) {
            const expected = f.get(`grad.${name}`);
            const g = p.grad;
            if (expected === undefined) {
              assert.equal(g, null, `${name} has a gradient here but not in PyTorch`);
              continue;
            }
            assertTensorClose(g!, expected, TOL, `${c.name} grad ${name}`);
            checked++;
          }
          assert.ok(checked > 0);
          for (const [name, b] of model.namedBuffers()) {
            const expected = f.get(`after.${name}`);
            assert.ok(expected !== undefined, `buffer ${name} missing from the PyTorch twin`);
            assertTensorClose(b, expected, TOL, `${c.name} buffer ${name} after the step`);
          }
        });
      } finally {
        model.dispose();
        dispose(f);
      }
    });
  }

  it("dual model of two MoEs: logits and probability mixing", () => {
    const { tensors: f } = loadSafetensors(fixturePath("models", "dual_moe.safetensors"));
    const make = () => new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })], { k: 1 });
    const dual = new DualModel(make(), make(), { alpha: 0.3 });
    try {
      dual.loadStateDict(prefixed(f, "w."));
      dual.eval();
      const x = f.get("x")!;
      scope(() =>
        assertTensorClose(
          noGrad(() => dual.forward(x)),
          f.get("eval.logits")!,
          TOL,
          "dual logits",
        ),
      );
      dual.space = "probs";
      // 'probs' returns the log of the mixture; its exp is PyTorch's mixed probabilities.
      scope(() =>
        assertTensorClose(
          noGrad(() => dual.forward(x).exp()),
          f.get("eval.probs")!,
          TOL,
          "dual probs",
        ),
      );
    } finally {
      dual.dispose();
      dispose(f);
    }
  });
});
