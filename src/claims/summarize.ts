// The summary of `rmoe claims` (docs/RESULTS.md): reads the outputs of the stages that have
// run (eval reports, the sweep, certificates), computes per claim and quantity the mean, the
// sample std over seeds and the per-seed values, decides a verdict per claim from those
// numbers with the criteria written out below (never a fixed text), and writes
// DIR/claims.json and DIR/results-tables.md. A missing output is reported as "not run yet",
// never filled in; an unreadable one is reported with its reason.
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { stageStates } from "../pipeline/stages.js";
import { type EvalInput, parseCertify, parseEvalReport, parseSweep, type SweepFile } from "../report/inputs.js";
import { writeFileAtomic } from "../train/run-dir.js";
import {
  CERT_KINDS,
  CERT_MODEL_TITLES,
  CERT_MODELS,
  type CertKind,
  type CertModel,
  type ClaimRow,
  type ClaimStage,
  type ClaimsOptions,
  type ClaimsSettings,
  claimsSettings,
  claimsStages,
  DEFAULTS,
  formatCommand,
  MODELS,
  type ModelName,
  readCommands,
  seedPaths,
  stageCommand,
} from "./plan.js";
import {
  type Comparison,
  compare,
  describeComparison,
  largestShare,
  type Measured,
  type MonotoneCheck,
  monotone,
  pct,
  points,
  type Stat,
  stat,
  usageBalance,
} from "./stats.js";

export const CLAIMS_SCHEMA = "robust-moe.claims";

/** SA gaps up to this many points count as "comparable SA" in claim 2. */
export const COMPARABLE_SA_POINTS = 5;

export type ClaimStatus = "holds" | "does not hold" | "mixed" | "partly" | "measured" | "not run yet";

export interface SummaryColumn {
  label: string;
  format: "percent" | "number";
}

export interface SummaryTable {
  title: string;
  columns: SummaryColumn[];
  rows: { label: string; cells: (Stat | null)[] }[];
}

export interface ClaimSummary {
  row: ClaimRow;
  title: string;
  /** What the paper reports for this claim. */
  paper: string;
  /** How the verdict is decided (docs/RESULTS.md, "Verdicts"). */
  criterion: string;
  status: ClaimStatus;
  verdict: string[];
  tables: SummaryTable[];
  /** Seeds whose every input for this claim exists. */
  seedsComplete: number[];
  /** "seed 1: seed-1/eval-aa-advmoe.json: not run yet", or the reason a file could not be read. */
  missing: string[];
  /** The command that reruns the claim, then every stage's command, seed by seed. */
  reproduce: string;
  commands: { seed: number | null; command: string; ran: boolean }[];
  notes: string[];
}

export interface ClaimsSummary {
  schema: typeof CLAIMS_SCHEMA;
  version: 1;
  createdAt: string;
  out: string;
  seeds: number[];
  rows: ClaimRow[];
  n: number;
  aaN: number;
  quick: boolean;
  settings: ClaimsSettings;
  claims: ClaimSummary[];
}

type Loaded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Reads each output at most once; a missing file is "not run yet", a bad one its error. */
class Inputs {
  private cache = new Map<string, Loaded<unknown>>();
  constructor(readonly out: string) {}

  private load<T>(file: string, parse: (v: unknown) => T): Loaded<T> {
    const hit = this.cache.get(file);
    if (hit !== undefined) return hit as Loaded<T>;
    let r: Loaded<T>;
    if (!existsSync(file)) r = { ok: false, reason: "not run yet" };
    else {
      try {
        r = { ok: true, value: parse(JSON.parse(readFileSync(file, "utf8"))) };
      } catch (e) {
        r = { ok: false, reason: `unreadable: ${(e as Error).message}` };
      }
    }
    this.cache.set(file, r);
    return r;
  }

  eval(file: string): Loaded<EvalNumbers> {
    return this.load(file, (v) => evalNumbers(v, file));
  }
  sweep(file: string): Loaded<SweepFile> {
    return this.load(file, (v) => parseSweep(v, file));
  }
  certify(file: string): Loaded<{ n: number; points: { eps: number; accuracy: number }[] }> {
    return this.load(file, (v) => {
      const c = parseCertify(v, file);
      const curve = c.curves[0];
      if (curve === undefined || c.curves.length !== 1) throw new Error(`${file}: expected one curve, got ${c.curves.length}`);
      const n = c.data?.n ?? null;
      if (n === null) throw new Error(`${file}: field 'data.n' is missing (the number of certified images)`);
      return { n, points: curve.points.map((p) => ({ eps: p.eps, accuracy: p.certifiedAccuracy })) };
    });
  }
}

/** The numbers of an eval report that the claims read. */
export interface EvalNumbers {
  n: number;
  sa: number;
  ra: Record<string, number>;
  /**
   * RA under the per-sample worst case of every attack on the whole model in that evaluation:
   * the listed attacks and the adaptive MoE attack (route-then-expert), docs/EVAL.md. The
   * strongest white-box number of the run; null when the report has none.
   */
  worst: number | null;
  moe: {
    usage: number[];
    raE: number | null;
    raR: number | null;
    /** RA-R's runs: the untargeted router attack alone, and the targeted route attack alone. */
    raRUntargeted: number | null;
    raRTargeted: number | null;
    realMoeUnderRaR: number | null;
    routeFlipsRaR: number | null;
  } | null;
}

