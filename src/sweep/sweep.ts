// The alpha sweep of the dual model F_D = (1 - alpha) F_S + alpha F_R (METHOD.md section 4):
// for each alpha, SA and RA of the dual model attacked end to end, on the same images with
// the same seeded attacks, so the points of the trade-off curve differ only by alpha. A JTDMoE
// checkpoint (a dual model trained jointly, with its own alpha) and any other models can be
// placed on the same axes as markers.
import type { ImageDataset } from "../data/dataset.js";
import { evaluateRobustness, type RobustnessOptions } from "../eval/evaluate.js";
import type { CertifyHeader } from "../eval/record.js";
import type { RobustnessReport } from "../eval/report.js";
import type { Model } from "../models/config.js";
import { DualModel, type MixSpace } from "../models/dual.js";

export const SWEEP_SCHEMA = "robust-moe.sweep";

/** One alpha: accuracies in [0, 1]; ra per attack spec ('pgd50', 'aa', ...). */
export interface SweepPoint {
  alpha: number;
  n: number;
  sa: number;
  ra: Record<string, number>;
  /** Per-sample worst case over the attacks (null without attacks). */
  worst: number | null;
  /** Certified accuracy at each radius of the sweep's certificate (increasing eps); null without one. */
  certified: CertifiedAt[] | null;
}

/** Certified accuracy at one radius. */
export interface CertifiedAt {
  eps: number;
  accuracy: number;
}

/** A model placed on the same axes (a JTDMoE checkpoint, a single robust MoE, ...). */
export interface SweepMarker {
  label: string;
  /** e.g. 'jtdmoe', 'standard', 'rt-er', 'dual'. */
  kind: string;
  alpha: number | null;
  sa: number;
  ra: Record<string, number>;
  worst: number | null;
  certified: CertifiedAt[] | null;
}

export interface SweepReport {
  kind: "sweep";
  schema: typeof SWEEP_SCHEMA;
  version: 1;
  source: { standard: string; robust: string; dataset: string; split: string };
  space: MixSpace;
  threatModel: { norm: string; eps: number };
  attacks: string[];
  seed: number | null;
  /** The certificate behind points[].certified and markers[].certified (options.certify), or null. */
  certify: CertifyHeader | null;
  points: SweepPoint[];
  markers: SweepMarker[];
  seconds: number;
}

/** '0:1:0.1' (start:stop:step, inclusive) or '0,0.3,0.7,1'; every value in [0, 1]. */
export function parseAlphas(text: string): number[] {
  const t = text.trim();
  let out: number[];
  const range = /^([^:]+):([^:]+):([^:]+)$/.exec(t);
  if (range !== null) {
    const [a, b, s] = [Number(range[1]), Number(range[2]), Number(range[3])];
    if (![a, b, s].every(Number.isFinite) || !(s > 0) || b < a)
      throw new RangeError(`alphas '${text}': expected start:stop:step with step > 0 and stop >= start`);
    const count = Math.floor((b - a) / s + 1e-9);
    // Rounded to 1e-10 so that 0:1:0.1 gives 0.3, not 0.30000000000000004.
    out = Array.from({ length: count + 1 }, (_, i) => Math.round((a + i * s) * 1e10) / 1e10);
  } else {
    out = t.split(",").map((v) => Number(v.trim()));
    if (out.some((v) => !Number.isFinite(v)) || t === "")
      throw new RangeError(`alphas '${text}': expected numbers separated by commas, or start:stop:step`);
  }
  for (const a of out) if (!(a >= 0 && a <= 1)) throw new RangeError(`alphas '${text}': ${a} is outside [0, 1]`);
  return [...new Set(out)].sort((x, y) => x - y);
}

function summary(r: RobustnessReport): Omit<SweepPoint, "alpha"> {
  return {
    n: r.n,
    sa: r.clean.accuracy,
    ra: Object.fromEntries(r.attacks.map((a) => [a.spec, a.accuracy])),
    worst: r.worstCase?.accuracy ?? null,
    certified: r.certified === null ? null : r.certified.points.map((p) => ({ eps: p.eps, accuracy: p.accuracy })),
  };
}

export interface SweepOptions extends Omit<RobustnessOptions, "onProgress" | "moeAttacks"> {
  space?: MixSpace;
  /** Called after each alpha (and each marker) with what is done. */
  onPoint?: (done: number, total: number, label: string) => void;
}

/**
 * Evaluates the dual model of `standard` and `robust` at every alpha. The two members are
 * shared by every point (only alpha changes); the caller keeps ownership of them.
 */
export function sweepAlphas(
  standard: Model,
  robust: Model,
  dataset: ImageDataset,
  alphas: readonly number[],
  options: SweepOptions = {},
  markers: readonly { label: string; kind: string; model: Model }[] = [],
): Omit<SweepReport, "source" | "kind" | "schema" | "version"> {
  const t0 = performance.now();
  const { space = "logits", onPoint, ...rest } = options;
  const evalOptions: RobustnessOptions = { seed: 0, ...rest, moeAttacks: false };
  // The dual model is a view over the caller's members: it must not dispose them.
  const dual = new DualModel(standard, robust, { alpha: 0, space });
  const total = alphas.length + markers.length;
  const points: SweepPoint[] = [];
  let certify: CertifyHeader | null = null;
  for (const [i, alpha] of alphas.entries()) {
    dual.alpha = alpha;
    const r = evaluateRobustness(dual, dataset, evalOptions);
    if (r.certified !== null)
      certify = {
        method: r.certified.method,
        norm: r.certified.norm,
        eps: [...r.certified.eps],
        smoothing: r.certified.smoothing,
      };
    points.push({ alpha, ...summary(r) });
    onPoint?.(i + 1, total, `alpha ${alpha}`);
  }
  const placed: SweepMarker[] = markers.map((m, i) => {
    const r = evaluateRobustness(m.model, dataset, evalOptions);
    const s = summary(r);
    onPoint?.(alphas.length + i + 1, total, m.label);
    return {
      label: m.label,
      kind: m.kind,
      alpha: m.model instanceof DualModel ? m.model.alpha : null,
      sa: s.sa,
      ra: s.ra,
      worst: s.worst,
      certified: s.certified,
    };
  });
  const first = points[0];
  const attacks = first === undefined ? [] : Object.keys(first.ra);
  return {
    space,
    threatModel: { norm: evalOptions.norm ?? "linf", eps: evalOptions.eps ?? (evalOptions.norm === "l2" ? 0.5 : 8 / 255) },
    attacks,
    seed: evalOptions.seed ?? null,
    certify,
    points,
    markers: placed,
    seconds: (performance.now() - t0) / 1000,
  };
}
