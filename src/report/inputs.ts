// The inputs of `rmoe report` (docs/REPORT.md): run directories (config.json, metrics.jsonl),
// `rmoe eval --json` reports, and two schemas defined here for the commands that come after
// it, `rmoe sweep` (SweepFile) and the certification commands (CertifyFile). Each reader
// checks every field it uses and names the file and the field when one is wrong; fields it
// does not use are ignored, so that newer writers can add fields (confidence intervals, say)
// without breaking older reports.
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { JsonReader, type JsonRecord, type MachineInfo, ReportInputError } from "./json-reader.js";

export { type MachineInfo, ReportInputError } from "./json-reader.js";

// ---------------------------------------------------------------------------------------------
// Model kinds: the colour and the legend name of a model everywhere in the report.

/** The kinds of model a report tells apart; the training methods plus the post-hoc dual model. */
export const MODEL_KINDS = ["standard", "pgd-at", "trades", "rt-er", "advmoe", "dual", "jtdmoe", "other"] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** How a kind is written in legends and tables. */
export const KIND_NAMES: Record<ModelKind, string> = {
  standard: "standard",
  "pgd-at": "PGD-AT",
  trades: "TRADES",
  "rt-er": "RT-ER",
  advmoe: "AdvMoE",
  dual: "post-hoc dual",
  jtdmoe: "JTDMoE",
  other: "other",
};

/**
 * A kind written as free text ('jtdmoe', or 'marker' for a model `rmoe sweep --marker` placed):
 * a known kind is kept, else the label decides when it names one ('RT-ER alone' -> 'rt-er'),
 * else 'other'.
 */
export function kindOfText(kind: string, label: string): ModelKind {
  const k = kind.toLowerCase();
  if (MODEL_KINDS.includes(k as ModelKind)) return k as ModelKind;
  const l = label.toLowerCase().replaceAll("_", "-");
  // Longer, more specific names first ('jtdmoe' before 'dual', 'advmoe' before 'moe').
  const order: ModelKind[] = ["jtdmoe", "advmoe", "rt-er", "pgd-at", "trades", "standard", "dual"];
  for (const c of order) if (l.includes(c) || l.includes(KIND_NAMES[c].toLowerCase())) return c;
  if (l.includes("rter")) return "rt-er";
  return "other";
}

/** A training method's kind ('rt-er' -> 'rt-er'); anything unknown is 'other'. */
export function kindOfMethod(method: string | null | undefined): ModelKind {
  return MODEL_KINDS.includes(method as ModelKind) && method !== "dual" ? (method as ModelKind) : "other";
}

// ---------------------------------------------------------------------------------------------
// Sweep files (`rmoe sweep` writes them).

export const SWEEP_SCHEMA = "robust-moe.sweep";
export const SWEEP_VERSION = 1;

/** Certified accuracy at one radius. */
export interface CertifiedAt {
  eps: number;
  accuracy: number;
}

/** The dual model (1 - alpha) F_S + alpha F_R at one alpha. */
export interface SweepPoint {
  alpha: number;
  /** Clean accuracy. */
  sa: number;
  /** Robust accuracy per attack (the attack's canonical name, e.g. 'pgd50', 'aa'). */
  ra: Record<string, number>;
  /** Per sample robust under every attack at once; null when not given. */
  worst: number | null;
  /** Certified accuracy at the chosen radii, in increasing eps; null when not certified. */
  certified: CertifiedAt[] | null;
}

/** A model placed on the trade-off axes beside the sweep (the standard and robust members, JTDMoE...). */
export interface SweepMarker {
  label: string;
  /** The file's `kind` when it names a ModelKind, else decided from the label (kindOfText). */
  kind: ModelKind;
  sa: number;
  ra: Record<string, number>;
  worst: number | null;
  /** The model's own alpha (JTDMoE), or null. */
  alpha: number | null;
}

