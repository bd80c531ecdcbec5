// The engine benchmark: CIFAR ResNet18 training, PGD and adversarial-training steps,
// against the same steps in PyTorch (../shared/reference/bench.py --model resnet18).
//
//   train  one clean SGD step (momentum 0.9, weight decay 5e-4), train mode
//   pgd    one PGD step: eval mode, uniform random start in the eps ball, forward, input
//          gradient (autograd.grad), sign step, projection to the eps ball and [0, 1]
//   at     one adversarial-training step: PGD-10 as above, then the SGD step on the result
// eps 8/255, step 2/255, random data (uniform [0,1] images, random labels), as bench.py.

import { autograd, emptyLike, F, keep, manualSeed, noGrad, rand, randint, scope, type Tensor } from "../src/index.js";
import { ResNet18 } from "../src/models/resnet18.js";
import type { Module } from "../src/nn/module.js";
import { SGD } from "../src/optim/index.js";
import { applyLayout, type BenchOptions, type ComparedBenchmark, type StepSetup, timingArgs } from "./harness.js";

const EPS = 8 / 255;
const STEP = 2 / 255;
const PGD_STEPS = 10;
const MODES = ["train", "pgd", "at"] as const;

/**
 * L-inf PGD from a uniform random start, as bench.py's pgd(): the projection
 * min(max(v, x - eps), x + eps).clamp(0, 1) is computed as one clamp between the
 * precomputed bounds max(x - eps, 0) and min(x + eps, 1) (equal for x in [0, 1]).
 */
export function pgd(model: Module & { forward(x: Tensor): Tensor }, x: Tensor, y: Tensor, steps: number): Tensor {
  const wasTraining = model.training;
  model.eval();
  try {
    return scope(() => {
      const [lo, hi, start] = noGrad(() => [x.sub(EPS).clamp(0), x.add(EPS).clamp(null, 1), emptyLike(x).uniform_(-EPS, EPS)]);
      let xa = noGrad(() => start.add(x).clamp(0, 1));
      start.dispose();
      for (let i = 0; i < steps; i++) {
        const next = scope(() => {
          xa.requiresGrad_(true);
          const loss = F.crossEntropy(model.forward(xa), y);
          const [g] = autograd.grad(loss, xa);
          return noGrad(() => xa.add(g!.sign(), STEP).clamp(lo, hi));
        });
        xa.dispose();
        xa = next;
      }
      return xa;
    });
  } finally {
    model.train(wasTraining);
  }
}

function setup(mode: string, opts: BenchOptions): StepSetup {
  manualSeed(0);
  const model = new ResNet18({ numClasses: 10, width: opts.width });
  // Before the optimizer and the batch, as bench.py converts the model and then x.
  const layout = applyLayout(model, "resnet18", opts);
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = keep(rand([opts.batch, 3, 32, 32]).contiguous(layout));
  const y = keep(randint(0, 10, [opts.batch]));
  const params = model.parameters().reduce((n, p) => n + p.numel, 0);

  const sgdStep = (input: Tensor): number => {
    model.train();
    opt.zeroGrad();
    const loss = F.crossEntropy(model.forward(input), y);
    loss.backward();
    opt.step();
    return loss.item();
  };
  let step: () => void;
  if (mode === "train") {
    step = () => scope(() => sgdStep(x));
  } else if (mode === "pgd") {
    step = () => scope(() => pgd(model, x, y, 1).sum().item());
  } else if (mode === "at") {
    step = () => scope(() => sgdStep(pgd(model, x, y, PGD_STEPS)));
  } else {
    throw new Error(`engine: unknown mode '${mode}'`);
  }
  return {
    step,
    itemsPerStep: opts.batch,
    info: { model: "resnet18", params, pgd_steps: mode === "at" ? PGD_STEPS : null, layout, precision: opts.precision },
    dispose() {
      opt.zeroGrad();
      x.dispose();
      y.dispose();
      for (const t of [...model.parameters(), ...model.buffers()]) t.dispose();
    },
  };
}

export const engine: ComparedBenchmark = {
  name: "engine",
  description: "CIFAR ResNet18 train / PGD / adversarial-training steps vs PyTorch (bench.py --model resnet18)",
  modes: MODES,
  defaults(quick) {
    return quick ? { width: 16, batch: 32, rounds: 1 } : { width: 64, batch: 128 };
  },
  stepsFor(mode, opts) {
    // An AT step is ~11 forward/backward passes: fewer of them give the same total time,
    // and one warmup step already runs the model 11 times.
    if (opts.quick) return { steps: mode === "at" ? 2 : 3, warmup: 1 };
    return mode === "at" ? { steps: 3, warmup: 1 } : { steps: 5, warmup: 2 };
  },
  setup,
  referenceArgs(mode, opts, steps, warmup) {
    return [
      "--model",
      "resnet18",
      "--width",
      `${opts.width}`,
      "--mode",
      mode,
      "--batch",
      `${opts.batch}`,
      ...timingArgs(opts.threads, steps, warmup),
      "--pgd-steps",
      `${PGD_STEPS}`,
    ];
  },
  describe(mode) {
    return { model: "resnet18", pgdSteps: mode === "at" ? PGD_STEPS : null, eps: "8/255", stepSize: "2/255" };
  },
};
