// Certified accuracy beside SA and RA (`rmoe eval --certify METHOD`): per sample and radius,
// the certificate of certify/batch-certifier.ts (the one `rmoe certify` uses, so both count
// the same way). Columns 'certified:<method>@<eps>'.
// A deterministic certificate (ibp, lipschitz) is a statement about the evaluated model
// itself: a certified sample is correct on x and no attack at that radius can break it. The
// metric checks the second claim against the evaluation's own attacks at the same radius
// and norm, and reports any certified sample an attack broke (never for a sound certificate;
// the table prints it as an alarm). Randomized smoothing certifies the smoothed classifier
// g, not the model: its certified accuracy is g's (Cohen et al.), and an attack on the model
// says nothing about it, so there is no cross-check.
import type { BatchCertifier, CertifyMethod } from "../../certify/batch-certifier.js";
import type { EvalBatchContext } from "../batch-context.js";
import { formatEps } from "../eps.js";
import { type Metric, score } from "../metric.js";
import type { CertifyHeader, EvalRecord } from "../record.js";
import type { CertifiedResult } from "../report.js";
import { deriveSeed } from "../seeds.js";
import type { RobustAccuracy } from "./robust-accuracy.js";

export function certifiedColumn(method: CertifyMethod, eps: number): string {
  return `certified:${method}@${formatEps(eps)}`;
}

export class CertifiedAccuracy implements Metric<CertifiedResult> {
  readonly settings: CertifyHeader;
  readonly #record: EvalRecord;
  readonly #certifier: BatchCertifier | null;
  /** The whole-model attacks at each radius, for the cross-check (same norm as the certificate). */
  readonly #attacks: readonly RobustAccuracy[];

  /** certifier: null for a record read back, which is never updated. */
  constructor(record: EvalRecord, settings: CertifyHeader, certifier: BatchCertifier | null, attacks: readonly RobustAccuracy[]) {
    this.#record = record;
    this.settings = settings;
    this.#certifier = certifier;
    this.#attacks = attacks;
  }

  get columns(): string[] {
    return this.settings.eps.map((e) => certifiedColumn(this.settings.method, e));
  }

  update(batch: EvalBatchContext): void {
    const c = this.#certifier;
    if (c === null) throw new Error("evaluation: certificates cannot be computed from a saved record");
    const seed = this.#record.header.seed;
    if (seed !== null) c.reseed(deriveSeed(seed, `certify:${this.settings.method}`, batch.index));
    const started = performance.now();
    const res = c.certify(batch.x, batch.y, this.settings.eps);
    this.#record.seconds.certify = (this.#record.seconds.certify ?? 0) + (performance.now() - started) / 1000;
    this.columns.forEach((col, i) => {
      this.#record.table.set(col, batch.row, res.certified[i] as boolean[]);
    });
  }

  result(): CertifiedResult {
    const r = this.#record;
    const t = r.table;
    const points = this.settings.eps.map((eps, i) => {
      const col = this.columns[i] as string;
      const certified = t.column(col);
      // Attacks at the same radius in the same norm that broke a certified sample.
      const broken = this.#attacks
        .filter((a) => this.settings.method !== "smoothing" && a.eps === eps && r.header.norm === this.settings.norm)
        .map((a) => {
          const robust = t.column(a.column);
          return {
            attack: a.key,
            samples: certified.flatMap((c, s) => (c !== 0 && robust[s] === 0 ? [t.index[s] as number] : [])),
          };
        })
        .filter((b) => b.samples.length > 0);
      return { eps, ...score(t.countAll([col]), t.rows, r.header.confidence), brokenByAttacks: broken };
    });
    return { ...this.settings, points, seconds: r.seconds.certify ?? 0 };
  }
}