export interface SweepFile {
  schema: typeof SWEEP_SCHEMA;
  version: typeof SWEEP_VERSION;
  threatModel: { norm: string; eps: number } | null;
  /** Checkpoints of the members and the data, when recorded. */
  source: { standard: string | null; robust: string | null; dataset: string | null; split: string | null } | null;
  /** Images evaluated per point, when recorded. */
  n: number | null;
  seed: number | null;
  /** 'logits' or 'probs' (DualModel's mixing space), when recorded. */
  space: string | null;
  /** The certificate behind `points[].certified` ('randomized-smoothing', 'ibp'...) and its norm. */
  certify: { method: string; norm: string } | null;
  command: string | null;
  machine: MachineInfo | null;
  /** In increasing alpha. */
  points: SweepPoint[];
  markers: SweepMarker[];
}

function checkVersion(r: JsonReader, o: JsonRecord, schema: string, version: number, what: string): void {
  const s = o.schema;
  if (s !== schema) r.fail("schema", `must be ${JSON.stringify(schema)} (${what}), got ${JSON.stringify(s) ?? "nothing"}`);
  const v = r.number(o, "version", "", { integer: true, min: 1 });
  if (v !== version) r.fail("version", `is ${v}; this rmoe report reads version ${version}`);
}

/** '8/255' or '0.25' (how radii are written as object keys) as a number, or null. */
export function parseEpsText(text: string): number | null {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?:\/\s*([0-9]*\.?[0-9]+)\s*)?$/i.exec(text);
  if (m === null) return null;
  const v = Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2]));
  return Number.isFinite(v) && v >= 0 ? v : null;
}

/** `certified`: [{eps, accuracy}], or an object from radius ('8/255', '0.5') to accuracy. */
function readCertified(r: JsonReader, o: JsonRecord, path: string): CertifiedAt[] | null {
  if (o.certified === undefined || o.certified === null) return null;
  const field = path === "" ? "certified" : `${path}.certified`;
  let out: CertifiedAt[];
  if (Array.isArray(o.certified)) {
    out = r.objects(o, "certified", path).map(({ value, path: p }) => ({
      eps: r.number(value, "eps", p, { min: 0 }),
      accuracy: r.fraction(value, "accuracy", p),
    }));
  } else {
    const m = r.fractionMap(o, "certified", path);
    out = Object.entries(m).map(([k, accuracy]) => {
      const eps = parseEpsText(k);
      if (eps === null) r.fail(`${field}.${k}`, "must be keyed by a radius such as '0.5' or '8/255'");
      return { eps, accuracy };
    });
  }
  const seen = new Set<number>();
  for (const c of out) {
    if (seen.has(c.eps)) r.fail(field, `repeats the radius ${c.eps}`);
    seen.add(c.eps);
  }
  return out.sort((a, b) => a.eps - b.eps);
}

function readRa(r: JsonReader, o: JsonRecord, path: string): Record<string, number> {
  const ra = r.fractionMap(o, "ra", path);
  if (Object.keys(ra).length === 0) r.fail(path === "" ? "ra" : `${path}.ra`, "must name at least one attack");
  return ra;
}

