// The confidence interval on every accuracy of a report: exact two-sided Clopper-Pearson
// bounds from src/certify/clopper-pearson.ts (the numerics that randomized smoothing's
// certificates use, so reports and certificates share one implementation). Intervals are
// pure functions of integer counts, so a merged evaluation gets the same bits as one run.
import { clopperPearsonInterval } from "../certify/clopper-pearson.js";

/** A closed interval [lower, upper] within [0, 1]. */
export interface Interval {
  lower: number;
  upper: number;
}

/** The confidence level of every interval in a report unless asked otherwise. */
export const DEFAULT_CONFIDENCE = 0.95;

export function checkConfidence(what: string, level: number): void {
  if (!(level > 0 && level < 1)) throw new RangeError(`${what}: the confidence level must be in (0, 1), got ${level}`);
}

/**
 * The exact two-sided interval for k correct out of n at the given level: the success
 * probabilities a binomial test at 1 - level would not reject. n must be >= 1.
 */
export function accuracyInterval(k: number, n: number, level: number = DEFAULT_CONFIDENCE): Interval {
  checkConfidence("accuracyInterval", level);
  const key = `${k}/${n}@${level}`;
  let hit = cache.get(key);
  if (hit === undefined) {
    const [lower, upper] = clopperPearsonInterval(k, n, 1 - level);
    hit = { lower, upper };
    // A bisection costs ~1 ms and reports repeat counts (per class, curves, merges): remember a few thousand.
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(key, hit);
  }
  return { ...hit };
}

const CACHE_SIZE = 4096;
const cache = new Map<string, Interval>();
