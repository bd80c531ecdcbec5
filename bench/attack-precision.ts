// Attack strength in bf16: the robust accuracy of one trained model (a checkpoint) under the
// same PGD-10 (L-inf, eps 8/255, step 2/255, seeded random start, best iterate) computed in
// fp32 and under bf16 autocast. Evaluation and certification stay fp32 by default because a
// bf16 attack can be weaker (rounded logits and gradients); this measures by how much.
// The adversarial examples of both attacks are judged by the same fp32 forward, so the
// difference is the attack's, not the final evaluation's.
//
//   node dist/bench/main.js attack-precision --ckpt runs/x/model.safetensors [--n 1000] [--threads 2]
import { PGD } from "../src/attacks/pgd.js";
import { Subset } from "../src/data/dataset.js";
import { DataLoader } from "../src/data/loader.js";
import { loadEvalDataset } from "../src/eval/datasets.js";
import { Generator, noGrad, type Precision, scope, setNumThreads, type Tensor, withPrecision } from "../src/index.js";
import { loadCheckpoint } from "../src/io/checkpoint.js";
import { BenchError, type CustomBenchmark, log, machineInfo, printJson } from "./harness.js";

const EPS = 8 / 255;
const STEP = 2 / 255;
const STEPS = 10;

export const attackPrecision: CustomBenchmark = {
  name: "attack-precision",
  description: "RA of a checkpoint under PGD-10 computed in fp32 and in bf16 (CIFAR-10 test images)",
  defaults(quick) {
    return quick ? { n: 100 } : { n: 1000 };
  },
  async run(opts) {
    if (opts.ckpt === undefined) throw new BenchError("attack-precision: --ckpt FILE (a model checkpoint) is required");
    setNumThreads(opts.threads);
    const { model } = loadCheckpoint(opts.ckpt);
    model.eval();
    const test = loadEvalDataset("cifar10", "test");
    const n = Math.min(opts.n ?? 1000, test.length);
    const data = new Subset(
      test,
      Int32Array.from({ length: n }, (_, i) => i),
    );
    const loader = new DataLoader(data, { batchSize: 250, shuffle: false, workers: 0 });
    const count = { clean: 0, cleanBf16: 0, robust: { fp32: 0, bf16: 0 } as Record<Precision, number> };
    const seconds: Record<Precision, number> = { fp32: 0, bf16: 0 };
    let agree = 0;
    for (const batch of loader.epoch(0)) {
      scope(() => {
        const ok = noGrad(() => model.forward(batch.x).argmax(1).eq(batch.y));
        count.clean += ok.sum().item();
        count.cleanBf16 += noGrad(() =>
          withPrecision("bf16", () => model.forward(batch.x))
            .argmax(1)
            .eq(batch.y)
            .sum()
            .item(),
        );
        const still: Partial<Record<Precision, Tensor>> = {};
        for (const p of ["fp32", "bf16"] as const) {
          // The same random start for both precisions.
          const generator = new Generator({ seed: 1234 });
          const attack = new PGD(model, { eps: EPS, alpha: STEP, steps: STEPS, iterate: "best", generator });
          const t0 = performance.now();
          const adv = withPrecision(p, () => attack.run(batch.x, batch.y));
          seconds[p] += (performance.now() - t0) / 1000;
          generator.dispose();
          const robust = noGrad(() => model.forward(adv).argmax(1).eq(batch.y).logicalAnd(ok));
          count.robust[p] += robust.sum().item();
          still[p] = robust;
        }
        // Images on which both attacks agree (both fooled the model or both failed).
        agree += noGrad(() =>
          (still.fp32 as Tensor)
            .eq(still.bf16 as Tensor)
            .sum()
            .item(),
        );
      });
      batch.x.dispose();
      batch.y.dispose();
    }
    loader.close();
    const pct = (v: number) => Math.round((1e4 * v) / n) / 100;
    const result = {
      bench: "attack-precision",
      ckpt: opts.ckpt,
      n,
      attack: `PGD-${STEPS} linf eps 8/255 step 2/255, best iterate, seeded start; adversarial examples judged in fp32`,
      cleanAccuracy: pct(count.clean),
      cleanAccuracyBf16Forward: pct(count.cleanBf16),
      robustAccuracyFp32Attack: pct(count.robust.fp32),
      robustAccuracyBf16Attack: pct(count.robust.bf16),
      differencePoints: Math.round((pct(count.robust.bf16) - pct(count.robust.fp32)) * 100) / 100,
      sameOutcomePercent: pct(agree),
      attackSeconds: { fp32: Math.round(seconds.fp32 * 10) / 10, bf16: Math.round(seconds.bf16 * 10) / 10 },
      threads: opts.threads,
      machine: machineInfo(),
      date: new Date().toISOString(),
    };
    log(
      `n ${n}: SA ${result.cleanAccuracy}% (bf16 forward ${result.cleanAccuracyBf16Forward}%), RA fp32 attack ${result.robustAccuracyFp32Attack}%, bf16 attack ${result.robustAccuracyBf16Attack}%`,
    );
    printJson(result);
    model.dispose();
  },
};