/** Checks a parsed sweep file (see SweepFile and docs/REPORT.md). */
export function parseSweep(value: unknown, file: string): SweepFile {
  const r = new JsonReader(file);
  const o = r.root(value);
  checkVersion(r, o, SWEEP_SCHEMA, SWEEP_VERSION, "a sweep file, written by rmoe sweep");
  if (o.kind !== undefined && o.kind !== "sweep") r.fail("kind", `must be "sweep" when given, got ${JSON.stringify(o.kind)}`);
  const points = r.objects(o, "points", "").map(({ value: p, path }) => ({
    alpha: r.number(p, "alpha", path, { min: 0, max: 1 }),
    sa: r.fraction(p, "sa", path),
    ra: readRa(r, p, path),
    worst: r.optionalFraction(p, "worst", path),
    certified: readCertified(r, p, path),
  }));
  if (points.length === 0) r.fail("points", "must hold at least one point");
  const seen = new Map<number, number>();
  points.forEach((p, i) => {
    const j = seen.get(p.alpha);
    if (j !== undefined) r.fail(`points[${i}].alpha`, `repeats alpha ${p.alpha} of points[${j}]`);
    seen.set(p.alpha, i);
  });
  const markers =
    o.markers === undefined || o.markers === null
      ? []
      : r.objects(o, "markers", "").map(({ value: m, path }) => ({
          label: r.string(m, "label", path),
          kind: kindOfText(r.string(m, "kind", path), r.string(m, "label", path)),
          sa: r.fraction(m, "sa", path),
          ra: readRa(r, m, path),
          worst: r.optionalFraction(m, "worst", path),
          alpha: r.optionalNumber(m, "alpha", path, { min: 0, max: 1 }),
        }));
  const tm = r.optionalObject(o, "threatModel", "");
  const source = r.optionalObject(o, "source", "");
  const cert = r.optionalObject(o, "certify", "");
  return {
    schema: SWEEP_SCHEMA,
    version: SWEEP_VERSION,
    threatModel:
      tm === null ? null : { norm: r.string(tm, "norm", "threatModel"), eps: r.number(tm, "eps", "threatModel", { min: 0 }) },
    source:
      source === null
        ? null
        : {
            standard: r.optionalString(source, "standard", "source"),
            robust: r.optionalString(source, "robust", "source"),
            dataset: r.optionalString(source, "dataset", "source"),
            split: r.optionalString(source, "split", "source"),
          },
    n: r.optionalNumber(o, "n", "", { integer: true, min: 1 }) ?? pointN(r, o),
    seed: r.optionalNumber(o, "seed", ""),
    space: r.optionalString(o, "space", ""),
    certify: cert === null ? null : { method: r.string(cert, "method", "certify"), norm: r.string(cert, "norm", "certify") },
    command: r.command(o, "command", ""),
    machine: r.machine(o, "machine", ""),
    points: points.sort((a, b) => a.alpha - b.alpha),
    markers,
  };
}

/** The images per point when only the points record it (`points[].n`, all equal). */
function pointN(r: JsonReader, o: JsonRecord): number | null {
  const ns = r.objects(o, "points", "").map(({ value, path }) => r.optionalNumber(value, "n", path, { integer: true, min: 1 }));
  const first = ns[0] ?? null;
  return first !== null && ns.every((n) => n === first) ? first : null;
}

// ---------------------------------------------------------------------------------------------
// Certificate files.

export const CERTIFY_SCHEMA = "robust-moe.certify";
export const CERTIFY_VERSION = 1;

/** Certified accuracy against the radius for one model. */
export interface CertifyCurve {
  /** The legend name ('RT-ER MoE', 'dual alpha=0.5'). */
  model: string;
  kind: ModelKind;
  checkpoint: string | null;
  /** In increasing eps; certifiedAccuracy is the fraction of samples certified correct at radius eps. */
  points: { eps: number; certifiedAccuracy: number }[];
}

export interface CertifyFile {
  schema: typeof CERTIFY_SCHEMA;
  version: typeof CERTIFY_VERSION;
  /** The certificate: 'randomized-smoothing', 'ibp', 'lipschitz', ... */
  method: string;
  norm: "linf" | "l2";
  data: { dataset: string | null; split: string | null; n: number | null } | null;
  /** The method's settings (sigma, samples, confidence...), shown as given. */
  settings: MachineInfo | null;
  command: string | null;
  machine: MachineInfo | null;
  curves: CertifyCurve[];
}