function evalNumbers(value: unknown, file: string): EvalNumbers {
  const e: EvalInput = parseEvalReport(value, file, file, "other");
  const m = e.moe.find((x) => x.member === "model") ?? null;
  // parseEvalReport leaves out RA-R's runs; read them here (docs/EVAL.md: routerAttack.runs[] = {id, correct}).
  const run = (id: string): number | null => {
    const raw = (value as { moe?: { member?: unknown; routerAttack?: { runs?: unknown } | null }[] }).moe;
    const entry = Array.isArray(raw) ? raw.find((x) => x?.member === "model") : undefined;
    const runs = entry?.routerAttack?.runs;
    if (!Array.isArray(runs)) return null;
    const r = runs.find((x: { id?: unknown }) => x?.id === id) as { correct?: unknown } | undefined;
    if (r === undefined) return null;
    if (typeof r.correct !== "number" || !Number.isInteger(r.correct) || r.correct < 0 || r.correct > e.n)
      throw new Error(
        `${file}: field 'moe[].routerAttack.runs[id=${id}].correct' must be a count in 0..${e.n}, got ${JSON.stringify(r.correct)}`,
      );
    return r.correct / e.n;
  };
  return {
    n: e.n,
    sa: e.sa,
    ra: Object.fromEntries(e.attacks.map((a) => [a.spec, a.accuracy])),
    worst: e.worstCase,
    moe:
      m === null
        ? null
        : {
            usage: m.usage,
            raE: m.expertAttack?.accuracy ?? null,
            raR: m.routerAttack?.accuracy ?? null,
            raRUntargeted: run("ra-r"),
            raRTargeted: run("ra-r-targeted"),
            realMoeUnderRaR: m.routerAttack?.moeAccuracy ?? null,
            routeFlipsRaR: m.routerAttack?.routeFlipRate ?? null,
          },
  };
}

const PAPER_RT_ER =
  "RT-ER, 4 x ResNet18 on CIFAR-10: SA 77.81, RA (PGD-50) 69.09, RA-E 75.71, RA-R 72.28; AutoAttack: SA 75.92, RA 54.36";

const TITLES: Record<ClaimRow, string> = {
  1: "A standard MoE: RA-E far below RA-R",
  2: "RT-ER against PGD-AT, TRADES and AdvMoE at comparable SA",
  3: "The alpha sweep of the post-hoc dual model: SA falls and RA rises monotonically",
  4: "JTDMoE against the post-hoc dual model at the same alpha",
  5: "Certified accuracy against eps: the single MoE and the dual models",
  6: "Router kinds: hard against a trainable softmax top-1, with and without load balancing",
};

const PAPER: Record<ClaimRow, string> = {
  1: "standard MoE on CIFAR-10: RA-E under 4%, RA-R over 50% (METHOD.md section 2)",
  2: PAPER_RT_ER,
  3: "SA falls and RA rises monotonically as alpha goes from 0 (standard member) to 1 (robust member)",
  4: "at the same alpha, the jointly trained dual model beats the post-hoc one in both SA and RA (METHOD.md section 6)",
  5: "Theorems 5.4 and 5.5 give certified radii for the MoE and the dual model (no numbers available to us)",
  6: "the paper's code routes by a hard argmax whose router gets no gradient and stays random (METHOD.md section 1)",
};

const CRITERIA: Record<ClaimRow, string> = {
  1: "holds when RA-E < RA-R (RA-R = the per-sample worst case over the untargeted and targeted router attacks) in every seed run; 'beyond noise' counts seeds where the two 95% Clopper-Pearson intervals are disjoint; the paper's magnitudes (RA-E < 4%, RA-R > 50%) are checked on the means and reported separately",
  2: `holds when RT-ER's RA is above every baseline's in every seed, under PGD, under the worst case of the PGD evaluation's attacks (PGD and the adaptive route-then-expert attack) and under AutoAttack; does not hold when it is below some baseline's in every seed under any of the three; otherwise mixed. SA counts as comparable when the mean SA gap is at most ${COMPARABLE_SA_POINTS} points (else the line says so)`,
  3: "per seed: for every pair alpha_i < alpha_j, SA rising or RA falling with disjoint 95% Clopper-Pearson intervals is a violation (smaller reversals are within noise); the net change from the first to the last alpha must lie beyond the intervals (SA down, RA up). holds: no violation and both net changes beyond noise in every seed; does not hold: a violation in some seed; partly: monotone within noise but a net change not beyond noise",
  4: "holds when JTDMoE is above the post-hoc dual model at JTDMoE's own alpha in both SA and RA in every seed; does not hold when below in both in every seed; otherwise mixed",
  5: "measured, not judged against a number: per certificate, whether anything is certified at the smallest radius (non-vacuous), and how the dual models compare with the single RT-ER MoE radius by radius (higher in every seed / lower in every seed)",
  6: "holds when both trainable top-1 routers (with and without load balancing) are above the hard router in SA and RA (under PGD and under the worst case of the evaluation's attacks) in every seed; does not hold when the hard router is at least as high as both in all of them in every seed; otherwise mixed. The load-balancing line compares the usage balance (normalised entropy of the clean routes) with and without it",
};

