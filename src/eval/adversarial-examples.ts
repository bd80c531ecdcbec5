// Adversarial examples kept for inspection (`rmoe attack`): one attack run over the data,
// the images before and after, the labels and both predictions, saved as safetensors.
import { type Classifier, checkCount, checkEps, type Norm, withEvalMode } from "../attacks/attack.js";
import { defaultEps } from "../attacks/pgd.js";
import { ImageDataset } from "../data/dataset.js";
import { saveSafetensors } from "../io/safetensors.js";
import { noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { manualSeed } from "../tensor/runtime.js";
import { dispose, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { type AttackSpec, buildAttack, parseAttackSpec } from "./attack-spec.js";
import { batchesOf, type EvalData } from "./batches.js";
import { formatEps } from "./eps.js";
import { deriveSeed, type EvalProgress } from "./evaluate.js";

export interface AdversarialOptions {
  eps?: number;
  norm?: Norm;
  restarts?: number;
  apgdSteps?: number;
  queries?: number;
  /** The first n samples. Default all. */
  n?: number;
  batchSize?: number;
  resize?: number;
  /** Seeds LibTorch's generator per batch from (seed, attack name, batch index), as evaluateRobustness does. */
  seed?: number;
  onProgress?: (p: EvalProgress) => void;
}

/** The tensors belong to the caller (dispose them, e.g. with dispose(examples)). */
export interface AdversarialExamples {
  /** The attack's canonical name ('pgd50'). */
  spec: string;
  /** The attack object's name ('PGD-50 (linf, ce)'). */
  attack: string;
  eps: number;
  norm: Norm;
  n: number;
  /** Clean images [n, C, H, W]. */
  x: Tensor;
  /** Adversarial images, same shape and dtype as x, within eps of x and in [0, 1]. */
  xAdv: Tensor;
  /** Labels [n] int64. */
  y: Tensor;
  /** Predictions [n] int64 on x and on xAdv. */
  predClean: Tensor;
  predAdv: Tensor;
  cleanAccuracy: number;
  /** Fraction correct on both x and xAdv (as RA in evaluateRobustness). */
  robustAccuracy: number;
}

/** Runs one attack over the data and keeps every image, label and prediction. */
export function generateAdversarial(
  model: Classifier,
  data: EvalData,
  attack: string | AttackSpec,
  options: AdversarialOptions = {},
): AdversarialExamples {
  const spec = typeof attack === "string" ? parseAttackSpec(attack) : attack;
  const norm = options.norm ?? "linf";
  const eps = options.eps ?? defaultEps(norm);
  checkEps("generateAdversarial", eps, norm);
  if (options.n !== undefined) checkCount("generateAdversarial", "n", options.n, 1);
  const total = data instanceof ImageDataset ? Math.min(options.n ?? data.length, data.length) : (options.n ?? null);
  return withEvalMode(model, () => {
    const parts: { x: Tensor; xAdv: Tensor; y: Tensor; predClean: Tensor; predAdv: Tensor }[] = [];
    let name = "";
    let done = 0;
    let batch = 0;
    try {
      for (const b of batchesOf(data, { ...options, limit: options.n }, "generateAdversarial")) {
        try {
          parts.push(
            scope(() => {
              const logits = noGrad(() => model.forward(b.x));
              const a = buildAttack(spec, model, { ...options, eps, norm, numClasses: logits.size(1) });
              name = a.name;
              if (options.seed !== undefined) manualSeed(deriveSeed(options.seed, spec.name, batch));
              const xAdv = a.run(b.x, b.y);
              const predAdv = noGrad(() => model.forward(xAdv).argmax(1));
              return { x: b.x.clone(), xAdv, y: b.y.clone(), predClean: logits.argmax(1), predAdv };
            }),
          );
        } finally {
          if (b.owned) dispose([b.x, b.y]);
        }
        done += (parts.at(-1) as { x: Tensor }).x.size(0);
        batch++;
        options.onProgress?.({ done, total, stage: `batch ${batch}: ${spec.name}` });
      }
      if (parts.length === 0) throw new RangeError("generateAdversarial: no samples to attack");
      return scope(() => {
        const join = (k: keyof (typeof parts)[number]) => cat(parts.map((p) => p[k]));
        const out = { x: join("x"), xAdv: join("xAdv"), y: join("y"), predClean: join("predClean"), predAdv: join("predAdv") };
        const [clean, robust] = noGrad(() => {
          const okClean = out.predClean.eq(out.y);
          return [okClean.double().mean().item(), okClean.logicalAnd(out.predAdv.eq(out.y)).double().mean().item()];
        });
        return {
          spec: spec.name,
          attack: name,
          eps,
          norm,
          n: out.y.size(0),
          ...out,
          cleanAccuracy: clean as number,
          robustAccuracy: robust as number,
        };
      });
    } finally {
      dispose(parts);
    }
  });
}

/** Metadata keys of a saved file of adversarial examples. */
export const ADVERSARIAL_FORMAT_KEY = "robust-moe.adversarial";

/**
 * Writes x_adv, x, y, pred_clean and pred_adv to a safetensors file, with string metadata:
 * attack, attack_name, eps, eps_text, norm, n, clean_accuracy, robust_accuracy, plus extra
 * (e.g. checkpoint, dataset, split, seed).
 */
export function saveAdversarial(path: string, ex: AdversarialExamples, extra: Record<string, string> = {}): void {
  saveSafetensors(
    path,
    { x_adv: ex.xAdv, x: ex.x, y: ex.y, pred_clean: ex.predClean, pred_adv: ex.predAdv },
    {
      ...extra,
      [ADVERSARIAL_FORMAT_KEY]: "1",
      attack: ex.spec,
      attack_name: ex.attack,
      eps: String(ex.eps),
      eps_text: formatEps(ex.eps),
      norm: ex.norm,
      n: String(ex.n),
      clean_accuracy: String(ex.cleanAccuracy),
      robust_accuracy: String(ex.robustAccuracy),
    },
  );
}