/** Checks a parsed certificate file (see CertifyFile and docs/REPORT.md). */
export function parseCertify(value: unknown, file: string): CertifyFile {
  const r = new JsonReader(file);
  const o = r.root(value);
  checkVersion(r, o, CERTIFY_SCHEMA, CERTIFY_VERSION, "a certificate file");
  const curves = r.objects(o, "curves", "").map(({ value: c, path }) => {
    const points = r.objects(c, "points", path).map(({ value: p, path: pp }) => ({
      eps: r.number(p, "eps", pp, { min: 0 }),
      certifiedAccuracy: r.fraction(p, "certifiedAccuracy", pp),
    }));
    if (points.length === 0) r.fail(`${path}.points`, "must hold at least one point");
    const seen = new Set<number>();
    points.forEach((p, i) => {
      if (seen.has(p.eps)) r.fail(`${path}.points[${i}].eps`, `repeats eps ${p.eps}`);
      seen.add(p.eps);
    });
    return {
      model: r.string(c, "model", path),
      kind: r.oneOf(c, "kind", path, MODEL_KINDS),
      checkpoint: r.optionalString(c, "checkpoint", path),
      points: points.sort((a, b) => a.eps - b.eps),
    };
  });
  if (curves.length === 0) r.fail("curves", "must hold at least one curve");
  const names = new Set<string>();
  curves.forEach((c, i) => {
    if (names.has(c.model)) r.fail(`curves[${i}].model`, `repeats ${JSON.stringify(c.model)}: each curve needs its own name`);
    names.add(c.model);
  });
  const data = r.optionalObject(o, "data", "");
  return {
    schema: CERTIFY_SCHEMA,
    version: CERTIFY_VERSION,
    method: r.string(o, "method", ""),
    norm: r.oneOf(o, "norm", "", ["linf", "l2"] as const),
    data:
      data === null
        ? null
        : {
            dataset: r.optionalString(data, "dataset", "data"),
            split: r.optionalString(data, "split", "data"),
            n: r.optionalNumber(data, "n", "data", { integer: true, min: 1 }),
          },
    settings: r.machine(o, "settings", ""),
    command: r.command(o, "command", ""),
    machine: r.machine(o, "machine", ""),
    curves,
  };
}

// ---------------------------------------------------------------------------------------------
// Evaluation reports (`rmoe eval --json`, docs/EVAL.md), read defensively: only the fields the
// report shows are required, everything else is optional or ignored.

export const EVAL_SCHEMA = "robust-moe.robustness-report";

/** A confidence interval on an accuracy (eval reports from version 2 carry them). */
export interface Interval {
  lower: number;
  upper: number;
}

/** RA-E or RA-R of one MoE. */
export interface MoEAttackNumbers {
  attack: string | null;
  /** The frozen-router (RA-E) or frozen-expert (RA-R) model's accuracy. */
  accuracy: number;
  interval: Interval | null;
  /** The real MoE's accuracy on the same perturbation, when reported. */
  moeAccuracy: number | null;
  routeFlipRate: number | null;
}

/** One MoE of an evaluated model: the model itself, or a dual model's member. */
export interface EvalMoE {
  member: string;
  numExperts: number;
  cleanAccuracy: number | null;
  /** Its interval (version 2 reports: `clean.interval`). */
  cleanInterval: Interval | null;
  /** Top-1 routes on clean inputs. */
  usage: number[];
  underAttack: { spec: string; routeFlipRate: number }[];
  expertAttack: MoEAttackNumbers | null;
  routerAttack: MoEAttackNumbers | null;
}

