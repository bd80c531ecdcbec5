// evaluateRobustness: the numbers of METHOD.md section 2 for one model on one set of
// images. SA; RA under each attack of the whole model (a dual model end to end) and the
// per-sample worst case over them; per-class accuracy; and for every MoE (the model, or
// each MoE member of a dual model, attacked alone) expert usage, routes under attack,
// RA-E, RA-R and the route-flip rate. Optionally the gradient-masking checks on the first
// batch. Every tensor it makes is freed; the model's modes are left as they were.
import { performance } from "node:perf_hooks";
import { type Attack, type Classifier, checkCount, checkEps, type Norm, withEvalMode } from "../attacks/attack.js";
import { ExpertAttack } from "../attacks/expert-attack.js";
import { checkGradientMasking, type MaskingCheckOptions } from "../attacks/masking-checks.js";
import { defaultEps, type PGDOptions } from "../attacks/pgd.js";
import { RouterAttack } from "../attacks/router-attack.js";
import { ImageDataset } from "../data/dataset.js";
import { noGrad } from "../tensor/autograd.js";
import { manualSeed } from "../tensor/runtime.js";
import { dispose, scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { type AttackSpec, buildAttack, toAttackSpecs } from "./attack-spec.js";
import { batchesOf, DEFAULT_EVAL_BATCH, type EvalData } from "./batches.js";
import { type MoEMember, moeMembers, summarizeModel } from "./model-summary.js";
import {
  type AttackResult,
  type ClassResult,
  type MoEAttackResult,
  type MoEResult,
  REPORT_SCHEMA,
  REPORT_VERSION,
  type RobustnessReport,
} from "./report.js";

export interface EvalProgress {
  /** Samples finished (a batch counts in proportion to its stages done). */
  done: number;
  /** Samples to evaluate, or null when unknown (batches without options.n). */
  total: number | null;
  /** What just finished, e.g. 'batch 2/10: pgd50'. */
  stage: string;
}

export const DEFAULT_ATTACKS: readonly string[] = ["pgd50"];
/** PGD steps of RA-E and RA-R (METHOD.md: PGD-50 at eps 8/255, step 2/255). */
export const DEFAULT_MOE_STEPS = 50;

export interface RobustnessOptions {
  /** Attack names or specs, in order (see parseAttackSpec). Default ['pgd50']; [] for SA only. */
  attacks?: readonly (string | AttackSpec)[];
  /** Default 8/255 (L-inf) or 0.5 (L2). */
  eps?: number;
  /** Default 'linf'. */
  norm?: Norm;
  /** PGD/APGD restarts. Default 1. */
  restarts?: number;
  /** APGD iterations. Default 100. */
  apgdSteps?: number;
  /** Random-search queries (square, aa). Default 1000. */
  queries?: number;
  /** RA-E, RA-R, expert usage and route flips for MoEs. Default true (usage is reported either way). */
  moeAttacks?: boolean;
  /** PGD steps of the RA-E and RA-R attacks (step eps/4). Default 50. */
  moeSteps?: number;
  /** Run checkGradientMasking on the first batch (true, or its options; eps and norm default to the evaluation's). */
  maskingChecks?: boolean | MaskingCheckOptions;
  /** Evaluate only the first n samples. Default all. */
  n?: number;
  /** Batch size when data is a dataset. Default 100. */
  batchSize?: number;
  /** Dataset only: resize every batch to size x size (bilinear, antialiased) before the model; attacks work at that size. */
  resize?: number;
  /**
   * Makes the run reproducible: before each attack on each batch, LibTorch's generator is
   * seeded from (seed, attack name, batch index), so an attack's result does not depend on
   * the other attacks in the list. Default: the generator is left alone.
   */
  seed?: number;
  /** Class names (default: the dataset's, else '0', '1', ...). */
  classes?: readonly string[];
  /** Copied into the report's source field. */
  source?: { checkpoint?: string; dataset?: string; split?: string };
  onProgress?: (p: EvalProgress) => void;
}

/** A 31-bit seed from (seed, label, batch): FNV-1a over the text. */
export function deriveSeed(seed: number, label: string, batch: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${seed}:${label}:${batch}`) {
    h ^= ch.codePointAt(0) as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}

function bincount(values: readonly number[], bins: number): number[] {
  const out = new Array<number>(bins).fill(0);
  for (const v of values) out[v] = (out[v] as number) + 1;
  return out;
}

function flags(mask: Tensor): boolean[] {
  return scope(() => mask.toFlatArray().map((v) => v !== 0));
}

function count(mask: readonly boolean[]): number {
  let c = 0;
  for (const v of mask) if (v) c++;
  return c;
}

function top1(moe: MoEMember["moe"], x: Tensor): number[] {
  return noGrad(() => scope(() => moe.routerLogits(x).argmax(1).toFlatArray()));
}

interface MoEAcc {
  m: MoEMember;
  cleanCorrect: number;
  usage: number[];
  under: { counts: number[]; flips: number }[];
  expert: { attack: string; correct: number; moe: number; flips: number; seconds: number } | null;
  router: { attack: string; correct: number; moe: number; flips: number; seconds: number } | null;
}

/**
 * Evaluates model on data (a dataset, or (x, y) batches) and returns the report that
 * `rmoe eval` prints. Synchronous; the model runs in eval mode and its modes and MoE usage
 * counts are restored afterwards.
 */
export function evaluateRobustness(model: Classifier, data: EvalData, options: RobustnessOptions = {}): RobustnessReport {
  const t0 = performance.now();
  const norm = options.norm ?? "linf";
  const eps = options.eps ?? defaultEps(norm);
  checkEps("evaluateRobustness", eps, norm);
  const specs = toAttackSpecs(options.attacks ?? DEFAULT_ATTACKS);
  const moeSteps = options.moeSteps ?? DEFAULT_MOE_STEPS;
  checkCount("evaluateRobustness", "moeSteps", moeSteps, 1);
  if (options.restarts !== undefined) checkCount("evaluateRobustness", "restarts", options.restarts, 1);
  if (options.batchSize !== undefined) checkCount("evaluateRobustness", "batchSize", options.batchSize, 1);
  if (options.n !== undefined) checkCount("evaluateRobustness", "n", options.n, 1);
  if (options.seed !== undefined) checkCount("evaluateRobustness", "seed", options.seed, 0);
  const moeAttacks = options.moeAttacks ?? true;
  const members = moeMembers(model);
  const limit = options.n ?? Number.POSITIVE_INFINITY;
  const total = data instanceof ImageDataset ? Math.min(limit, data.length) : options.n === undefined ? null : options.n;
  let classes: string[] | null =
    options.classes !== undefined ? [...options.classes] : data instanceof ImageDataset ? [...data.classes] : null;
  const seed = options.seed;
  const reseed = (label: string, batch: number): void => {
    if (seed !== undefined) manualSeed(deriveSeed(seed, label, batch));
  };
  const moePgd: PGDOptions = { eps, norm, steps: moeSteps, alpha: eps / 4, restarts: options.restarts ?? 1 };
  const maskingOptions: MaskingCheckOptions | null =
    options.maskingChecks === undefined || options.maskingChecks === false
      ? null
      : { eps, norm, ...(options.maskingChecks === true ? {} : options.maskingChecks) };

  return withEvalMode(model, () => {
    let attacks: Attack[] | null = null;
    let numClasses = 0;
    let n = 0;
    let cleanCorrect = 0;
    let worstCorrect = 0;
    const attackAcc = specs.map(() => ({ name: "", correct: 0, seconds: 0 }));
    let classN: number[] = [];
    let classClean: number[] = [];
    let classRobust: number[] = [];
    const moeAcc: MoEAcc[] = members.map((m) => ({
      m,
      cleanCorrect: 0,
      usage: new Array<number>(m.moe.numExperts).fill(0),
      under: specs.map(() => ({ counts: new Array<number>(m.moe.numExperts).fill(0), flips: 0 })),
      expert: null,
      router: null,
    }));
    let masking: RobustnessReport["masking"] = null;
    const batches =
      data instanceof ImageDataset && total !== null ? Math.ceil(total / (options.batchSize ?? DEFAULT_EVAL_BATCH)) : null;
    const stages = 1 + specs.length + (moeAttacks ? 2 * members.length : 0);
    let batchIndex = 0;

    for (const batch of batchesOf(data, { ...options, limit }, "evaluateRobustness")) {
      try {
        scope(() => {
          const { x, y } = batch;
          const b = x.size(0);
          if (b === 0) return;
          const label = `batch ${batchIndex + 1}${batches === null ? "" : `/${batches}`}`;
          let stage = 0;
          const progress = (what: string): void => {
            stage++;
            options.onProgress?.({ done: n + Math.floor((b * stage) / stages), total, stage: `${label}: ${what}` });
          };

          // Clean predictions; the number of classes comes from the model's output.
          const logits = noGrad(() => model.forward(x));
          if (attacks === null) {
            numClasses = logits.size(1);
            if (classes === null) classes = Array.from({ length: numClasses }, (_, i) => String(i));
            if (classes.length !== numClasses) {
              throw new RangeError(
                `evaluateRobustness: the model predicts ${numClasses} classes but the data has ${classes.length} (${classes.slice(0, 3).join(", ")}${classes.length > 3 ? ", ..." : ""})`,
              );
            }
            classN = new Array<number>(numClasses).fill(0);
            classClean = new Array<number>(numClasses).fill(0);
            classRobust = new Array<number>(numClasses).fill(0);
            const settings = {
              eps,
              norm,
              numClasses,
              restarts: options.restarts,
              apgdSteps: options.apgdSteps,
              queries: options.queries,
            };
            attacks = specs.map((s) => buildAttack(s, model, settings));
            specs.forEach((_, i) => {
              (attackAcc[i] as { name: string }).name = (attacks as Attack[])[i]?.name ?? "";
            });
          }
          const labels = y.toFlatArray();
          for (const [i, c] of labels.entries()) {
            if (!(Number.isInteger(c) && c >= 0 && c < numClasses)) {
              throw new RangeError(`evaluateRobustness: label ${c} of sample ${n + i} is outside 0..${numClasses - 1}`);
            }
          }
          const cleanOk = noGrad(() => logits.argmax(1).eq(y));
          const cleanFlags = flags(cleanOk);
          let worst = cleanFlags;
          const cleanRoutes = moeAcc.map((a) => {
            const routes = top1(a.m.moe, x);
            const u = bincount(routes, a.m.moe.numExperts);
            for (let e = 0; e < u.length; e++) a.usage[e] = (a.usage[e] as number) + (u[e] as number);
            a.cleanCorrect += a.m.attackedAlone
              ? count(flags(noGrad(() => a.m.moe.forward(x).argmax(1).eq(y))))
              : count(cleanFlags);
            return routes;
          });
          progress("clean");

          if (batchIndex === 0 && maskingOptions !== null) {
            reseed("masking-checks", 0);
            const r = checkGradientMasking(model, x, y, maskingOptions);
            masking = { n: b, ...r };
          }

          for (const [i, attack] of (attacks as Attack[]).entries()) {
            const spec = specs[i] as AttackSpec;
            const started = performance.now();
            reseed(spec.name, batchIndex);
            const ok = scope(() => {
              const adv = attack.run(x, y);
              const okAdv = flags(noGrad(() => model.forward(adv).argmax(1).eq(y)));
              for (const [k, a] of moeAcc.entries()) {
                const routes = top1(a.m.moe, adv);
                const under = a.under[i] as MoEAcc["under"][number];
                const clean = cleanRoutes[k] as number[];
                for (const [j, r] of routes.entries()) {
                  under.counts[r] = (under.counts[r] as number) + 1;
                  if (r !== clean[j]) under.flips++;
                }
              }
              return okAdv.map((v, j) => v && (cleanFlags[j] as boolean));
            });
            const acc = attackAcc[i] as (typeof attackAcc)[number];
            acc.correct += count(ok);
            acc.seconds += (performance.now() - started) / 1000;
            worst = worst.map((v, j) => v && (ok[j] as boolean));
            progress(spec.name);
          }

          if (moeAttacks) {
            for (const a of moeAcc) {
              const moe = a.m.moe;
              const frac = (v: number): number => Math.round(v * b);
              let started = performance.now();
              reseed(`ra-e:${a.m.member}`, batchIndex);
              const ea = new ExpertAttack(moe, moePgd);
              const e = ea.evaluate(x, y);
              a.expert ??= { attack: ea.name, correct: 0, moe: 0, flips: 0, seconds: 0 };
              a.expert.correct += frac(e.frozenRouterAccuracy);
              a.expert.moe += frac(e.moeAccuracy);
              a.expert.flips += frac(e.routeFlipRate);
              a.expert.seconds += (performance.now() - started) / 1000;
              progress(`RA-E (${a.m.member})`);

              started = performance.now();
              reseed(`ra-r:${a.m.member}`, batchIndex);
              // Hard gating has no gradient through its gate weights: push the route instead.
              const ra = new RouterAttack(moe, { ...moePgd, objective: moe.gating === "hard" ? "route" : "output" });
              const r = ra.evaluate(x, y);
              a.router ??= { attack: ra.name, correct: 0, moe: 0, flips: 0, seconds: 0 };
              a.router.correct += frac(r.frozenExpertAccuracy);
              a.router.moe += frac(r.moeAccuracy);
              a.router.flips += frac(r.routeFlipRate);
              a.router.seconds += (performance.now() - started) / 1000;
              progress(`RA-R (${a.m.member})`);
            }
          }

          cleanCorrect += count(cleanFlags);
          if (specs.length > 0) worstCorrect += count(worst);
          for (const [j, c] of labels.entries()) {
            classN[c] = (classN[c] as number) + 1;
            if (cleanFlags[j]) classClean[c] = (classClean[c] as number) + 1;
            if (worst[j]) classRobust[c] = (classRobust[c] as number) + 1;
          }
          n += b;
        });
      } finally {
        if (batch.owned) dispose([batch.x, batch.y]);
      }
      batchIndex++;
    }
    if (n === 0) throw new RangeError("evaluateRobustness: no samples to evaluate");

    const ratio = (c: number): number => c / n;
    const attackResults: AttackResult[] = specs.map((s, i) => {
      const a = attackAcc[i] as (typeof attackAcc)[number];
      return { spec: s.name, attack: a.name, correct: a.correct, accuracy: ratio(a.correct), seconds: a.seconds };
    });
    const names = classes ?? [];
    const perClass: ClassResult[] = names.map((name, c) => {
      const cn = classN[c] as number;
      const score = (k: number) => ({ correct: k, accuracy: cn === 0 ? null : k / cn });
      return {
        index: c,
        name,
        n: cn,
        clean: score(classClean[c] as number),
        robust: specs.length === 0 ? null : score(classRobust[c] as number),
      };
    });
    const moeAttack = (r: MoEAcc["expert"]): MoEAttackResult | null =>
      r === null
        ? null
        : {
            attack: r.attack,
            accuracy: ratio(r.correct),
            moeAccuracy: ratio(r.moe),
            routeFlipRate: ratio(r.flips),
            seconds: r.seconds,
          };
    const moe: MoEResult[] = moeAcc.map((a) => ({
      member: a.m.member,
      attackedAlone: a.m.attackedAlone,
      numExperts: a.m.moe.numExperts,
      gating: a.m.moe.gating,
      k: a.m.moe.k,
      cleanAccuracy: ratio(a.cleanCorrect),
      usage: { counts: a.usage },
      underAttack: specs.map((s, i) => {
        const u = a.under[i] as MoEAcc["under"][number];
        return { spec: s.name, counts: u.counts, routeFlipRate: ratio(u.flips) };
      }),
      expertAttack: moeAttack(a.expert),
      routerAttack: moeAttack(a.router),
    }));
    const src = options.source ?? {};
    return {
      schema: REPORT_SCHEMA,
      version: REPORT_VERSION,
      source: { checkpoint: src.checkpoint ?? null, dataset: src.dataset ?? null, split: src.split ?? null },
      model: summarizeModel(model),
      threatModel: { norm, eps },
      seed: seed ?? null,
      n,
      classes: names,
      clean: { correct: cleanCorrect, accuracy: ratio(cleanCorrect) },
      attacks: attackResults,
      worstCase:
        specs.length === 0 ? null : { attacks: specs.map((s) => s.name), correct: worstCorrect, accuracy: ratio(worstCorrect) },
      perClass,
      moe,
      masking,
      seconds: (performance.now() - t0) / 1000,
    };
  });
}