interface Ctx {
  o: ClaimsOptions;
  s: ClaimsSettings;
  inputs: Inputs;
  stages: ClaimStage[];
  recorded: Record<string, { command: string }>;
}

/** Per-seed values of one file kind, with the missing ones listed. */
function perSeed<T>(ctx: Ctx, missing: string[], file: (seed: number) => string, load: (f: string) => Loaded<T>): (T | null)[] {
  return ctx.o.seeds.map((seed) => {
    const f = file(seed);
    const r = load(f);
    if (r.ok) return r.value;
    missing.push(`seed ${seed}: ${relative(ctx.o.out, f)}: ${r.reason}`);
    return null;
  });
}

const paths = (ctx: Ctx, seed: number) => seedPaths(ctx.o.out, seed, ctx.s.alpha);
const measured = (v: number | null | undefined, n: number): Measured | null =>
  v === null || v === undefined ? null : { accuracy: v, n };

function seedsComplete(ctx: Ctx, missing: readonly string[]): number[] {
  return ctx.o.seeds.filter((s) => !missing.some((m) => m.startsWith(`seed ${s}:`)));
}

const P = (label: string): SummaryColumn => ({ label, format: "percent" });
/**
 * The per-sample worst case of an evaluation (PGD and the adaptive route-then-expert attack on
 * the whole MoE): PGD alone can miss what routing hides, so every RA table shows both.
 */
const WORST = "RA worst case";

function claim1(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const ev = perSeed(
    ctx,
    missing,
    (s) => paths(ctx, s).eval("standard"),
    (f) => ctx.inputs.eval(f),
  );
  const col = (f: (e: EvalNumbers) => number | null | undefined) => stat(ev.map((e) => (e === null ? null : (f(e) ?? null))));
  const table: SummaryTable = {
    title: `${MODELS.standard.title}, eval n=${ctx.o.n}`,
    columns: [
      P("SA"),
      P(`RA ${ctx.s.attack}`),
      P(WORST),
      P("RA-E"),
      P("RA-R (worst case)"),
      P("RA-R untargeted"),
      P("RA-R targeted"),
      P("real MoE under RA-R"),
      P("route flips (RA-R)"),
    ],
    rows: [
      {
        label: "standard MoE",
        cells: [
          col((e) => e.sa),
          col((e) => e.ra[ctx.s.attack]),
          col((e) => e.worst),
          col((e) => e.moe?.raE),
          col((e) => e.moe?.raR),
          col((e) => e.moe?.raRUntargeted),
          col((e) => e.moe?.raRTargeted),
          col((e) => e.moe?.realMoeUnderRaR),
          col((e) => e.moe?.routeFlipsRaR),
        ],
      },
    ],
  };
  const raR = ev.map((e) => (e === null ? null : measured(e.moe?.raR, e.n)));
  const raRU = ev.map((e) => (e === null ? null : measured(e.moe?.raRUntargeted, e.n)));
  const raE = ev.map((e) => (e === null ? null : measured(e.moe?.raE, e.n)));
  // "RA-R higher than RA-E" is the claim's direction.
  const c = compare(raR, raE);
  const cu = compare(raRU, raE);
  const verdict: string[] = [];
  let status: ClaimStatus = "not run yet";
  if (c.seeds > 0) {
    status = c.outcome === "higher" ? "holds" : c.outcome === "lower" ? "does not hold" : "mixed";
    verdict.push(
      `RA-E < RA-R (worst case) in ${c.higher} of ${c.seeds} seed${c.seeds === 1 ? "" : "s"} run, beyond the 95% intervals in ${c.higherBeyondNoise}; RA-R − RA-E = ${points(c.diff.mean)}${c.diff.std === null ? "" : ` ± ${(100 * c.diff.std).toFixed(1)}`} points`,
    );
    if (cu.seeds > 0)
      verdict.push(
        `against the untargeted RA-R alone: RA-E < RA-R in ${cu.higher} of ${cu.seeds}; the worst case lies ${(100 * ((cu.diff.mean ?? 0) - (c.diff.mean ?? 0))).toFixed(1)} points below the untargeted RA-R on average`,
      );
    const me = stat(raE.map((x) => x?.accuracy ?? null)).mean;
    const mr = stat(raR.map((x) => x?.accuracy ?? null)).mean;
    const meets = me !== null && mr !== null && me < 0.04 && mr > 0.5;
    verdict.push(
      `the paper's magnitudes (RA-E < 4%, RA-R > 50%): RA-E ${pct(me)}, RA-R ${pct(mr)}: ${meets ? "met" : "not met"}`,
    );
  }
  return { status, verdict, tables: [table], seedsComplete: seedsComplete(ctx, missing), missing, notes: [] };
}