/** The parts of an evaluation report the HTML report shows. */
export interface EvalInput {
  file: string;
  /** The legend name (the file name without .json, or LABEL from LABEL=FILE). */
  label: string;
  kind: ModelKind;
  modelKind: "plain" | "moe" | "dual";
  modelType: string | null;
  alpha: number | null;
  checkpoint: string | null;
  dataset: string | null;
  split: string | null;
  norm: string | null;
  eps: number | null;
  seed: number | null;
  version: number;
  n: number;
  /** Class names, index = label, when the report lists them. */
  classes: string[] | null;
  /** The level of the report's confidence intervals (0.95), when it has any. */
  confidenceLevel: number | null;
  sa: number;
  saInterval: Interval | null;
  attacks: { spec: string; attack: string | null; accuracy: number; interval: Interval | null }[];
  worstCase: number | null;
  worstCaseInterval: Interval | null;
  moe: EvalMoE[];
  command: string | null;
  machine: MachineInfo | null;
}

/** An optional `interval: {lower, upper}` beside an accuracy. */
function readInterval(r: JsonReader, o: JsonRecord, key: string, path: string): Interval | null {
  const i = r.optionalObject(o, key, path);
  if (i === null) return null;
  const p = path === "" ? key : `${path}.${key}`;
  const lower = r.fraction(i, "lower", p);
  const upper = r.fraction(i, "upper", p);
  if (upper < lower) r.fail(`${p}.upper`, `is below lower (${upper} < ${lower})`);
  return { lower, upper };
}

function readMoEAttack(r: JsonReader, o: JsonRecord, key: string, path: string): MoEAttackNumbers | null {
  const a = r.optionalObject(o, key, path);
  if (a === null) return null;
  const p = `${path}.${key}`;
  return {
    attack: r.optionalString(a, "attack", p),
    accuracy: r.fraction(a, "accuracy", p),
    interval: readInterval(r, a, "interval", p),
    moeAccuracy: r.optionalFraction(a, "moeAccuracy", p),
    routeFlipRate: r.optionalFraction(a, "routeFlipRate", p),
  };
}

function readClasses(r: JsonReader, o: JsonRecord): string[] | null {
  if (o.classes === undefined || o.classes === null) return null;
  const arr = r.array(o, "classes", "");
  arr.forEach((c, i) => {
    if (typeof c !== "string") r.fail(`classes[${i}]`, `must be a string, got ${JSON.stringify(c)}`);
  });
  return arr as string[];
}

