// One batch of an evaluation as the metrics see it: the images, labels and clean
// predictions, where its rows are in the record, and the adversarial examples of each
// source, run once per batch however many metrics read them. Every tensor it holds is
// freed by dispose() at the end of the batch.
import { performance } from "node:perf_hooks";
import { noGrad } from "../tensor/autograd.js";
import { keep, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { AdversarialRunner, AdversarialSource, EvalTarget } from "./adversarial-source.js";
import { checkAdversarialOutput } from "./output-check.js";
import { addSeconds, type EvalRecord } from "./record.js";
import type { AttackSeeder } from "./seeds.js";

/** The attack objects of an evaluation, built on first use and shared by all batches. */
export class AttackRegistry {
  readonly #built = new Map<string, AdversarialRunner>();
  readonly seeder: AttackSeeder;
  readonly record: EvalRecord;

  constructor(record: EvalRecord, seeder: AttackSeeder) {
    this.record = record;
    this.seeder = seeder;
  }

  instance<G extends AdversarialRunner>(source: AdversarialSource<G>, target: EvalTarget): G {
    let g = this.#built.get(source.key) as G | undefined;
    if (g === undefined) {
      g = source.build(target, this.seeder.generator(source.key));
      this.#built.set(source.key, g);
      this.record.names[source.key] = g.name;
    }
    return g;
  }
}

export interface EvalBatchContextInit {
  x: Tensor;
  y: Tensor;
  /** Global batch index (0-based, over every shard). */
  index: number;
  /** Position of the batch's first sample among the evaluation's samples. */
  start: number;
  /** The batch's first row in record.table. */
  row: number;
  labels: number[];
  cleanLogits: Tensor;
  record: EvalRecord;
  target: EvalTarget;
  registry: AttackRegistry;
  /** Called after each source has run on the batch. */
  onStage: (stage: string) => void;
}

export class EvalBatchContext {
  readonly x: Tensor;
  readonly y: Tensor;
  readonly index: number;
  readonly start: number;
  readonly row: number;
  readonly labels: readonly number[];
  /** Logits of the evaluated model on x. */
  readonly cleanLogits: Tensor;
  /** Per sample: the evaluated model is correct on x. */
  readonly cleanCorrect: readonly boolean[];
  readonly record: EvalRecord;
  readonly target: EvalTarget;
  readonly #registry: AttackRegistry;
  readonly #onStage: (stage: string) => void;
  readonly #adversarial = new Map<string, Tensor>();
  readonly #memo = new Map<string, unknown>();
  readonly #owned: Tensor[] = [];

  constructor(init: EvalBatchContextInit) {
    this.x = init.x;
    this.y = init.y;
    this.index = init.index;
    this.start = init.start;
    this.row = init.row;
    this.labels = init.labels;
    this.cleanLogits = this.own(init.cleanLogits);
    this.record = init.record;
    this.target = init.target;
    this.#registry = init.registry;
    this.#onStage = init.onStage;
    this.cleanCorrect = scope(() =>
      noGrad(() =>
        this.cleanLogits
          .argmax(1)
          .eq(this.y)
          .toFlatArray()
          .map((v) => v !== 0),
      ),
    );
  }

  get size(): number {
    return this.labels.length;
  }

  /** The source's attack object (built once per evaluation). */
  instance<G extends AdversarialRunner>(source: AdversarialSource<G>): G {
    return this.#registry.instance(source, this.target);
  }

  /**
   * The source's adversarial examples for this batch: run once (seeded from the run seed,
   * the source's key and the batch index, timed), checked against the source's threat
   * model, and cached until the batch ends. The tensor belongs to the batch.
   */
  adversarial(source: AdversarialSource): Tensor {
    const cached = this.#adversarial.get(source.key);
    if (cached !== undefined) return cached;
    const attack = this.instance(source);
    this.#registry.seeder.reseed(source.key, this.index);
    const started = performance.now();
    const adv = this.own(attack.run(this.x, this.y));
    addSeconds(this.record, source.key, (performance.now() - started) / 1000);
    checkAdversarialOutput(`attack '${source.key}' (${attack.name})`, this.x, adv, source.eps, source.norm, this.start);
    this.#adversarial.set(source.key, adv);
    this.#onStage(source.stage);
    return adv;
  }

  /** A per-batch value shared by metrics (e.g. a member's clean routes), computed once. */
  memo<T>(key: string, compute: () => T): T {
    if (this.#memo.has(key)) return this.#memo.get(key) as T;
    const v = compute();
    this.#memo.set(key, v);
    return v;
  }

  /** Hands a tensor to the batch: it outlives enclosing scopes and is freed by dispose(). */
  own(t: Tensor): Tensor {
    this.#owned.push(keep(t));
    return t;
  }

  dispose(): void {
    for (const t of this.#owned) t.dispose();
    this.#owned.length = 0;
    this.#adversarial.clear();
    this.#memo.clear();
  }
}