function comparisonStatus(cs: readonly Comparison[]): ClaimStatus {
  if (cs.every((c) => c.seeds === 0)) return "not run yet";
  if (cs.some((c) => c.outcome === "lower")) return "does not hold";
  if (cs.every((c) => c.outcome === "higher")) return "holds";
  return "mixed";
}

function claim2(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const models: ModelName[] = ["rt-er", "pgd-at", "trades", "advmoe"];
  const ev = Object.fromEntries(
    models.map((m) => [
      m,
      perSeed(
        ctx,
        missing,
        (s) => paths(ctx, s).eval(m),
        (f) => ctx.inputs.eval(f),
      ),
    ]),
  ) as Record<ModelName, (EvalNumbers | null)[]>;
  const aa = Object.fromEntries(
    models.map((m) => [
      m,
      perSeed(
        ctx,
        missing,
        (s) => paths(ctx, s).evalAa(m),
        (f) => ctx.inputs.eval(f),
      ),
    ]),
  ) as Record<ModelName, (EvalNumbers | null)[]>;
  const val = (list: (EvalNumbers | null)[], f: (e: EvalNumbers) => number | null | undefined) =>
    list.map((e) => (e === null ? null : measured(f(e), e.n)));
  const q = {
    sa: (m: ModelName) => val(ev[m], (e) => e.sa),
    ra: (m: ModelName) => val(ev[m], (e) => e.ra[ctx.s.attack]),
    worst: (m: ModelName) => val(ev[m], (e) => e.worst),
    aa: (m: ModelName) => val(aa[m], (e) => e.ra.aa),
    aaSa: (m: ModelName) => val(aa[m], (e) => e.sa),
    raE: (m: ModelName) => val(ev[m], (e) => e.moe?.raE),
    raR: (m: ModelName) => val(ev[m], (e) => e.moe?.raR),
  };
  const st = (v: (Measured | null)[]) => stat(v.map((x) => x?.accuracy ?? null));
  const table: SummaryTable = {
    title: `RA under ${ctx.s.attack} (n=${ctx.o.n}) and AutoAttack (n=${ctx.o.aaN})`,
    columns: [P("SA"), P(`RA ${ctx.s.attack}`), P(WORST), P(`SA (aa run)`), P("RA aa"), P("RA-E"), P("RA-R")],
    rows: models.map((m) => ({
      label: MODELS[m].title,
      cells: [st(q.sa(m)), st(q.ra(m)), st(q.worst(m)), st(q.aaSa(m)), st(q.aa(m)), st(q.raE(m)), st(q.raR(m))],
    })),
  };
  const verdict: string[] = [];
  const all: Comparison[] = [];
  for (const b of models.slice(1)) {
    const sa = compare(q.sa("rt-er"), q.sa(b));
    const ra = compare(q.ra("rt-er"), q.ra(b));
    const worst = compare(q.worst("rt-er"), q.worst(b));
    const ra2 = compare(q.aa("rt-er"), q.aa(b));
    all.push(ra, ...(worst.seeds > 0 ? [worst] : []), ra2);
    const gap = sa.diff.mean;
    const comparable =
      gap === null
        ? ""
        : Math.abs(100 * gap) <= COMPARABLE_SA_POINTS
          ? " (comparable SA)"
          : ` (SA NOT comparable: more than ${COMPARABLE_SA_POINTS} points apart)`;
    verdict.push(
      `RT-ER vs ${MODELS[b].title}: ${describeComparison(`SA`, "RT-ER", sa)}${comparable}; ${describeComparison(`RA ${ctx.s.attack}`, "RT-ER", ra)}; ${worst.seeds > 0 ? `${describeComparison(WORST, "RT-ER", worst)}; ` : ""}${describeComparison("RA aa", "RT-ER", ra2)}`,
    );
  }
  return {
    status: comparisonStatus(all),
    verdict,
    tables: [table],
    seedsComplete: seedsComplete(ctx, missing),
    missing,
    notes: [`paper: ${PAPER_RT_ER}`],
  };
}

/** The monotonicity verdict of one seed's sweep. */
interface SweepSeedVerdict {
  sa: MonotoneCheck;
  ra: MonotoneCheck;
  status: "holds" | "does not hold" | "partly";
}

export function sweepVerdict(points: readonly { alpha: number; sa: number; ra: number }[], n: number): SweepSeedVerdict {
  const sa = monotone(
    points.map((p) => ({ alpha: p.alpha, accuracy: p.sa, n })),
    -1,
  );
  const ra = monotone(
    points.map((p) => ({ alpha: p.alpha, accuracy: p.ra, n })),
    1,
  );
  const status =
    sa.violations.length > 0 || ra.violations.length > 0
      ? "does not hold"
      : sa.netBeyondNoise && ra.netBeyondNoise
        ? "holds"
        : "partly";
  return { sa, ra, status };
}

function describeMonotone(what: string, expected: "down" | "up", m: MonotoneCheck): string {
  const v = m.violations.map((x) => `${x.from}→${x.to} ${points(x.change)}`).join(", ");
  const net = `${what} ${points(m.net)} points from the first to the last alpha (expected ${expected}${m.netBeyondNoise ? ", beyond the intervals" : "; not beyond the intervals"})`;
  return `${net}, ${m.reversals.length} pair${m.reversals.length === 1 ? "" : "s"} the wrong way${m.violations.length > 0 ? `, ${m.violations.length} beyond the intervals: ${v}` : ", all within the intervals"}`;
}