/** Checks a parsed `rmoe eval --json` report; label and kind are decided by the caller. */
export function parseEvalReport(value: unknown, file: string, label: string, kind: ModelKind): EvalInput {
  const r = new JsonReader(file);
  const o = r.root(value);
  if (o.schema !== EVAL_SCHEMA)
    r.fail(
      "schema",
      `must be ${JSON.stringify(EVAL_SCHEMA)} (an rmoe eval --json report), got ${JSON.stringify(o.schema) ?? "nothing"}`,
    );
  const version = r.number(o, "version", "", { integer: true, min: 1 });
  const model = r.object(o, "model", "");
  const source = r.optionalObject(o, "source", "");
  const tm = r.optionalObject(o, "threatModel", "");
  const clean = r.object(o, "clean", "");
  const worst = r.optionalObject(o, "worstCase", "");
  const confidence = r.optionalObject(o, "confidence", "");
  const moe =
    o.moe === undefined || o.moe === null
      ? []
      : r.objects(o, "moe", "").map(({ value: m, path }) => {
          const usage = r.object(m, "usage", path);
          const clean = r.optionalObject(m, "clean", path);
          const numExperts = r.number(m, "numExperts", path, { integer: true, min: 1 });
          const counts = r.counts(usage, "counts", `${path}.usage`);
          if (counts.length !== numExperts)
            r.fail(`${path}.usage.counts`, `has ${counts.length} entries for ${numExperts} experts (numExperts)`);
          return {
            member: r.string(m, "member", path),
            numExperts,
            cleanAccuracy: r.optionalFraction(m, "cleanAccuracy", path),
            cleanInterval: clean === null ? null : readInterval(r, clean, "interval", `${path}.clean`),
            usage: counts,
            underAttack:
              m.underAttack === undefined || m.underAttack === null
                ? []
                : r.objects(m, "underAttack", path).map(({ value: u, path: up }) => ({
                    spec: r.string(u, "spec", up),
                    routeFlipRate: r.fraction(u, "routeFlipRate", up),
                  })),
            expertAttack: readMoEAttack(r, m, "expertAttack", path),
            routerAttack: readMoEAttack(r, m, "routerAttack", path),
          };
        });
  return {
    file,
    label,
    kind,
    modelKind: r.oneOf(model, "kind", "model", ["plain", "moe", "dual"] as const),
    modelType: r.optionalString(model, "type", "model"),
    alpha: r.optionalNumber(model, "alpha", "model", { min: 0, max: 1 }),
    checkpoint: source === null ? null : r.optionalString(source, "checkpoint", "source"),
    dataset: source === null ? null : r.optionalString(source, "dataset", "source"),
    split: source === null ? null : r.optionalString(source, "split", "source"),
    norm: tm === null ? null : r.optionalString(tm, "norm", "threatModel"),
    eps: tm === null ? null : r.optionalNumber(tm, "eps", "threatModel", { min: 0 }),
    seed: r.optionalNumber(o, "seed", ""),
    version,
    n: r.number(o, "n", "", { integer: true, min: 1 }),
    classes: readClasses(r, o),
    confidenceLevel: confidence === null ? null : r.optionalNumber(confidence, "level", "confidence", { min: 0, max: 1 }),
    sa: r.fraction(clean, "accuracy", "clean"),
    saInterval: readInterval(r, clean, "interval", "clean"),
    attacks:
      o.attacks === undefined || o.attacks === null
        ? []
        : r.objects(o, "attacks", "").map(({ value: a, path }) => ({
            spec: r.string(a, "spec", path),
            attack: r.optionalString(a, "attack", path),
            accuracy: r.fraction(a, "accuracy", path),
            interval: readInterval(r, a, "interval", path),
          })),
    worstCase: worst === null ? null : r.fraction(worst, "accuracy", "worstCase"),
    worstCaseInterval: worst === null ? null : readInterval(r, worst, "interval", "worstCase"),
    moe,
    command: r.command(o, "command", ""),
    machine: r.machine(o, "machine", ""),
  };
}

// ---------------------------------------------------------------------------------------------
// Run directories (docs/TRAINING.md): config.json and metrics.jsonl.

/** One `type: "step"` line: the loss terms and training accuracies at that step. */
export interface StepPoint {
  step: number;
  epoch: number;
  /** Every loss term ('ce', 'kl', 'loss'; 'robust.ce' for multi-level methods). */
  terms: Record<string, number>;
  /** Training accuracy per level ('acc', or 'robust.acc' and 'standard.acc'). */
  acc: Record<string, number>;
}

/** One `type: "epoch"` line: validation SA and RA after that epoch. */
export interface EpochPoint {
  /** Zero-based, as in metrics.jsonl; the report's axes show epoch + 1 (epochs completed). */
  epoch: number;
  step: number;
  valClean: number;
  valRobust: number;
  valN: number | null;
  valAttack: string | null;
  trainLoss: number | null;
  trainAcc: number | null;
}

export interface RunInput {
  dir: string;
  label: string;
  method: string;
  kind: ModelKind;
  /** One line: method, dataset, model, epochs, batch. */
  summary: string;
  description: string | null;
  createdAt: string | null;
  version: string | null;
  command: string | null;
  machine: MachineInfo | null;
  /** Configured epochs (the run may have stopped earlier). */
  epochsPlanned: number | null;
  steps: StepPoint[];
  epochs: EpochPoint[];
}

/** Step-line fields that are bookkeeping, not loss terms. */
const NOT_TERMS = new Set(["type", "step", "epoch", "imagesPerSecond", "rssMB", "liveTensors"]);

function isAcc(key: string): boolean {
  return key === "acc" || key.endsWith(".acc");
}

function isLr(key: string): boolean {
  return key === "lr" || key.endsWith(".lr");
}

