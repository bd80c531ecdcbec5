// The MoE benchmark: a training step (SGD, momentum 0.9, weight decay 5e-4, clean CE) of a
// 4-expert top-1 ResNet18-MoE with batched dispatch, against
//   moe       the PyTorch reference MoE, also batched (bench.py --model moe)
//   moe-loop  the paper code's per-sample loop (bench.py --model moe-loop); target >= 10x
//   dense     one dense ResNet18 on the same batch (ours vs bench.py --model resnet18),
//             which gives the MoE/dense cost of our implementation (target <= 1.25)
import { F, keep, manualSeed, rand, randint, scope, type Tensor } from "../src/index.js";
import { MoE } from "../src/models/moe.js";
import { ResNet18 } from "../src/models/resnet18.js";
import type { Module, UnaryModule } from "../src/nn/module.js";
import { SGD } from "../src/optim/index.js";
import { applyLayout, type BenchOptions, type ComparedBenchmark, type StepSetup, timingArgs } from "./harness.js";

const EXPERTS = 4;
const MODES = ["moe", "moe-loop", "dense"] as const;

function setup(mode: string, opts: BenchOptions): StepSetup {
  manualSeed(0);
  let model: Module & UnaryModule;
  if (mode === "dense") {
    model = new ResNet18({ numClasses: 10, width: opts.width });
  } else if (mode === "moe" || mode === "moe-loop") {
    // Built in the reference's order (experts, then normalisation and router), so the same
    // seed gives the same initial weights and the same routes on both sides.
    const experts = Array.from({ length: EXPERTS }, () => new ResNet18({ numClasses: 10, width: opts.width }));
    model = new MoE(experts, { k: 1 });
  } else {
    throw new Error(`moe: unknown mode '${mode}'`);
  }
  const layout = applyLayout(model, mode === "dense" ? "resnet18" : "moe", opts);
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = keep(rand([opts.batch, 3, 32, 32]).contiguous(layout));
  const y = keep(randint(0, 10, [opts.batch]));
  const step = () =>
    scope(() => {
      model.train();
      opt.zeroGrad();
      const loss: Tensor = F.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      return loss.item();
    });
  return {
    step,
    itemsPerStep: opts.batch,
    info: {
      model: mode === "dense" ? "resnet18" : `moe-${EXPERTS}x-resnet18-top1`,
      params: model.parameterCount(),
      layout,
      precision: opts.precision,
    },
    dispose() {
      opt.dispose();
      x.dispose();
      y.dispose();
      model.zeroGrad();
      model.dispose();
    },
  };
}

export const moe: ComparedBenchmark = {
  name: "moe",
  description: "4-expert top-1 ResNet18-MoE train step vs PyTorch batched MoE, the paper's per-sample loop, and a dense ResNet18",
  modes: MODES,
  defaults(quick) {
    return quick ? { width: 16, batch: 32, rounds: 1 } : { width: 16, batch: 128 };
  },
  stepsFor(mode, opts) {
    if (opts.quick) return { steps: 2, warmup: 1 };
    // The per-sample loop runs 128 single-image passes per step: a few steps are plenty.
    return mode === "moe-loop" ? { steps: 2, warmup: 1 } : { steps: 5, warmup: 2 };
  },
  setup,
  referenceArgs(mode, opts, steps, warmup) {
    const model = mode === "dense" ? "resnet18" : mode;
    const args = ["--model", model, "--width", `${opts.width}`, "--mode", "train", "--batch", `${opts.batch}`];
    return [...args, ...timingArgs(opts.threads, steps, warmup)];
  },
  describe(mode) {
    return { experts: mode === "dense" ? 1 : EXPERTS, k: 1, referenceModel: mode === "dense" ? "resnet18" : mode };
  },
};