function claim3(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const sw = perSeed(
    ctx,
    missing,
    (s) => paths(ctx, s).sweep,
    (f) => ctx.inputs.sweep(f),
  );
  const alphas = [...new Set(sw.flatMap((x) => x?.points.map((p) => p.alpha) ?? []))].sort((a, b) => a - b);
  const at = (x: SweepFile | null, a: number) => x?.points.find((p) => Math.abs(p.alpha - a) < 1e-9) ?? null;
  const table: SummaryTable = {
    title: `Post-hoc dual model (standard + RT-ER), RA under ${ctx.s.attack}, n=${ctx.o.n}`,
    columns: [P("SA"), P(`RA ${ctx.s.attack}`)],
    rows: alphas.map((a) => ({
      label: `alpha ${a}`,
      cells: [stat(sw.map((x) => at(x, a)?.sa ?? null)), stat(sw.map((x) => at(x, a)?.ra[ctx.s.attack] ?? null))],
    })),
  };
  const verdict: string[] = [];
  const statuses: SweepSeedVerdict["status"][] = [];
  sw.forEach((x, i) => {
    if (x === null) return;
    const seed = ctx.o.seeds[i] as number;
    const n = x.n ?? ctx.o.n;
    const pts = x.points
      .filter((p) => p.ra[ctx.s.attack] !== undefined)
      .map((p) => ({ alpha: p.alpha, sa: p.sa, ra: p.ra[ctx.s.attack] as number }));
    if (pts.length < 2) {
      verdict.push(`seed ${seed}: fewer than two alphas with RA ${ctx.s.attack} in the sweep: nothing to judge`);
      return;
    }
    const v = sweepVerdict(pts, n);
    statuses.push(v.status);
    verdict.push(`seed ${seed}: ${v.status}: ${describeMonotone("SA", "down", v.sa)}; ${describeMonotone("RA", "up", v.ra)}`);
  });
  const status: ClaimStatus =
    statuses.length === 0
      ? "not run yet"
      : statuses.includes("does not hold")
        ? "does not hold"
        : statuses.every((s) => s === "holds")
          ? "holds"
          : "partly";
  return { status, verdict, tables: [table], seedsComplete: seedsComplete(ctx, missing), missing, notes: [] };
}

function claim4(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const notes: string[] = [];
  const sw = perSeed(
    ctx,
    missing,
    (s) => paths(ctx, s).sweep,
    (f) => ctx.inputs.sweep(f),
  );
  const jtd: (Measured[] | null)[] = [];
  const post: (Measured[] | null)[] = [];
  const alphas: (number | null)[] = [];
  sw.forEach((x, i) => {
    const seed = ctx.o.seeds[i] as number;
    const m = x?.markers.find((k) => k.kind === "jtdmoe") ?? null;
    const n = x?.n ?? ctx.o.n;
    if (x !== null && m === null)
      missing.push(`seed ${seed}: ${relative(ctx.o.out, paths(ctx, seed).sweep)}: has no JTDMoE marker`);
    const p =
      m === null || m.alpha === null ? null : (x?.points.find((q) => Math.abs(q.alpha - (m.alpha as number)) < 1e-9) ?? null);
    if (m !== null && p === null)
      missing.push(`seed ${seed}: the sweep has no point at JTDMoE's alpha ${m.alpha ?? "(not recorded)"}: add it to --alphas`);
    const ok = m !== null && p !== null && m.ra[ctx.s.attack] !== undefined && p.ra[ctx.s.attack] !== undefined;
    jtd.push(
      ok
        ? [
            { accuracy: m.sa, n },
            { accuracy: m.ra[ctx.s.attack] as number, n },
          ]
        : null,
    );
    post.push(
      ok
        ? [
            { accuracy: p.sa, n },
            { accuracy: p.ra[ctx.s.attack] as number, n },
          ]
        : null,
    );
    alphas.push(ok ? (m.alpha as number) : null);
  });
  const distinct = [...new Set(alphas.filter((a): a is number => a !== null))];
  const aText = distinct.length === 0 ? "" : ` ${distinct.join(", ")}`;
  const pick = (list: (Measured[] | null)[], k: number) => list.map((v) => v?.[k] ?? null);
  const table: SummaryTable = {
    title: `At JTDMoE's alpha${aText}, RA under ${ctx.s.attack}, n=${ctx.o.n} (the sweep's images and attack seeds)`,
    columns: [P("SA"), P(`RA ${ctx.s.attack}`)],
    rows: [
      { label: "JTDMoE (joint)", cells: [0, 1].map((k) => stat(pick(jtd, k).map((v) => v?.accuracy ?? null))) },
      { label: "post-hoc dual model", cells: [0, 1].map((k) => stat(pick(post, k).map((v) => v?.accuracy ?? null))) },
    ],
  };
  const sa = compare(pick(jtd, 0), pick(post, 0));
  const ra = compare(pick(jtd, 1), pick(post, 1));
  let status: ClaimStatus = "not run yet";
  if (sa.seeds > 0) {
    const both = sa.outcome === "higher" && ra.outcome === "higher";
    const neither = sa.outcome === "lower" && ra.outcome === "lower";
    status = both ? "holds" : neither ? "does not hold" : "mixed";
  }
  return {
    status,
    verdict:
      sa.seeds === 0 ? [] : [describeComparison("SA", "JTDMoE", sa), describeComparison(`RA ${ctx.s.attack}`, "JTDMoE", ra)],
    tables: [table],
    seedsComplete: seedsComplete(ctx, missing),
    missing,
    notes,
  };
}