function parseStepLine(r: JsonReader, o: JsonRecord, path: string): StepPoint {
  const terms: Record<string, number> = {};
  const acc: Record<string, number> = {};
  const multiLevel = Object.keys(o).some((k) => k.includes(".") && !NOT_TERMS.has(k));
  for (const [k, v] of Object.entries(o)) {
    if (NOT_TERMS.has(k) || isLr(k)) continue;
    // Multi-level methods repeat their last level's loss and acc unprefixed (the headline of
    // the progress line); plotting both would draw the same curve twice.
    if (multiLevel && (k === "loss" || k === "acc")) continue;
    if (v === null) continue; // JSON.stringify writes NaN as null
    if (typeof v !== "number") r.fail(`${path}.${k}`, `must be a number, got ${JSON.stringify(v)}`);
    if (isAcc(k)) acc[k] = r.fraction(o, k, path);
    else terms[k] = v;
  }
  return {
    step: r.number(o, "step", path, { integer: true, min: 0 }),
    epoch: r.number(o, "epoch", path, { integer: true, min: 0 }),
    terms,
    acc,
  };
}

function parseEpochLine(r: JsonReader, o: JsonRecord, path: string): EpochPoint {
  return {
    epoch: r.number(o, "epoch", path, { integer: true, min: 0 }),
    step: r.number(o, "step", path, { integer: true, min: 0 }),
    valClean: r.fraction(o, "valClean", path),
    valRobust: r.fraction(o, "valRobust", path),
    valN: r.optionalNumber(o, "valN", path, { integer: true, min: 0 }),
    valAttack: r.optionalString(o, "valAttack", path),
    trainLoss: r.optionalNumber(o, "trainLoss", path),
    trainAcc: r.optionalFraction(o, "trainAcc", path),
  };
}

