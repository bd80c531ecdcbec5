// The statistics behind the claims' tables and verdicts: mean and sample std over seeds, exact
// Clopper-Pearson intervals from an accuracy and its n, paired comparisons of two models seed
// by seed, and the monotonicity test of the alpha sweep. Pure functions of numbers, so the
// tests can pin every verdict on hand-written values.
import { accuracyInterval, type Interval } from "../eval/confidence.js";

/** One quantity over the seeds: the per-seed values (null: not run yet) and their statistics. */
export interface Stat {
  /** Aligned with the summary's seeds. */
  perSeed: (number | null)[];
  /** Seeds with a value. */
  n: number;
  mean: number | null;
  /** Sample standard deviation (n - 1 in the denominator); null below 2 values. */
  std: number | null;
}

export function stat(perSeed: readonly (number | null)[]): Stat {
  const v = perSeed.filter((x): x is number => x !== null);
  const mean = v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
  const std =
    mean === null || v.length < 2 ? null : Math.sqrt(v.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (v.length - 1));
  return { perSeed: [...perSeed], n: v.length, mean, std };
}

/** The 95% Clopper-Pearson interval of an accuracy measured on n images (the count is accuracy * n, rounded). */
export function interval(accuracy: number, n: number, level = 0.95): Interval {
  return accuracyInterval(Math.round(accuracy * n), n, level);
}

/** An accuracy with the number of images behind it, for intervals. */
export interface Measured {
  accuracy: number;
  n: number;
}

/** A seed-by-seed comparison of model A against model B on one quantity (A - B). */
export interface Comparison {
  diff: Stat;
  /** Seeds where both were measured. */
  seeds: number;
  higher: number;
  lower: number;
  /** Seeds where A's interval lies wholly above B's (or below). */
  higherBeyondNoise: number;
  lowerBeyondNoise: number;
  /** 'higher': A above B in every compared seed; 'lower': below in every one; else 'mixed'. */
  outcome: "higher" | "lower" | "mixed" | "not run yet";
}

export function compare(a: readonly (Measured | null)[], b: readonly (Measured | null)[]): Comparison {
  const diffs: (number | null)[] = [];
  let [seeds, higher, lower, up, down] = [0, 0, 0, 0, 0];
  a.forEach((x, i) => {
    const y = b[i] ?? null;
    if (x === null || y === null) {
      diffs.push(null);
      return;
    }
    seeds++;
    const d = x.accuracy - y.accuracy;
    diffs.push(d);
    if (d > 0) higher++;
    if (d < 0) lower++;
    const ix = interval(x.accuracy, x.n);
    const iy = interval(y.accuracy, y.n);
    if (ix.lower > iy.upper) up++;
    if (ix.upper < iy.lower) down++;
  });
  const outcome = seeds === 0 ? "not run yet" : higher === seeds ? "higher" : lower === seeds ? "lower" : "mixed";
  return { diff: stat(diffs), seeds, higher, lower, higherBeyondNoise: up, lowerBeyondNoise: down, outcome };
}

/** Points in percent with one decimal ('27.4%'); differences with a sign ('+3.2'). */
export function pct(v: number | null): string {
  return v === null ? "—" : `${(100 * v).toFixed(1)}%`;
}

export function points(v: number | null): string {
  if (v === null) return "—";
  const p = 100 * v;
  return `${p >= 0 ? "+" : "−"}${Math.abs(p).toFixed(1)}`;
}

/** 'A vs B, SA: +3.2 ± 1.1 points (A higher in 3 of 3 seeds, beyond the 95% intervals in 1)'. */
export function describeComparison(what: string, a: string, c: Comparison): string {
  if (c.seeds === 0) return `${what}: not run yet`;
  const spread = c.diff.std === null ? "" : ` ± ${(100 * c.diff.std).toFixed(1)}`;
  const side =
    c.outcome === "lower"
      ? `${a} lower in ${c.lower} of ${c.seeds} seed${c.seeds === 1 ? "" : "s"}, beyond the 95% intervals in ${c.lowerBeyondNoise}`
      : `${a} higher in ${c.higher} of ${c.seeds} seed${c.seeds === 1 ? "" : "s"}, beyond the 95% intervals in ${c.higherBeyondNoise}`;
  return `${what}: ${points(c.diff.mean)}${spread} points (${side})`;
}

/** One direction of a monotonicity check along alpha. */
export interface MonotoneCheck {
  /** Pairs alpha_i < alpha_j that move the wrong way at all. */
  reversals: { from: number; to: number; change: number }[];
  /** Those whose 95% intervals do not overlap: a violation that noise does not explain. */
  violations: { from: number; to: number; change: number }[];
  /** The change from the smallest to the largest alpha, and whether it lies beyond the intervals. */
  net: number;
  netBeyondNoise: boolean;
}

/**
 * Checks that values fall (direction -1) or rise (+1) along alpha. Every pair alpha_i < alpha_j
 * is compared, not only neighbours, so a slow drift the wrong way over several steps counts. A
 * pair is a violation only when the two points' Clopper-Pearson intervals are disjoint in the
 * wrong order; smaller reversals are reported as within noise.
 */
export function monotone(pointsIn: readonly { alpha: number; accuracy: number; n: number }[], direction: 1 | -1): MonotoneCheck {
  const pts = [...pointsIn].sort((x, y) => x.alpha - y.alpha);
  const reversals: MonotoneCheck["reversals"] = [];
  const violations: MonotoneCheck["violations"] = [];
  for (let i = 0; i < pts.length; i++) {
    for (let j = i + 1; j < pts.length; j++) {
      const [p, q] = [pts[i], pts[j]] as [(typeof pts)[number], (typeof pts)[number]];
      const change = q.accuracy - p.accuracy;
      if (change * direction >= 0) continue;
      const entry = { from: p.alpha, to: q.alpha, change };
      reversals.push(entry);
      const ip = interval(p.accuracy, p.n);
      const iq = interval(q.accuracy, q.n);
      if (direction === -1 ? iq.lower > ip.upper : iq.upper < ip.lower) violations.push(entry);
    }
  }
  const first = pts[0];
  const last = pts[pts.length - 1];
  let net = 0;
  let netBeyondNoise = false;
  if (first !== undefined && last !== undefined && pts.length > 1) {
    net = last.accuracy - first.accuracy;
    const i0 = interval(first.accuracy, first.n);
    const i1 = interval(last.accuracy, last.n);
    netBeyondNoise = direction === -1 ? i1.upper < i0.lower : i1.lower > i0.upper;
  }
  return { reversals, violations, net, netBeyondNoise };
}

/** Normalised entropy of route counts: 1 when every expert gets the same share, 0 when one gets all. */
export function usageBalance(counts: readonly number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0 || counts.length < 2) return null;
  const h = counts.reduce((a, c) => (c === 0 ? a : a - (c / total) * Math.log(c / total)), 0);
  return h / Math.log(counts.length);
}

export function largestShare(counts: readonly number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  return total === 0 ? null : Math.max(...counts) / total;
}