function claim5(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const tables: SummaryTable[] = [];
  const verdict: string[] = [];
  let anyRun = false;
  for (const kind of Object.keys(CERT_KINDS) as CertKind[]) {
    const curves = Object.fromEntries(
      CERT_MODELS.map((m) => [
        m,
        perSeed(
          ctx,
          missing,
          (s) => paths(ctx, s).certify(kind, m),
          (f) => ctx.inputs.certify(f),
        ),
      ]),
    ) as Record<CertModel, ({ n: number; points: { eps: number; accuracy: number }[] } | null)[]>;
    const eps = [...new Set(CERT_MODELS.flatMap((m) => curves[m].flatMap((c) => c?.points.map((p) => p.eps) ?? [])))].sort(
      (a, b) => a - b,
    );
    const norm = CERT_KINDS[kind].norm;
    const epsLabel = (e: number) => (norm === "linf" ? `${+(e * 255).toFixed(3)}/255` : String(e));
    const at = (m: CertModel, e: number) =>
      curves[m].map((c) => {
        const p = c?.points.find((x) => Math.abs(x.eps - e) < 1e-12);
        return c === null || p === undefined ? null : { accuracy: p.accuracy, n: c.n };
      });
    tables.push({
      title: `Certified accuracy, ${CERT_KINDS[kind].title}`,
      columns: eps.map((e) => P(`${norm === "linf" ? "L-inf" : "L2"} ${epsLabel(e)}`)),
      rows: CERT_MODELS.map((m) => ({
        label: m === "dual" ? `${CERT_MODEL_TITLES[m]} (alpha ${ctx.s.alpha})` : CERT_MODEL_TITLES[m],
        cells: eps.map((e) => stat(at(m, e).map((v) => v?.accuracy ?? null))),
      })),
    });
    if (eps.length === 0) continue;
    anyRun = true;
    const smallest = eps.find((e) => e > 0);
    const nonVacuous = CERT_MODELS.map((m) => {
      const v = smallest === undefined ? null : stat(at(m, smallest).map((x) => x?.accuracy ?? null)).mean;
      return `${CERT_MODEL_TITLES[m]} ${pct(v)}`;
    });
    const parts = [
      `${CERT_KINDS[kind].title}: at the smallest radius ${smallest === undefined ? "—" : epsLabel(smallest)}: ${nonVacuous.join(", ")}`,
    ];
    for (const m of ["dual", "jtdmoe"] as const) {
      const cs = eps.map((e) => compare(at(m, e), at("rt-er", e)));
      const run = cs.filter((c) => c.seeds > 0);
      if (run.length === 0) continue;
      const hi = run.filter((c) => c.outcome === "higher").length;
      const lo = run.filter((c) => c.outcome === "lower").length;
      parts.push(
        `${CERT_MODEL_TITLES[m]} vs RT-ER MoE: higher in every seed at ${hi} of ${run.length} radii, lower in every seed at ${lo}`,
      );
    }
    verdict.push(parts.join("; "));
  }
  return {
    status: anyRun ? "measured" : "not run yet",
    verdict,
    tables,
    seedsComplete: seedsComplete(ctx, missing),
    missing,
    notes: [
      `smoothing certifies the smoothed classifier (sigma 0.25, ${ctx.s.smoothingSamples} samples, n=${Math.min(ctx.s.smoothingN, ctx.o.n)}), not the model; IBP and the Lipschitz margin certify the model itself (n=${ctx.o.n})`,
    ],
  };
}

