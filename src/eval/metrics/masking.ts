// checkGradientMasking on the evaluation's first batch (global batch 0, so in a sharded
// evaluation the shard that holds it), with the run's threat model and a seed derived from
// the run's seed.
import { checkGradientMasking, type MaskingCheckOptions } from "../../attacks/masking-checks.js";
import type { EvalBatchContext } from "../batch-context.js";
import type { Metric } from "../metric.js";
import type { EvalRecord } from "../record.js";
import type { MaskingResult } from "../report.js";
import { deriveSeed } from "../seeds.js";

export class MaskingChecks implements Metric<MaskingResult | null> {
  readonly #record: EvalRecord;
  readonly #options: MaskingCheckOptions | null;

  /** options: null when the checks are off (or for a record read back). */
  constructor(record: EvalRecord, options: MaskingCheckOptions | null) {
    this.#record = record;
    this.#options = options;
  }

  update(batch: EvalBatchContext): void {
    if (this.#options === null || batch.index !== 0) return;
    const seed = this.#record.header.seed;
    // A seed in the options wins; otherwise the checks are seeded from the run's seed.
    const options = { ...(seed === null ? {} : { seed: deriveSeed(seed, "masking-checks", 0) }), ...this.#options };
    this.#record.masking = { n: batch.size, ...checkGradientMasking(batch.target.model, batch.x, batch.y, options) };
  }

  result(): MaskingResult | null {
    return this.#record.masking;
  }
}
