// The training-step benchmark: one step of a robust training method on a 4-expert top-1
// ResNet18-MoE (linear router), through the project's real training code (methodSpec(...)
// .create and trainStep, as the Trainer runs them), against bench.py --model moe --mode
// rt-er|jtdmoe (the same model, batch, PGD steps, SGD settings and threads):
//   rt-er   RT-ER (beta 6): PGD-K on the MoE, PGD-K on each runner-up expert for its samples,
//           CE on the attacked MoE + beta/B * KL of the runner-up experts, one SGD step
//   jtdmoe  JTDMoE (alpha 0.7) on a dual model of two such MoEs: the RT-ER step above on the
//           robust MoE, then CE of the clean dual output with the robust MoE frozen, one SGD
//           step of the standard MoE
// Order of work within RT-ER: ours runs every attack first (on the model as it is at the start
// of the step), then the training-mode forwards; bench.py runs the runner-up experts' attacks
// after the MoE's training-mode forward. Same operations, same amount of work.
import { keep, manualSeed, rand, randint, scope } from "../src/index.js";
import { DualModel } from "../src/models/dual.js";
import { MoE } from "../src/models/moe.js";
import { ResNet18 } from "../src/models/resnet18.js";
import type { Module, UnaryModule } from "../src/nn/module.js";
import { SGD } from "../src/optim/index.js";
import type { MethodSettings } from "../src/train/method.js";
import { methodSpec } from "../src/train/methods/index.js";
import { trainStep } from "../src/train/trainer.js";
import { applyLayout, type BenchOptions, type ComparedBenchmark, type StepSetup, timingArgs } from "./harness.js";

const EXPERTS = 4;
const ALPHA = 0.7;
const MODES = ["rt-er", "jtdmoe"] as const;
const DEFAULT_PGD_STEPS = 10;

function pgdSteps(opts: BenchOptions): number {
  return opts.pgdSteps ?? DEFAULT_PGD_STEPS;
}

function resnet18Moe(width: number): MoE {
  return new MoE(
    Array.from({ length: EXPERTS }, () => new ResNet18({ numClasses: 10, width })),
    { k: 1 },
  );
}

function setup(mode: string, opts: BenchOptions): StepSetup {
  if (mode !== "rt-er" && mode !== "jtdmoe") throw new Error(`train: unknown mode '${mode}'`);
  manualSeed(0);
  // Built in bench.py's order (the robust MoE, then the standard one, then the batch), so the
  // same seed gives the same initial weights and, above all, the same runner-up experts: the
  // sizes of the per-expert attacks' sub-batches are the same on both sides.
  const robust = resnet18Moe(opts.width);
  const model: Module & UnaryModule =
    mode === "jtdmoe" ? new DualModel(resnet18Moe(opts.width), robust, { alpha: ALPHA }) : robust;
  const settings: MethodSettings = {
    attack: { eps: 8 / 255, stepSize: 2 / 255, steps: pgdSteps(opts), randomStart: true },
    beta: 6,
    alpha: ALPHA,
    loadBalancing: 0,
  };
  const layout = applyLayout(model, "moe", opts);
  const method = methodSpec(mode).create(model, settings);
  const levels = method.levels.map((level) => ({
    optimizer: new SGD(level.parameters, { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }),
  }));
  const x = keep(rand([opts.batch, 3, 32, 32]).contiguous(layout));
  const y = keep(randint(0, 10, [opts.batch]));
  return {
    // trainStep frees what it creates per level; the outer scope is for anything it returns.
    // It applies the precision as the Trainer does (the losses under autocast, backward and
    // update outside), where bench.py runs its whole step under autocast.
    step: () => scope(() => trainStep(model, method, levels, { x, y }, { precision: opts.precision })),
    handlesPrecision: true,
    itemsPerStep: opts.batch,
    info: {
      model: `moe-${EXPERTS}x-resnet18-top1`,
      method: mode,
      params: model.parameterCount(),
      pgd_steps: pgdSteps(opts),
      layout,
      precision: opts.precision,
    },
    dispose() {
      for (const l of levels) l.optimizer.dispose();
      x.dispose();
      y.dispose();
      model.zeroGrad();
      model.dispose();
    },
  };
}

export const train: ComparedBenchmark = {
  name: "train",
  description: "one RT-ER and one JTDMoE step of a 4-expert ResNet18-MoE via trainStep vs PyTorch (bench.py --mode rt-er|jtdmoe)",
  modes: MODES,
  defaults(quick) {
    return quick ? { width: 16, batch: 32, rounds: 1, pgdSteps: 2 } : { width: 16, batch: 128 };
  },
  stepsFor(_mode, opts) {
    // A step is 2 x PGD-10 plus the training passes: seconds at width 16, far more at 64.
    return opts.quick ? { steps: 1, warmup: 1 } : { steps: 3, warmup: 1 };
  },
  setup,
  referenceArgs(mode, opts, steps, warmup) {
    const args = ["--model", "moe", "--mode", mode, "--width", `${opts.width}`, "--batch", `${opts.batch}`];
    return [...args, "--pgd-steps", `${pgdSteps(opts)}`, ...timingArgs(opts.threads, steps, warmup)];
  },
  describe(mode, opts) {
    return {
      model: `moe-${EXPERTS}x-resnet18-top1`,
      method: mode,
      experts: EXPERTS,
      k: 1,
      router: "linear",
      pgdSteps: pgdSteps(opts),
      eps: "8/255",
      stepSize: "2/255",
      beta: 6,
      ...(mode === "jtdmoe" ? { alpha: ALPHA } : {}),
      order:
        "ours: every attack before the training forwards; reference: runner-up experts' attacks after the MoE's training forward",
    };
  },
};