function claim6(ctx: Ctx): Omit<ClaimSummary, "row" | "title" | "paper" | "criterion" | "reproduce" | "commands"> {
  const missing: string[] = [];
  const models: ModelName[] = ["standard", "standard-nolb", "standard-hard"];
  const ev = Object.fromEntries(
    models.map((m) => [
      m,
      perSeed(
        ctx,
        missing,
        (s) => paths(ctx, s).eval(m),
        (f) => ctx.inputs.eval(f),
      ),
    ]),
  ) as Record<ModelName, (EvalNumbers | null)[]>;
  const val = (m: ModelName, f: (e: EvalNumbers) => number | null | undefined) =>
    ev[m].map((e) => (e === null ? null : measured(f(e), e.n)));
  const st = (v: (Measured | null)[]) => stat(v.map((x) => x?.accuracy ?? null));
  const N = (label: string): SummaryColumn => ({ label, format: "number" });
  const table: SummaryTable = {
    title: `Standard training, three routers, eval n=${ctx.o.n}`,
    columns: [
      P("SA"),
      P(`RA ${ctx.s.attack}`),
      P(WORST),
      P("RA-E"),
      P("RA-R"),
      P("route flips (RA-R)"),
      N("usage balance (0-1)"),
      P("largest expert share"),
    ],
    rows: models.map((m) => ({
      label: MODELS[m].title,
      cells: [
        st(val(m, (e) => e.sa)),
        st(val(m, (e) => e.ra[ctx.s.attack])),
        st(val(m, (e) => e.worst)),
        st(val(m, (e) => e.moe?.raE)),
        st(val(m, (e) => e.moe?.raR)),
        st(val(m, (e) => e.moe?.routeFlipsRaR)),
        stat(ev[m].map((e) => (e?.moe ? usageBalance(e.moe.usage) : null))),
        stat(ev[m].map((e) => (e?.moe ? largestShare(e.moe.usage) : null))),
      ],
    })),
  };
  const cs: Comparison[] = [];
  const verdict: string[] = [];
  for (const m of ["standard", "standard-nolb"] as const) {
    const sa = compare(
      val(m, (e) => e.sa),
      val("standard-hard", (e) => e.sa),
    );
    const ra = compare(
      val(m, (e) => e.ra[ctx.s.attack]),
      val("standard-hard", (e) => e.ra[ctx.s.attack]),
    );
    const worst = compare(
      val(m, (e) => e.worst),
      val("standard-hard", (e) => e.worst),
    );
    cs.push(sa, ra, ...(worst.seeds > 0 ? [worst] : []));
    verdict.push(
      `${MODELS[m].title} vs hard router: ${describeComparison("SA", "trainable", sa)}; ${describeComparison(`RA ${ctx.s.attack}`, "trainable", ra)}${worst.seeds > 0 ? `; ${describeComparison(WORST, "trainable", worst)}` : ""}`,
    );
  }
  // Usage balance is not an accuracy: compared by sign only, seed by seed.
  const bal = (m: ModelName) => ev[m].map((e) => (e?.moe ? usageBalance(e.moe.usage) : null));
  const [withLb, without] = [bal("standard"), bal("standard-nolb")];
  const pairs = withLb.map((a, i) =>
    a === null || without[i] === null || without[i] === undefined ? null : a - (without[i] as number),
  );
  const ran = pairs.filter((d): d is number => d !== null);
  if (ran.length > 0)
    verdict.push(
      `load balancing: usage balance higher with it in ${ran.filter((d) => d > 0).length} of ${ran.length} seeds (mean change ${stat(pairs).mean?.toFixed(3)})`,
    );
  let status: ClaimStatus = "not run yet";
  if (cs.some((c) => c.seeds > 0)) {
    status = cs.every((c) => c.outcome === "higher")
      ? "holds"
      : cs.every((c) => c.seeds > 0 && c.higher === 0)
        ? "does not hold"
        : "mixed";
  }
  return {
    status,
    verdict,
    tables: [table],
    seedsComplete: seedsComplete(ctx, missing),
    missing,
    notes: [
      "the hard router trains without load balancing, as in the paper's code: with it, the router would learn through the loss's softmax",
    ],
  };
}

const BUILDERS = { 1: claim1, 2: claim2, 3: claim3, 4: claim4, 5: claim5, 6: claim6 } as const;

/** The `rmoe claims` command line that reruns one claim for the summary's seeds. */
function reproduceCommand(o: ClaimsOptions, row: ClaimRow): string {
  const argv = ["claims", "--out", o.out, "--rows", String(row), "--seeds", o.seeds.join(",")];
  if (o.quick) argv.push("--quick");
  if (o.n !== (o.quick ? DEFAULTS.quickN : DEFAULTS.n)) argv.push("--n", String(o.n));
  if (row === 2 && o.aaN !== (o.quick ? DEFAULTS.quickAaN : DEFAULTS.aaN)) argv.push("--aa-n", String(o.aaN));
  if (o.dataRoot !== undefined) argv.push("--data-root", o.dataRoot);
  return formatCommand(argv);
}

