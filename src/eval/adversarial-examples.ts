// Adversarial examples kept for inspection (`rmoe attack`): one attack run over the data,
// the images before and after, the labels and both predictions, saved as safetensors.
import type { Classifier, Norm } from "../attacks/attack.js";
import { saveSafetensors } from "../io/safetensors.js";
import { noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { dispose, keep, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { type AttackSpec, parseAttackSpec } from "./attack-spec.js";
import type { EvalBatchContext } from "./batch-context.js";
import type { EvalData } from "./batches.js";
import { formatEps } from "./eps.js";
import type { Metric } from "./metric.js";
import type { RobustAccuracy } from "./metrics/robust-accuracy.js";
import { planEvaluation } from "./options.js";
import { newRecord } from "./record.js";
import { buildMetrics } from "./report-builder.js";
import { type EvalProgress, runEvaluation } from "./run-evaluation.js";

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
  /**
   * Seeds each batch's attack from (seed, attack key, batch index), as evaluateRobustness
   * does, so the examples are those behind its RA. Default 0; null leaves the generator alone.
   */
  seed?: number | null;
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
  /** Adversarial images, same shape and dtype as x, within eps of x and in [0, 1] (checked). */
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

type Part = { x: Tensor; xAdv: Tensor; y: Tensor; predClean: Tensor; predAdv: Tensor };

/** Keeps every batch's images, labels and predictions (copies the batch no longer owns). */
class Collector implements Metric<Part[]> {
  readonly parts: Part[] = [];
  readonly #attack: RobustAccuracy;

  constructor(attack: RobustAccuracy) {
    this.#attack = attack;
  }

  update(batch: EvalBatchContext): void {
    const adv = batch.adversarial(this.#attack.source);
    const part = scope(() =>
      noGrad(() => ({
        x: batch.x.clone(),
        xAdv: adv.clone(),
        y: batch.y.clone(),
        predClean: batch.cleanLogits.argmax(1),
        predAdv: batch.target.model.forward(adv).argmax(1),
      })),
    );
    // The batch's scope ends before the parts are joined: they live until generateAdversarial frees them.
    for (const t of Object.values(part)) keep(t);
    this.parts.push(part);
  }

  result(): Part[] {
    return this.parts;
  }
}

/** Runs one attack over the data (the evaluation's batch loop) and keeps every image, label and prediction. */
export function generateAdversarial(
  model: Classifier,
  data: EvalData,
  attack: string | AttackSpec,
  options: AdversarialOptions = {},
): AdversarialExamples {
  const what = "generateAdversarial";
  const spec = typeof attack === "string" ? parseAttackSpec(attack) : attack;
  const plan = planEvaluation(model, data, { ...options, attacks: [spec], moeAttacks: false, onProgress: undefined }, what);
  const record = newRecord(plan.header);
  const metrics = buildMetrics(record, plan.means);
  const ra = metrics.headline[0] as RobustAccuracy;
  const collector = new Collector(ra);
  try {
    runEvaluation(model, data, record, [metrics.clean, ra, collector], {
      what,
      ...(options.n === undefined ? {} : { n: options.n }),
      ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
      ...(options.resize === undefined ? {} : { resize: options.resize }),
      members: [],
      stages: 1,
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    });
    const parts = collector.parts;
    return scope(() => {
      const join = (k: keyof Part) => cat(parts.map((p) => p[k]));
      const out = { x: join("x"), xAdv: join("xAdv"), y: join("y"), predClean: join("predClean"), predAdv: join("predAdv") };
      const robust = ra.result();
      return {
        spec: spec.name,
        attack: robust.attack,
        eps: ra.eps,
        norm: plan.header.norm,
        n: record.table.rows,
        ...out,
        cleanAccuracy: metrics.clean.result().accuracy,
        robustAccuracy: robust.accuracy,
      };
    });
  } finally {
    dispose(collector.parts);
  }
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
