// The one batch loop of every evaluation (evaluateRobustness, generateAdversarial): read
// the shard's batches, compute the clean predictions, add the batch's rows to the record,
// and let each metric measure the batch. Attacks run lazily, once per batch, when a metric
// first asks for their examples (EvalBatchContext.adversarial).
import { performance } from "node:perf_hooks";
import { type Classifier, withEvalMode } from "../attacks/attack.js";
import { ImageDataset } from "../data/dataset.js";
import { noGrad } from "../tensor/autograd.js";
import { dispose, scope } from "../tensor/scope.js";
import type { EvalTarget } from "./adversarial-source.js";
import { AttackRegistry, EvalBatchContext } from "./batch-context.js";
import { type BatchCount, batchesOf, DEFAULT_EVAL_BATCH, type EvalData, shardSampleCount } from "./batches.js";
import type { Metric } from "./metric.js";
import { LABEL_COLUMN } from "./metrics/clean-accuracy.js";
import type { MoEMember } from "./model-summary.js";
import type { EvalRecord } from "./record.js";
import { AttackSeeder } from "./seeds.js";
import { formatShard } from "./shard.js";

/** Progress of an evaluation, reported after every stage of every batch. */
export interface EvalProgress {
  /** Samples finished (a batch counts in proportion to its stages done). */
  done: number;
  /** Samples to evaluate (in this shard), or null when unknown (batches without options.n). */
  total: number | null;
  /** What just finished, e.g. 'batch 2/10: pgd50'. */
  stage: string;
}

export interface RunSettings {
  /** The caller's name, for messages. */
  what: string;
  /** Evaluate the first n samples (default all). */
  n?: number;
  batchSize?: number;
  resize?: number;
  members: readonly MoEMember[];
  /** Stages per batch after the clean pass (one per attack source the metrics run). */
  stages: number;
  onProgress?: (p: EvalProgress) => void;
}

/**
 * Runs the metrics over the data into record (header.classes, header.objectives,
 * header.total and elapsed are filled in), in eval mode: the model's modes are restored
 * afterwards.
 */
export function runEvaluation(
  model: Classifier,
  data: EvalData,
  record: EvalRecord,
  measured: readonly Metric<unknown>[],
  s: RunSettings,
): void {
  const t0 = performance.now();
  const h = record.header;
  const shard = h.shard;
  const batchOptions = {
    ...(s.n === undefined ? {} : { limit: s.n }),
    ...(s.batchSize === undefined ? {} : { batchSize: s.batchSize }),
    ...(s.resize === undefined ? {} : { resize: s.resize }),
    shard,
  };
  const total = data instanceof ImageDataset ? shardSampleCount(data, batchOptions) : shard === null ? (s.n ?? null) : null;
  const allBatches =
    data instanceof ImageDataset
      ? Math.ceil(Math.min(s.n ?? Number.POSITIVE_INFINITY, data.length) / (s.batchSize ?? DEFAULT_EVAL_BATCH))
      : null;
  const seeder = new AttackSeeder(h.seed);
  const registry = new AttackRegistry(record, seeder);
  const count: BatchCount = { samples: 0, batches: 0 };
  let target: EvalTarget | null = null;
  let done = 0;
  try {
    withEvalMode(model, () => {
      for (const batch of batchesOf(data, batchOptions, s.what, count)) {
        const held: { ctx: EvalBatchContext | null } = { ctx: null };
        const b = batch.x.size(0);
        try {
          scope(() => {
            if (b === 0) return;
            const label = `batch ${batch.index + 1}${allBatches === null ? "" : `/${allBatches}`}`;
            let stage = 0;
            const onStage = (what: string): void => {
              stage++;
              s.onProgress?.({ done: done + Math.floor((b * stage) / (1 + s.stages)), total, stage: `${label}: ${what}` });
            };
            const logits = noGrad(() => model.forward(batch.x));
            if (target === null) target = firstBatch(record, model, logits.size(1), s);
            const labels = batch.y.toFlatArray();
            for (const [i, c] of labels.entries()) {
              if (!(Number.isInteger(c) && c >= 0 && c < target.numClasses)) {
                throw new RangeError(`${s.what}: label ${c} of sample ${batch.start + i} is outside 0..${target.numClasses - 1}`);
              }
            }
            const row = record.table.appendRows(batch.start, b);
            record.table.set(LABEL_COLUMN, row, labels);
            held.ctx = new EvalBatchContext({
              x: batch.x,
              y: batch.y,
              index: batch.index,
              start: batch.start,
              row,
              labels,
              cleanLogits: logits,
              record,
              target,
              registry,
              onStage,
            });
            onStage("clean");
            for (const m of measured) m.update(held.ctx);
          });
        } finally {
          held.ctx?.dispose();
          if (batch.owned) dispose([batch.x, batch.y]);
        }
        done += b;
      }
    });
  } finally {
    seeder.dispose();
  }
  h.total = count.samples;
  record.elapsed = (performance.now() - t0) / 1000;
  if (record.table.rows === 0) {
    if (shard !== null && count.batches > 0) {
      throw new RangeError(
        `${s.what}: shard ${formatShard(shard)} has no batches (the evaluation has ${count.batches}): use fewer shards or smaller batches`,
      );
    }
    throw new RangeError(`${s.what}: no samples to evaluate`);
  }
}

/** At the first batch the number of classes is known: name the classes and check them. */
function firstBatch(record: EvalRecord, model: Classifier, numClasses: number, s: RunSettings): EvalTarget {
  const h = record.header;
  if (h.classes.length === 0) h.classes = Array.from({ length: numClasses }, (_, i) => String(i));
  if (h.classes.length !== numClasses) {
    const c = h.classes;
    throw new RangeError(
      `${s.what}: the model predicts ${numClasses} classes but the data has ${c.length} (${c.slice(0, 3).join(", ")}${c.length > 3 ? ", ..." : ""})`,
    );
  }
  return { model, members: s.members, numClasses };
}
