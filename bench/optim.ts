// The optimizer benchmark: one optimizer.step() over every parameter of a CIFAR ResNet18
// (fixed random gradients; no forward/backward), against torch.optim doing the same
// (bench/reference/optim_bench.py). Throughput is steps per second ("imgs_per_s" field).
import { join } from "node:path";
import { manualSeed, noGrad, randnLike } from "../src/index.js";
import { ResNet18 } from "../src/models/resnet18.js";
import { Adam, AdamW, type Optimizer, SGD } from "../src/optim/index.js";
import { type BenchOptions, type ComparedBenchmark, repoRoot, type StepSetup, timingArgs } from "./harness.js";

const MODES = ["sgd", "adam", "adamw"] as const;

function setup(mode: string, opts: BenchOptions): StepSetup {
  manualSeed(0);
  const model = new ResNet18({ numClasses: 10, width: opts.width });
  const params = model.parameters();
  noGrad(() => {
    for (const p of params) {
      const g = randnLike(p).mul_(1e-3);
      p.grad = g;
      g.dispose();
    }
  });
  let opt: Optimizer;
  if (mode === "sgd") opt = new SGD(params, { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  else if (mode === "adam") opt = new Adam(params, { lr: 1e-3, weightDecay: 5e-4 });
  else if (mode === "adamw") opt = new AdamW(params, { lr: 1e-3, weightDecay: 5e-4 });
  else throw new Error(`optim: unknown mode '${mode}'`);
  return {
    step: () => opt.step(),
    itemsPerStep: 1,
    info: { model: "resnet18", params: params.reduce((n, p) => n + p.numel, 0), tensors: params.length, unit: "steps/s" },
    dispose() {
      opt.dispose();
      model.zeroGrad();
      model.dispose();
    },
  };
}

export const optim: ComparedBenchmark = {
  name: "optim",
  description: "SGD / Adam / AdamW steps on ResNet18's parameters vs torch.optim (bench/reference/optim_bench.py)",
  modes: MODES,
  referenceScript: join(repoRoot, "bench", "reference", "optim_bench.py"),
  defaults(quick) {
    return quick ? { width: 16, rounds: 1 } : { width: 64 };
  },
  stepsFor(_mode, opts) {
    return opts.quick ? { steps: 5, warmup: 2 } : { steps: 30, warmup: 5 };
  },
  setup,
  referenceArgs(mode, opts, steps, warmup) {
    return ["--optimizer", mode, "--width", `${opts.width}`, ...timingArgs(opts.threads, steps, warmup)];
  },
  describe() {
    return { model: "resnet18", unit: "optimizer steps/s" };
  },
};