export function summarizeClaims(o: ClaimsOptions, s: ClaimsSettings = claimsSettings(o.quick)): ClaimsSummary {
  let recorded: Record<string, { command: string }> = {};
  const problems: string[] = [];
  try {
    recorded = readCommands(o.out);
  } catch (e) {
    problems.push((e as Error).message);
  }
  const ctx: Ctx = { o, s, inputs: new Inputs(o.out), stages: claimsStages(o, s), recorded };
  // A training whose every reader is done counts as run: results are kept without checkpoints.
  const stateList = stageStates(ctx.stages);
  const states = new Map(ctx.stages.map((st, i) => [st, stateList[i]] as const));
  const claims = o.rows.map((row) => {
    const body = BUILDERS[row](ctx);
    const notes = [...body.notes];
    const commands = ctx.stages
      .filter((st) => st.rows.includes(row))
      .map((st) => {
        const planned = stageCommand(st);
        const rec = recorded[relative(o.out, st.output)];
        // The data marker is per machine and not kept with the results: any finished stage
        // means the data was prepared where it ran.
        const ran = states.get(st) !== "to-run" || (st.kind === "data" && stateList.includes("done"));
        // The record says what made the file; a different plan now (another --n, say) is pointed out.
        if (ran && rec !== undefined && rec.command !== planned)
          notes.push(
            `${relative(o.out, st.output)} was made by \`${rec.command}\`, not by this plan's \`${planned}\`: delete it to rerun with the present settings`,
          );
        return { seed: st.seed, command: ran && rec !== undefined ? rec.command : planned, ran };
      });
    return {
      row,
      title: TITLES[row],
      paper: PAPER[row],
      criterion: CRITERIA[row],
      ...body,
      notes: [...notes, ...problems],
      reproduce: reproduceCommand(o, row),
      commands,
    };
  });
  return {
    schema: CLAIMS_SCHEMA,
    version: 1,
    createdAt: new Date().toISOString(),
    out: o.out,
    seeds: [...o.seeds],
    rows: [...o.rows],
    n: o.n,
    aaN: o.aaN,
    quick: o.quick,
    settings: s,
    claims,
  };
}

function cell(c: Stat | null, format: SummaryColumn["format"]): string {
  if (c === null || c.n === 0) return "not run yet";
  const f = (v: number) => (format === "percent" ? (100 * v).toFixed(1) : v.toFixed(2));
  const mean = f(c.mean as number);
  const std = c.std === null ? "" : ` ± ${f(c.std)}`;
  const per = c.perSeed.map((v) => (v === null ? "–" : f(v))).join(" / ");
  return `${mean}${std} (n=${c.n}) [${per}]`;
}

const esc = (t: string) => t.replaceAll("|", "\\|");

/** results-tables.md: one section per claim (table, verdict, reproducing commands). */
export function formatResultsTables(sum: ClaimsSummary): string {
  const lines: string[] = [
    "# Claims at CPU scale: measured tables",
    "",
    `Written by \`rmoe claims\` at ${sum.createdAt} from ${sum.out}; seeds ${sum.seeds.join(", ")}; preset \`${sum.settings.preset}\`${sum.quick ? " (--quick: a smoke run, not numbers)" : ""}.`,
    `Cells: mean ± sample std (n = seeds run) [per seed, in the order ${sum.seeds.join(" / ")}; – not run yet]. Accuracies in percent.`,
    "",
    "| claim | verdict | seeds complete |",
    "| --- | --- | --- |",
    ...sum.claims.map((c) => `| ${c.row}. ${esc(c.title)} | ${c.status} | ${c.seedsComplete.length} of ${sum.seeds.length} |`),
    "",
  ];
  for (const c of sum.claims) {
    const complete = `${c.seedsComplete.length} of ${sum.seeds.length} seed${sum.seeds.length === 1 ? "" : "s"} complete`;
    // One seed has no spread: the heading says so rather than letting a verdict look firmer than it is.
    const caveat = c.status !== "not run yet" && c.seedsComplete.length < 2 ? "; one seed, no spread: indicative only" : "";
    lines.push(`## Claim ${c.row}: ${c.title}`, "", `**Verdict: ${c.status}** (${complete}${caveat}).`, "");
    for (const v of c.verdict) lines.push(`- ${v}`);
    if (c.verdict.length > 0) lines.push("");
    lines.push(`Paper: ${c.paper}.`, "", `Criterion: ${c.criterion}.`, "");
    for (const t of c.tables) {
      lines.push(`**${t.title}**`, "");
      lines.push(`| model | ${t.columns.map((x) => esc(x.label)).join(" | ")} |`);
      lines.push(`| --- | ${t.columns.map(() => "---").join(" | ")} |`);
      for (const r of t.rows)
        lines.push(`| ${esc(r.label)} | ${r.cells.map((x, i) => cell(x, t.columns[i]?.format ?? "percent")).join(" | ")} |`);
      lines.push("");
    }
    if (c.missing.length > 0) {
      lines.push("Not run yet or unreadable:", "");
      for (const m of c.missing) lines.push(`- ${m}`);
      lines.push("");
    }
    for (const n of c.notes) lines.push(`Note: ${n}`, "");
    lines.push(`Reproduce this claim: \`${c.reproduce}\`. Its stages:`, "", "```sh");
    let seed: number | null | undefined;
    for (const k of c.commands) {
      if (k.seed !== seed) {
        lines.push(k.seed === null ? "# every seed" : `# seed ${k.seed}`);
        seed = k.seed;
      }
      lines.push(`${k.command}${k.ran ? "" : "   # not run yet"}`);
    }
    lines.push("```", "");
  }
  return `${lines.join("\n").trimEnd()}\n`;
}

/** Writes DIR/claims.json and DIR/results-tables.md atomically; returns their paths. */
export function writeClaimsSummary(sum: ClaimsSummary): { json: string; tables: string } {
  const json = join(sum.out, "claims.json");
  const tables = join(sum.out, "results-tables.md");
  writeFileAtomic(json, `${JSON.stringify(sum, null, 2)}\n`);
  writeFileAtomic(tables, formatResultsTables(sum));
  return { json, tables };
}
