// Seeds of an evaluation: every attack on every batch starts from a seed derived from
// (run seed, attack key, global batch index). So an attack's result depends neither on the
// other attacks in the list nor on which shard or process ran the batch, and a default run
// (seed 0) is reproducible.
import { Generator } from "../tensor/generator.js";
import { manualSeed } from "../tensor/runtime.js";

/** The seed of a run unless one is given: evaluations are reproducible by default. */
export const DEFAULT_EVAL_SEED = 0;

/** A 31-bit seed from (seed, label, batch): FNV-1a over the text. */
export function deriveSeed(seed: number, label: string, batch: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${label}:${batch}`) {
    h ^= ch.codePointAt(0) as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}

/**
 * Seeds both streams an attack may draw from before it runs on a batch: LibTorch's global
 * generator (APGD, random search and the ensembles draw from it) and the attack's own
 * Generator (PGD and the MoE attacks take one). A null seed leaves both alone, for callers
 * that seed the global stream themselves.
 */
export class AttackSeeder {
  readonly seed: number | null;
  readonly #generators = new Map<string, Generator>();

  constructor(seed: number | null) {
    this.seed = seed;
  }

  /**
   * The attack's own generator (one per key, alive until dispose()); none without a seed,
   * so that such attacks draw from the global stream as the caller left it.
   */
  generator(key: string): Generator | undefined {
    if (this.seed === null) return undefined;
    let g = this.#generators.get(key);
    if (g === undefined) {
      g = new Generator({ seed: deriveSeed(this.seed, key, 0) });
      this.#generators.set(key, g);
    }
    return g;
  }

  /** Seeds the global stream and key's generator for batch `batch`. */
  reseed(key: string, batch: number): void {
    if (this.seed === null) return;
    const s = deriveSeed(this.seed, key, batch);
    manualSeed(s);
    this.#generators.get(key)?.manualSeed(s);
  }

  /** Frees the native generators. */
  dispose(): void {
    for (const g of this.#generators.values()) g.dispose();
    this.#generators.clear();
  }
}
