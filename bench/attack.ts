// The attack benchmark: PGD evaluation throughput of our attack library (src/attacks PGD,
// L-inf eps 8/255, step 2/255, random start, best-iterate tracking) on a ResNet18 and on a
// 4-expert top-1 ResNet18-MoE, against the PyTorch reference's PGD step
// (bench.py --mode pgd --model resnet18|moe). Both sides report image-iterations per
// second: ours runs PGD_STEPS iterations per measured step (plus the final evaluation
// forward that PGD-k evaluation needs), the reference one iteration.

import { PGD } from "../src/attacks/pgd.js";
import { keep, manualSeed, rand, randint, scope } from "../src/index.js";
import { MoE } from "../src/models/moe.js";
import { ResNet18 } from "../src/models/resnet18.js";
import type { Module, UnaryModule } from "../src/nn/module.js";
import { type BenchOptions, type ComparedBenchmark, type StepSetup, timingArgs } from "./harness.js";

const PGD_STEPS = 10;
const MODES = ["resnet18", "moe"] as const;

function setup(mode: string, opts: BenchOptions): StepSetup {
  manualSeed(0);
  let model: Module & UnaryModule;
  if (mode === "resnet18") model = new ResNet18({ numClasses: 10, width: opts.width });
  else if (mode === "moe")
    model = new MoE(
      Array.from({ length: 4 }, () => new ResNet18({ numClasses: 10, width: opts.width })),
      { k: 1 },
    );
  else throw new Error(`attack: unknown mode '${mode}'`);
  model.eval();
  const attack = new PGD(model, { eps: 8 / 255, alpha: 2 / 255, steps: PGD_STEPS });
  const x = keep(rand([opts.batch, 3, 32, 32]));
  const y = keep(randint(0, 10, [opts.batch]));
  return {
    step: () => scope(() => attack.run(x, y).sum().item()),
    itemsPerStep: opts.batch * PGD_STEPS,
    info: { model: mode, params: model.parameterCount(), pgd_steps: PGD_STEPS, unit: "image-iterations/s" },
    dispose() {
      x.dispose();
      y.dispose();
      model.dispose();
    },
  };
}

export const attack: ComparedBenchmark = {
  name: "attack",
  description: "PGD evaluation throughput (image-iterations/s) of ResNet18 and a 4-expert MoE vs PyTorch (bench.py --mode pgd)",
  modes: MODES,
  defaults(quick) {
    return quick ? { width: 16, batch: 32, rounds: 1 } : { width: 64, batch: 128 };
  },
  stepsFor(_mode, opts) {
    return opts.quick ? { steps: 1, warmup: 1 } : { steps: 3, warmup: 1 };
  },
  setup,
  referenceArgs(mode, opts, steps, warmup) {
    // One reference step is one PGD iteration: give it as many as our measured iterations.
    const args = ["--model", mode, "--width", `${opts.width}`, "--mode", "pgd", "--batch", `${opts.batch}`];
    return [...args, ...timingArgs(opts.threads, steps * PGD_STEPS, warmup * 2)];
  },
  describe(mode) {
    return { model: mode, eps: "8/255", stepSize: "2/255", pgdSteps: PGD_STEPS, unit: "image-iterations/s" };
  },
};