/** Parses metrics.jsonl text; fields are named as 'line N.field'. */
export function parseMetrics(text: string, file: string): { steps: StepPoint[]; epochs: EpochPoint[] } {
  const r = new JsonReader(file);
  const steps: StepPoint[] = [];
  const epochs: EpochPoint[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const path = `line ${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      // A run killed mid-write can leave a cut last line (resume drops it); anywhere else it is corruption.
      if (lines.slice(i + 1).every((l) => l.trim() === "")) return;
      r.fail(path, `is not valid JSON (${(e as Error).message})`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) r.fail(path, "must be a JSON object");
    const o = v as JsonRecord;
    const type = o.type;
    if (type === "step") steps.push(parseStepLine(r, o, path));
    else if (type === "epoch") epochs.push(parseEpochLine(r, o, path));
    // Other line types (a newer trainer's) are not shown.
  });
  return { steps, epochs };
}

function readJsonFile(file: string): unknown {
  if (!existsSync(file)) throw new ReportInputError(file, "", "no such file");
  if (statSync(file).isDirectory()) throw new ReportInputError(file, "", "is a directory, not a JSON file");
  const text = readFileSync(file, "utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ReportInputError(file, "", `is not valid JSON (${(e as Error).message})`);
  }
}

export function readSweepFile(file: string): SweepFile {
  return parseSweep(readJsonFile(file), file);
}

export function readCertifyFile(file: string): CertifyFile {
  return parseCertify(readJsonFile(file), file);
}

function summarizeConfig(r: JsonReader, c: JsonRecord): { summary: string; epochs: number | null } {
  const parts: string[] = [];
  const data = r.optionalObject(c, "data", "config");
  const model = r.optionalObject(c, "model", "config");
  if (data !== null && typeof data.dataset === "string") {
    const size = typeof data.trainSize === "number" && data.trainSize > 0 ? ` (${data.trainSize} images)` : "";
    parts.push(`${data.dataset}${size}`);
  }
  if (model !== null && typeof model.experts === "number") {
    const expert = typeof model.expert === "string" ? ` ${model.expert}` : "";
    const width = typeof model.width === "number" ? ` width ${model.width}` : "";
    parts.push(`${model.experts} experts (${expert.trim()}${width})`.replace("( ", "("));
  }
  const epochs = typeof c.epochs === "number" ? c.epochs : null;
  if (epochs !== null) parts.push(`${epochs} epoch${epochs === 1 ? "" : "s"}`);
  if (typeof c.batchSize === "number") parts.push(`batch ${c.batchSize}`);
  return { summary: parts.join(", "), epochs };
}

/** Reads a run directory's config.json and metrics.jsonl. */
export function readRunDir(dir: string, label: string): RunInput {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new ReportInputError(dir, "", "no such run directory");
  if (!statSync(abs).isDirectory())
    throw new ReportInputError(
      dir,
      "",
      "is not a directory (run directories are given first; files go after --eval, --sweep...)",
    );
  const configFile = join(dir, "config.json");
  if (!existsSync(configFile)) throw new ReportInputError(dir, "", "not a run directory (no config.json)");
  const r = new JsonReader(configFile);
  const o = r.root(readJsonFile(configFile));
  const config = r.object(o, "config", "");
  const method = r.string(config, "method", "config");
  const { summary, epochs } = summarizeConfig(r, config);
  const metricsFile = join(dir, "metrics.jsonl");
  const metrics = existsSync(metricsFile)
    ? parseMetrics(readFileSync(metricsFile, "utf8"), metricsFile)
    : { steps: [], epochs: [] };
  return {
    dir,
    label,
    method,
    kind: kindOfMethod(method),
    summary: `${method}${summary === "" ? "" : `, ${summary}`}`,
    description: r.optionalString(config, "description", "config"),
    createdAt: r.optionalString(o, "createdAt", ""),
    version: r.optionalString(o, "version", ""),
    command: r.command(o, "command", ""),
    machine: r.machine(o, "machine", ""),
    epochsPlanned: epochs,
    steps: metrics.steps,
    epochs: metrics.epochs,
  };
}

/**
 * An eval report's model kind: a dual model is 'dual' unless it was trained as a whole
 * (JTDMoE); otherwise the training method of its checkpoint. The method comes from the
 * checkpoint's training metadata (read by the caller, which may not have the file), else from
 * a run directory that holds the checkpoint, else from the label ('rt-er-eval' -> 'rt-er').
 */
export function kindOfEval(
  modelKind: "plain" | "moe" | "dual",
  checkpointMethod: string | null,
  checkpoint: string | null,
  runs: readonly RunInput[],
  label: string,
): ModelKind {
  let method = checkpointMethod;
  if (method === null && checkpoint !== null) {
    const dir = resolve(dirname(checkpoint));
    method = runs.find((r) => resolve(r.dir) === dir)?.method ?? null;
  }
  if (method === null) {
    const k = kindOfText("", label);
    method = k === "other" ? null : k;
  }
  if (modelKind === "dual") return method === "jtdmoe" ? "jtdmoe" : "dual";
  return kindOfMethod(method);
}

/** Reads an eval report; the kind is decided with kindOfEval (checkpointMethod from the checkpoint, when readable). */
export function readEvalFile(
  file: string,
  label: string,
  runs: readonly RunInput[],
  checkpointMethod: (checkpoint: string) => string | null,
): EvalInput {
  const parsed = parseEvalReport(readJsonFile(file), file, label, "other");
  const method = parsed.checkpoint === null ? null : checkpointMethod(parsed.checkpoint);
  return { ...parsed, kind: kindOfEval(parsed.modelKind, method, parsed.checkpoint, runs, label) };
}

/** The default legend name of a file: its name without the extension ('runs/dual-0.3.json' -> 'dual-0.3'). */
export function defaultLabel(path: string): string {
  const base = basename(path.replace(/[/\\]+$/, ""));
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}
