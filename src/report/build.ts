// `rmoe report`: reads the inputs (inputs.ts, gallery.ts), assembles every number the page
// shows into one ReportJson (written as report.json, so each number on the page can be
// checked against a file), renders the plots (charts.ts) and the page (html.ts).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { readSafetensorsHeader } from "../io/safetensors.js";
import { writeFileAtomic } from "../train/run-dir.js";
import {
  accuracySpec,
  type BarRow,
  type CurveRow,
  certifiedAlphaSpec,
  certifySpec,
  groupedBarsSpec,
  KIND_COLORS,
  lossSpec,
  MEASURE_COLORS,
  renderSvg,
  type TradeoffRow,
  tradeoffSpecs,
  usageSpec,
} from "./charts.js";
import { type GalleryInput, type GalleryItem, readGallery } from "./gallery.js";
import { type Figure, renderPage, type Section } from "./html.js";
import {
  type CertifyFile,
  defaultLabel,
  type EvalInput,
  type EvalMoE,
  type Interval,
  KIND_NAMES,
  kindOfMethod,
  type ModelKind,
  type RunInput,
  readCertifyFile,
  readEvalFile,
  readRunDir,
  readSweepFile,
  type SweepFile,
} from "./inputs.js";
import { formatCommand, formatMachine, type MachineInfo } from "./json-reader.js";

export const REPORT_JSON_SCHEMA = "robust-moe.report";
/** 2: `certified` is a list of certificate files (was one file or null). */
export const REPORT_JSON_VERSION = 2;

/** A file given on the command line, with an optional legend name (LABEL=PATH). */
export interface LabelledPath {
  path: string;
  label?: string;
}

export interface ReportOptions {
  runs?: readonly LabelledPath[];
  evals?: readonly LabelledPath[];
  sweep?: string | null;
  /** Certificate files (rmoe certify --out); files of the same method and norm share one plot. */
  certify?: string | readonly string[] | null;
  /** `rmoe attack --out` files for the gallery. */
  adversarial?: readonly LabelledPath[];
  /** Images shown per attack file (default 8). */
  galleryLimit?: number;
  title?: string;
  /** The command line that made the report, recorded in report.json. */
  command?: readonly string[];
  /** The creation time written into the report (default now). */
  now?: Date;
}

export type SectionId = "training" | "vulnerability" | "tradeoff" | "certified" | "routing" | "gallery";

export const SECTION_TITLES: Record<SectionId, string> = {
  training: "Training curves",
  vulnerability: "Which part of the MoE is vulnerable: RA-E against RA-R",
  tradeoff: "The alpha trade-off of the dual model",
  certified: "Certified accuracy",
  routing: "Expert usage and route flips",
  gallery: "Adversarial examples",
};

/** Where numbers came from: a file, the command that wrote it and the machine it ran on. */
export interface SourceEntry {
  /** 'S1', 'S2', ...: what the number table's source column refers to. */
  id: string;
  kind: "run" | "eval" | "sweep" | "certify" | "adversarial";
  label: string;
  path: string;
  /** The recorded command line, or null when the file does not record one. */
  command: string | null;
  /** The settings recorded in the file, when there is no command (an eval report's). */
  settings: string | null;
  machine: string | null;
  machineInfo: MachineInfo | null;
}

/** One number of the page. `value` is the number as read (fractions as fractions); `display` as shown. */
export interface NumberEntry {
  section: SectionId;
  subject: string;
  quantity: string;
  value: number;
  display: string;
  source: string;
}

export interface TrainingSeries {
  run: string;
  kind: ModelKind;
  source: string;
  summary: string;
  /** What the plots' x axis is: 'epoch' (epochs completed) or 'step'. */
  xAxis: "epoch" | "step";
  steps: RunInput["steps"];
  epochs: RunInput["epochs"];
}

export interface VulnerabilityEntry {
  model: string;
  member: string;
  kind: ModelKind;
  source: string;
  cleanAccuracy: number | null;
  cleanInterval: Interval | null;
  raE: number | null;
  raEInterval: Interval | null;
  raEMoe: number | null;
  raR: number | null;
  raRInterval: Interval | null;
  raRMoe: number | null;
}

export interface ModelEntry {
  model: string;
  kind: ModelKind;
  source: string;
  modelKind: EvalInput["modelKind"];
  alpha: number | null;
  n: number;
  sa: number;
  saInterval: Interval | null;
  attacks: EvalInput["attacks"];
  worstCase: number | null;
}

export interface RoutingEntry {
  model: string;
  member: string;
  kind: ModelKind;
  source: string;
  usage: number[];
  usageFraction: number[];
  /** Route-flip rate per whole-model attack, then 'RA-E' and 'RA-R' when they ran. */
  flips: { attack: string; rate: number }[];
}

export interface GalleryEntry {
  label: string;
  source: string;
  attack: string;
  attackName: string | null;
  eps: number | null;
  epsText: string | null;
  norm: string | null;
  n: number;
  cleanAccuracy: number | null;
  robustAccuracy: number | null;
  classes: string[] | null;
  routes: GalleryInput["routes"];
  routeNote: string | null;
  perturbationScale: GalleryInput["perturbationScale"];
  items: Omit<GalleryItem, "clean" | "adv" | "perturbation">[];
}

/** report.json: every number the page shows, and where it came from. */
export interface ReportJson {
  schema: typeof REPORT_JSON_SCHEMA;
  version: typeof REPORT_JSON_VERSION;
  title: string;
  createdAt: string;
  generator: string;
  command: string | null;
  /** The sections shown, in page order. */
  sections: SectionId[];
  /** The sections not shown, and why. */
  missing: { section: SectionId; reason: string }[];
  sources: SourceEntry[];
  training: TrainingSeries[];
  models: ModelEntry[];
  vulnerability: VulnerabilityEntry[];
  tradeoff: SweepFile | null;
  /** Every certificate file, in the order given. */
  certified: CertifyFile[];
  routing: RoutingEntry[];
  gallery: GalleryEntry[];
  numbers: NumberEntry[];
}

export interface ReportResult {
  json: ReportJson;
  html: string;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting of numbers (the page and the `display` of report.json agree).

export function pct(v: number, digits = 2): string {
  return `${(100 * v).toFixed(digits)}%`;
}

function sig(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

/** A radius: '8/255' when it is a whole number of 255ths, else the number. */
export function epsText(eps: number): string {
  const steps = eps * 255;
  const whole = Math.round(steps);
  if (whole > 0 && eps < 1 && Math.abs(steps - whole) < 1e-6) return `${whole}/255`;
  return sig(eps);
}

function intervalText(i: Interval | null): string {
  return i === null ? "" : ` [${pct(i.lower, 1)}, ${pct(i.upper, 1)}]`;
}

/** Labels made unique: a repeated one gets ' (2)', ' (3)'. */
function uniqueLabels(labels: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return labels.map((l) => {
    const k = (seen.get(l) ?? 0) + 1;
    seen.set(l, k);
    return k === 1 ? l : `${l} (${k})`;
  });
}

/** The training method recorded in a checkpoint's metadata (Trainer writes 'robust-moe.train'), or null. */
function checkpointMethod(checkpoint: string, evalFile: string): string | null {
  // The eval report holds the path as given to rmoe eval: relative to where it ran, which is
  // usually where the report runs too; else try beside the eval file.
  for (const p of [checkpoint, join(dirname(evalFile), checkpoint)]) {
    if (!existsSync(p)) continue;
    try {
      const raw = readSafetensorsHeader(p).metadata["robust-moe.train"];
      if (raw === undefined) return null;
      const m = (JSON.parse(raw) as { method?: unknown }).method;
      return typeof m === "string" ? m : null;
    } catch {
      return null;
    }
  }
  return null;
}

function memberName(member: string): string {
  return member === "model" ? "" : ` · ${member} member`;
}

// ---------------------------------------------------------------------------------------------

/** Reads every input, checks it and builds the page and report.json (nothing is written). */
export async function buildReport(options: ReportOptions): Promise<ReportResult> {
  const runsIn = options.runs ?? [];
  const evalsIn = options.evals ?? [];
  const advIn = options.adversarial ?? [];
  const galleryLimit = options.galleryLimit ?? 8;
  if (!Number.isInteger(galleryLimit) || galleryLimit < 1)
    throw new RangeError(`report: galleryLimit must be a positive integer, got ${galleryLimit}`);

  // Inputs first, all of them, so that a bad file fails before any plot is drawn.
  const runLabels = uniqueLabels(runsIn.map((r) => r.label ?? defaultLabel(resolve(r.path))));
  const runs = runsIn.map((r, i) => readRunDir(r.path, runLabels[i] as string));
  const evalLabels = uniqueLabels(evalsIn.map((e) => e.label ?? defaultLabel(e.path)));
  const evals = evalsIn.map((e, i) => readEvalFile(e.path, evalLabels[i] as string, runs, (c) => checkpointMethod(c, e.path)));
  const sweep = options.sweep == null ? null : readSweepFile(options.sweep);
  const certifyPaths =
    options.certify == null ? [] : typeof options.certify === "string" ? [options.certify] : [...options.certify];
  const certifies = certifyPaths.map((p) => ({ path: p, file: readCertifyFile(p) }));
  const advLabels = uniqueLabels(advIn.map((a) => a.label ?? defaultLabel(a.path)));
  const classesFor = (dataset: string | null): string[] | null =>
    evals.find((e) => e.classes !== null && (dataset === null || e.dataset === dataset))?.classes ?? null;
  const galleries = advIn.map((a, i) => readGallery(a.path, advLabels[i] as string, galleryLimit, classesFor));

  const sources: SourceEntry[] = [];
  const addSource = (s: Omit<SourceEntry, "id">): string => {
    const id = `S${sources.length + 1}`;
    sources.push({ id, ...s });
    return id;
  };
  const numbers: NumberEntry[] = [];
  const add = (section: SectionId, subject: string, quantity: string, value: number, display: string, source: string): void => {
    numbers.push({ section, subject, quantity, value, display, source });
  };
  const missing: { section: SectionId; reason: string }[] = [];
  const sections: Section[] = [];

  // ---- training curves
  const training: TrainingSeries[] = [];
  if (runs.length === 0) {
    missing.push({ section: "training", reason: "no run directory was given (rmoe report RUN_DIR ...)." });
  } else {
    const figures: Figure[] = [];
    const notes: string[] = [];
    for (const run of runs) {
      const source = addSource({
        kind: "run",
        label: run.label,
        path: run.dir,
        command: run.command,
        settings: run.summary,
        machine: formatMachine(run.machine),
        machineInfo: run.machine,
      });
      // Steps per epoch from the first validation line (its step is where that epoch ended),
      // so both plots can share an 'epochs completed' axis; without one, steps it is.
      const firstEpoch = run.epochs[0];
      const stepsPerEpoch = firstEpoch === undefined || firstEpoch.step === 0 ? null : firstEpoch.step / (firstEpoch.epoch + 1);
      const xAxis = stepsPerEpoch === null ? "step" : "epoch";
      const xOf = (step: number): number => (stepsPerEpoch === null ? step : step / stepsPerEpoch);
      const xTitle = xAxis === "epoch" ? "epochs completed" : "training step";
      training.push({
        run: run.label,
        kind: run.kind,
        source,
        summary: run.summary,
        xAxis,
        steps: run.steps,
        epochs: run.epochs,
      });
      const lossRows: CurveRow[] = [];
      const accRows: CurveRow[] = [];
      for (const s of run.steps) {
        for (const [term, v] of Object.entries(s.terms)) {
          lossRows.push({ x: xOf(s.step), series: term, value: v });
          add("training", run.label, `${term} at step ${s.step}`, v, sig(v), source);
        }
        for (const [k, v] of Object.entries(s.acc)) {
          const name = k === "acc" ? "train accuracy (batch)" : `train accuracy, ${k.slice(0, -4)} level`;
          accRows.push({ x: xOf(s.step), series: name, value: v });
          add("training", run.label, `${name} at step ${s.step}`, v, pct(v), source);
        }
      }
      for (const e of run.epochs) {
        const x = stepsPerEpoch === null ? e.step : e.epoch + 1;
        accRows.push({ x, series: "validation SA (clean)", value: e.valClean });
        accRows.push({ x, series: `validation RA (${e.valAttack ?? "attack"})`.replace(/ eps [0-9.]+/, ""), value: e.valRobust });
        add("training", run.label, `validation SA after epoch ${e.epoch + 1}`, e.valClean, pct(e.valClean), source);
        add(
          "training",
          run.label,
          `validation RA after epoch ${e.epoch + 1}${e.valAttack === null ? "" : ` (${e.valAttack})`}`,
          e.valRobust,
          pct(e.valRobust),
          source,
        );
      }
      if (lossRows.length === 0 && accRows.length === 0) {
        notes.push(`${run.label}: metrics.jsonl has no step or epoch lines yet, so there is nothing to plot.`);
        continue;
      }
      const stopped =
        run.epochsPlanned !== null && run.epochs.length < run.epochsPlanned
          ? ` (${run.epochs.length} of ${run.epochsPlanned} epochs validated)`
          : "";
      figures.push({
        title: run.label,
        kind: run.kind,
        subtitle: `${run.summary}${stopped}`,
        svgs: [
          ...(lossRows.length > 0 ? [await renderSvg(lossSpec(lossRows, xTitle, "loss terms"))] : []),
          ...(accRows.length > 0 ? [await renderSvg(accuracySpec(accRows, xTitle, "accuracy"))] : []),
        ],
        caption:
          `Left: every loss term the method logs, every ${run.steps.length > 1 ? "logged step" : "step logged"}` +
          ` (multi-level methods prefix the level: robust.ce is the robust member's CE). Right: training accuracy on the batch (dashed grey)` +
          " and validation SA and RA on the held-out split after each epoch. A widening gap between SA and RA is the price of robustness;" +
          " RA falling late in training is robust overfitting.",
      });
    }
    sections.push({
      id: "training",
      title: SECTION_TITLES.training,
      intro: `One row per run directory (${runs.length}): its config.json and metrics.jsonl. The x axis is ${
        training.every((t) => t.xAxis === "epoch")
          ? "epochs completed (fractional between validations)"
          : "epochs completed where a run has validated, else training steps"
      }.`,
      figures,
      notes,
      tables: [],
    });
  }

  // ---- models evaluated (a table in the vulnerability section), RA-E vs RA-R
  const models: ModelEntry[] = [];
  const vulnerability: VulnerabilityEntry[] = [];
  const routing: RoutingEntry[] = [];
  const evalSource = new Map<EvalInput, string>();
  for (const e of evals) {
    const settings = [
      e.checkpoint === null ? null : `checkpoint ${e.checkpoint}`,
      e.dataset === null ? null : `${e.dataset}${e.split === null ? "" : ` ${e.split}`}, n=${e.n}`,
      e.eps === null ? null : `${e.norm === "l2" ? "L2" : "L-inf"} eps ${epsText(e.eps)}`,
      e.seed === null ? null : `seed ${e.seed}`,
      e.alpha === null ? null : `alpha ${e.alpha}`,
      e.attacks.length === 0 ? "no attack" : `attacks ${e.attacks.map((a) => a.attack ?? a.spec).join(", ")}`,
      ...e.moe
        .flatMap((m) => [m.expertAttack?.attack ?? null, m.routerAttack?.attack ?? null])
        .filter((a, i, all) => a !== null && all.indexOf(a) === i),
    ]
      .filter((s): s is string => s !== null)
      .join("; ");
    const source = addSource({
      kind: "eval",
      label: e.label,
      path: e.file,
      command: e.command,
      settings: `rmoe eval report v${e.version}: ${settings}`,
      machine: formatMachine(e.machine),
      machineInfo: e.machine,
    });
    evalSource.set(e, source);
    models.push({
      model: e.label,
      kind: e.kind,
      source,
      modelKind: e.modelKind,
      alpha: e.alpha,
      n: e.n,
      sa: e.sa,
      saInterval: e.saInterval,
      attacks: e.attacks,
      worstCase: e.worstCase,
    });
    add("vulnerability", e.label, "SA (clean accuracy)", e.sa, `${pct(e.sa)}${intervalText(e.saInterval)}`, source);
    for (const a of e.attacks)
      add("vulnerability", e.label, `RA under ${a.spec}`, a.accuracy, `${pct(a.accuracy)}${intervalText(a.interval)}`, source);
    if (e.worstCase !== null && e.attacks.length > 1)
      add(
        "vulnerability",
        e.label,
        "RA, worst case over the attacks",
        e.worstCase,
        `${pct(e.worstCase)}${intervalText(e.worstCaseInterval)}`,
        source,
      );
    for (const m of e.moe) {
      const who = `${e.label}${memberName(m.member)}`;
      if (m.expertAttack !== null || m.routerAttack !== null) {
        vulnerability.push({
          model: e.label,
          member: m.member,
          kind: e.kind,
          source,
          cleanAccuracy: m.cleanAccuracy,
          cleanInterval: m.cleanInterval,
          raE: m.expertAttack?.accuracy ?? null,
          raEInterval: m.expertAttack?.interval ?? null,
          raEMoe: m.expertAttack?.moeAccuracy ?? null,
          raR: m.routerAttack?.accuracy ?? null,
          raRInterval: m.routerAttack?.interval ?? null,
          raRMoe: m.routerAttack?.moeAccuracy ?? null,
        });
        if (m.cleanAccuracy !== null && m.member !== "model")
          add(
            "vulnerability",
            who,
            "clean accuracy of this MoE alone",
            m.cleanAccuracy,
            `${pct(m.cleanAccuracy)}${intervalText(m.cleanInterval)}`,
            source,
          );
        const moeNumbers = (name: string, a: EvalMoE["expertAttack"]): void => {
          if (a === null) return;
          add("vulnerability", who, name, a.accuracy, `${pct(a.accuracy)}${intervalText(a.interval)}`, source);
          if (a.moeAccuracy !== null)
            add("vulnerability", who, `real MoE on the ${name} perturbation`, a.moeAccuracy, pct(a.moeAccuracy), source);
        };
        moeNumbers("RA-E", m.expertAttack);
        moeNumbers("RA-R", m.routerAttack);
      }
      const total = m.usage.reduce((a, b) => a + b, 0);
      const flips = [
        ...m.underAttack.map((u) => ({ attack: `${u.spec} (whole model)`, rate: u.routeFlipRate })),
        ...(m.expertAttack?.routeFlipRate == null
          ? []
          : [{ attack: "RA-E (experts attacked)", rate: m.expertAttack.routeFlipRate }]),
        ...(m.routerAttack?.routeFlipRate == null
          ? []
          : [{ attack: "RA-R (router attacked)", rate: m.routerAttack.routeFlipRate }]),
      ];
      routing.push({
        model: e.label,
        member: m.member,
        kind: e.kind,
        source,
        usage: m.usage,
        usageFraction: m.usage.map((c) => (total === 0 ? 0 : c / total)),
        flips,
      });
      m.usage.forEach((c, i) => {
        add(
          "routing",
          who,
          `clean images routed to expert ${i}`,
          c,
          `${c} of ${total} (${pct(total === 0 ? 0 : c / total, 1)})`,
          source,
        );
      });
      for (const f of flips) add("routing", who, `route-flip rate, ${f.attack}`, f.rate, pct(f.rate), source);
    }
  }

  if (evals.length === 0) {
    const reason = "no eval report was given (--eval FILE.json, from rmoe eval --json).";
    missing.push({ section: "vulnerability", reason });
    missing.push({ section: "routing", reason });
  } else {
    const figures: Figure[] = [];
    const notes: string[] = [];
    if (vulnerability.length === 0) {
      notes.push(
        "No eval report has RA-E or RA-R: the models are not MoEs (nor dual models of MoEs), or they were evaluated with --no-moe-attacks.",
      );
    } else {
      const rows: BarRow[] = [];
      for (const v of vulnerability) {
        const model = `${v.model}${memberName(v.member)}`;
        if (v.cleanAccuracy !== null)
          rows.push({
            model,
            measure: "clean accuracy of this MoE",
            value: v.cleanAccuracy,
            lower: v.cleanInterval?.lower ?? null,
            upper: v.cleanInterval?.upper ?? null,
          });
        if (v.raE !== null)
          rows.push({
            model,
            measure: "RA-E: experts attacked, router frozen",
            value: v.raE,
            lower: v.raEInterval?.lower ?? null,
            upper: v.raEInterval?.upper ?? null,
          });
        if (v.raR !== null)
          rows.push({
            model,
            measure: "RA-R: router attacked, experts frozen",
            value: v.raR,
            lower: v.raRInterval?.lower ?? null,
            upper: v.raRInterval?.upper ?? null,
          });
      }
      const intervals = rows.some((r) => r.lower !== null);
      const level = evals.find((e) => e.confidenceLevel !== null)?.confidenceLevel ?? null;
      figures.push({
        title: "RA-E and RA-R per MoE",
        kind: null,
        subtitle: null,
        svgs: [
          await renderSvg(
            groupedBarsSpec(
              rows,
              [
                { name: "clean accuracy of this MoE", color: MEASURE_COLORS.clean },
                { name: "RA-E: experts attacked, router frozen", color: MEASURE_COLORS.expert },
                { name: "RA-R: router attacked, experts frozen", color: MEASURE_COLORS.router },
              ],
              "accuracy",
              { percent: true },
            ),
          ),
        ],
        caption:
          "RA-E attacks the experts with the routing frozen at its clean value; RA-R attacks the router with the experts' outputs frozen. " +
          "A bar that falls further under attack marks the weaker part: the paper finds the experts (RA-E) far more vulnerable than the router (RA-R), " +
          "which is why RT-ER trains the experts' robustness directly. A dual model's members are attacked alone." +
          (intervals
            ? ` Whiskers: ${level === null ? "" : `${Math.round(level * 100)}% `}confidence intervals from the eval reports.`
            : ""),
      });
    }
    sections.push({
      id: "vulnerability",
      title: SECTION_TITLES.vulnerability,
      intro: `From ${evals.length} eval report${evals.length === 1 ? "" : "s"}. The table gives each model's clean accuracy (SA) and robust accuracy (RA) under each attack, end to end.`,
      figures,
      notes,
      tables: [modelsTable(models)],
    });

    const routedMoEs = routing.filter((r) => r.usage.length > 0);
    if (routedMoEs.length === 0) {
      missing.push({
        section: "routing",
        reason: "the eval reports have no MoE (expert usage and route flips are reported for MoEs and dual models of MoEs).",
      });
    } else {
      const usageRows = routedMoEs.flatMap((r) =>
        r.usage.map((count, i) => ({
          model: `${r.model}${memberName(r.member)}`,
          expert: `expert ${i}`,
          fraction: r.usageFraction[i] as number,
          count,
        })),
      );
      const flipRows: BarRow[] = routedMoEs.flatMap((r) =>
        r.flips.map((f) => ({
          model: `${r.model}${memberName(r.member)}`,
          measure: f.attack,
          value: f.rate,
          lower: null,
          upper: null,
        })),
      );
      const attackNames = [...new Set(flipRows.map((r) => r.measure))];
      const palette = ["#e45756", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b", "#b279a2"];
      let k = 0;
      const flipMeasures = attackNames.map((name) => ({
        name,
        color: name.startsWith("RA-E")
          ? MEASURE_COLORS.expert
          : name.startsWith("RA-R")
            ? MEASURE_COLORS.router
            : (palette[k++ % palette.length] as string),
      }));
      const figures: Figure[] = [
        {
          title: "Expert usage on clean images",
          kind: null,
          subtitle: null,
          svgs: [await renderSvg(usageSpec(usageRows))],
          caption:
            "The share of clean test images each MoE routes to each expert (top-1). A single dominant expert means the mixture has collapsed to one model; an even split means load balancing worked.",
        },
      ];
      if (flipRows.length > 0)
        figures.push({
          title: "Route-flip rates",
          kind: null,
          subtitle: null,
          svgs: [
            await renderSvg(
              groupedBarsSpec(flipRows, flipMeasures, "share of images whose top-1 expert changed", { percent: true }),
            ),
          ],
          caption:
            "How often an attack changes which expert an image goes to. Under a whole-model attack, under RA-E (the experts attacked; the route can still change because the router sees the perturbed image) and under RA-R (the router attacked: the paper's route-flip rate). A high RA-R flip rate with a small drop in accuracy means the experts agree with each other.",
        });
      sections.push({
        id: "routing",
        title: SECTION_TITLES.routing,
        intro: `Routing of ${routedMoEs.length} MoE${routedMoEs.length === 1 ? "" : "s"} from the eval reports (a dual model contributes each MoE member).`,
        figures,
        notes: [],
        tables: [],
      });
    }
  }

  // ---- the alpha trade-off
  if (sweep === null) {
    missing.push({ section: "tradeoff", reason: "no sweep file was given (--sweep FILE.json, written by rmoe sweep)." });
  } else {
    const file = options.sweep as string;
    const attacks = [...new Set(sweep.points.flatMap((p) => Object.keys(p.ra)))];
    const settings = [
      sweep.source?.standard == null ? null : `standard ${sweep.source.standard}`,
      sweep.source?.robust == null ? null : `robust ${sweep.source.robust}`,
      sweep.source?.dataset == null
        ? null
        : `${sweep.source.dataset}${sweep.source.split == null ? "" : ` ${sweep.source.split}`}`,
      sweep.n === null ? null : `n=${sweep.n}`,
      sweep.threatModel === null
        ? null
        : `${sweep.threatModel.norm === "l2" ? "L2" : "L-inf"} eps ${epsText(sweep.threatModel.eps)}`,
      sweep.seed === null ? null : `seed ${sweep.seed}`,
      sweep.space === null ? null : `mixing ${sweep.space}`,
      `attacks ${attacks.join(", ")}`,
      sweep.certify === null ? null : `certified by ${sweep.certify.method} (${sweep.certify.norm})`,
    ]
      .filter((s): s is string => s !== null)
      .join("; ");
    const source = addSource({
      kind: "sweep",
      label: "alpha sweep",
      path: file,
      command: sweep.command,
      settings,
      machine: formatMachine(sweep.machine),
      machineInfo: sweep.machine,
    });
    const worstToo = attacks.length > 1 && sweep.points.every((p) => p.worst !== null);
    const panels = worstToo ? [...attacks, "worst case"] : attacks;
    const raOf = (p: { ra: Record<string, number>; worst: number | null }, a: string): number | undefined =>
      a === "worst case" ? (p.worst ?? undefined) : p.ra[a];
    const sweepName = "dual model, alpha swept";
    const rows: TradeoffRow[] = [];
    for (const p of sweep.points) {
      add("tradeoff", `dual, alpha ${p.alpha}`, "SA", p.sa, pct(p.sa), source);
      for (const a of panels) {
        const ra = raOf(p, a);
        if (ra === undefined) continue;
        rows.push({
          role: "sweep",
          series: sweepName,
          attack: a,
          alpha: p.alpha,
          sa: p.sa,
          ra,
          text: `α=${p.alpha}`,
          labelAbove: false,
        });
        add("tradeoff", `dual, alpha ${p.alpha}`, `RA (${a})`, ra, pct(ra), source);
      }
      for (const c of p.certified ?? [])
        add(
          "tradeoff",
          `dual, alpha ${p.alpha}`,
          `certified accuracy at eps ${epsText(c.eps)}`,
          c.accuracy,
          pct(c.accuracy),
          source,
        );
    }
    // The ends of the curve are the members alone: mark them as the standard and the robust
    // model (kinds from the members' checkpoints when they are readable), so that the plot
    // shows all four models of the paper's comparison even when the sweep placed only JTDMoE.
    const ends: typeof sweep.markers = [];
    const memberKind = (checkpoint: string | null | undefined, fallback: ModelKind): ModelKind => {
      const m = checkpoint == null ? null : checkpointMethod(checkpoint, file);
      const k = kindOfMethod(m);
      return k === "other" ? fallback : k;
    };
    const p0 = sweep.points.find((p) => p.alpha === 0);
    const p1 = sweep.points.find((p) => p.alpha === 1);
    if (p0 !== undefined) {
      const kind = memberKind(sweep.source?.standard, "standard");
      ends.push({ label: `${KIND_NAMES[kind]} member alone (α=0)`, kind, sa: p0.sa, ra: p0.ra, worst: p0.worst, alpha: 0 });
    }
    if (p1 !== undefined) {
      const kind = memberKind(sweep.source?.robust, "other");
      ends.push({
        label: `${kind === "other" ? "robust" : KIND_NAMES[kind]} member alone (α=1)`,
        kind,
        sa: p1.sa,
        ra: p1.ra,
        worst: p1.worst,
        alpha: 1,
      });
    }
    // An end that a placed marker already shows (rmoe sweep --marker on the robust member: the
    // same model on the same images gives the same numbers) is not drawn twice.
    const same = (a: { sa: number; ra: Record<string, number> }, b: { sa: number; ra: Record<string, number> }): boolean =>
      Math.abs(a.sa - b.sa) < 1e-9 && attacks.every((k) => Math.abs((a.ra[k] ?? Number.NaN) - (b.ra[k] ?? Number.NaN)) < 1e-9);
    for (let i = ends.length - 1; i >= 0; i--)
      if (sweep.markers.some((m) => same(m, ends[i] as (typeof ends)[number]))) ends.splice(i, 1);
    for (const m of ends)
      for (const a of panels) {
        const ra = raOf(m, a);
        if (ra !== undefined)
          rows.push({
            role: "marker",
            series: m.label,
            attack: a,
            alpha: m.alpha,
            sa: m.sa,
            ra,
            text: m.label,
            labelAbove: m.alpha === 0,
          });
      }
    for (const r of rows)
      if (r.role === "sweep" && (r.alpha === 0 || r.alpha === 1) && ends.some((e) => e.alpha === r.alpha)) r.text = "";
    const markerNames = [...ends, ...sweep.markers].map((m) => m.label);
    for (const m of sweep.markers) {
      add("tradeoff", m.label, "SA", m.sa, pct(m.sa), source);
      for (const a of panels) {
        const ra = raOf(m, a);
        if (ra === undefined) continue;
        rows.push({ role: "marker", series: m.label, attack: a, alpha: m.alpha, sa: m.sa, ra, text: m.label, labelAbove: false });
        add("tradeoff", m.label, `RA (${a})`, ra, pct(ra), source);
      }
    }
    spreadLabels(rows);
    const series = [
      { name: sweepName, kind: "dual" as ModelKind },
      ...[...ends, ...sweep.markers].map((m) => ({ name: m.label, kind: m.kind })),
    ];
    const figures: Figure[] = [
      {
        title: "SA against RA, one point per alpha",
        kind: null,
        subtitle: null,
        svgs: await Promise.all(tradeoffSpecs(rows, series).map((spec) => renderSvg(spec))),
        caption:
          "The dual model (1 − α)·F_S + α·F_R mixes a standard MoE F_S and a robust MoE F_R. α = 0 is the standard member alone (high SA, no RA), α = 1 the robust member alone; " +
          "the points in between trace the trade-off the mixing buys. Models placed beside the curve" +
          (markerNames.length === 0 ? " (none in this sweep)" : ` (${markerNames.join(", ")})`) +
          " are drawn as large symbols: a model above and to the right of the curve beats every post-hoc mixture, which is what JTDMoE's joint training aims for." +
          (panels.length > 1 ? " One panel per attack." : ""),
      },
    ];
    const certRows = sweep.points.flatMap((p) =>
      (p.certified ?? []).map((c) => ({ alpha: p.alpha, eps: `eps ${epsText(c.eps)}`, accuracy: c.accuracy })),
    );
    if (certRows.length > 0)
      figures.push({
        title: "Certified accuracy against alpha",
        kind: null,
        subtitle: null,
        svgs: [await renderSvg(certifiedAlphaSpec(certRows))],
        caption: `Certified accuracy of the dual model at each alpha${sweep.certify === null ? "" : ` (${sweep.certify.method}, ${sweep.certify.norm})`}: the fraction of test images provably classified correctly within the radius.`,
      });
    sections.push({
      id: "tradeoff",
      title: SECTION_TITLES.tradeoff,
      intro: `From ${file}: ${sweep.points.length} values of alpha${sweep.markers.length === 0 ? "" : ` and ${sweep.markers.length} other model${sweep.markers.length === 1 ? "" : "s"}`}.`,
      figures,
      notes: [],
      tables: [],
    });
  }

  // ---- certified accuracy: one figure per (method, norm), every file's curves on it
  if (certifies.length === 0) {
    missing.push({ section: "certified", reason: "no certificate file was given (--certify FILE.json)." });
  } else {
    const groups = new Map<
      string,
      { method: string; norm: string; files: { path: string; file: CertifyFile; source: string }[] }
    >();
    for (const { path: file, file: certify } of certifies) {
      const settings = [
        `${certify.method}, ${certify.norm === "l2" ? "L2" : "L-inf"}`,
        certify.data === null
          ? null
          : `${certify.data.dataset ?? "?"}${certify.data.split === null ? "" : ` ${certify.data.split}`}${certify.data.n === null ? "" : `, n=${certify.data.n}`}`,
        certify.settings === null
          ? null
          : Object.entries(certify.settings)
              .map(([k, v]) => `${k} ${v}`)
              .join(", "),
      ]
        .filter((s): s is string => s !== null)
        .join("; ");
      const source = addSource({
        kind: "certify",
        label: `certificates (${certify.method}: ${certify.curves.map((c) => c.model).join(", ")})`,
        path: file,
        command: certify.command,
        settings,
        machine: formatMachine(certify.machine),
        machineInfo: certify.machine,
      });
      for (const c of certify.curves)
        for (const p of c.points)
          add(
            "certified",
            c.model,
            `certified accuracy (${certify.method}, ${certify.norm === "l2" ? "L2" : "L-inf"}) at eps ${epsText(p.eps)}`,
            p.certifiedAccuracy,
            pct(p.certifiedAccuracy),
            source,
          );
      const key = `${certify.method}|${certify.norm}`;
      const g = groups.get(key) ?? { method: certify.method, norm: certify.norm, files: [] };
      g.files.push({ path: file, file: certify, source });
      groups.set(key, g);
    }
    const figures: Figure[] = [];
    for (const g of groups.values()) {
      const norm = g.norm === "l2" ? "L2" : "L-inf";
      const curves = g.files.flatMap((f) => f.file.curves);
      const rows = curves.flatMap((c) => c.points.map((p) => ({ model: c.model, eps: p.eps, accuracy: p.certifiedAccuracy })));
      figures.push({
        title: `Certified accuracy against the ${norm} radius (${g.method})`,
        kind: null,
        subtitle: null,
        svgs: [
          await renderSvg(
            certifySpec(
              rows,
              curves.map((c) => ({ name: c.model, kind: c.kind })),
              `radius eps (${norm})`,
            ),
          ),
        ],
        caption:
          "The fraction of test images whose prediction is correct and provably cannot change within the radius. Unlike RA, which an attack only bounds from above, " +
          `this is a guarantee${g.method === "randomized-smoothing" ? " (of the smoothed classifier, with probability 1 - alpha)" : ""}. ` +
          `From ${g.files.map((f) => `${f.path} [${f.source}]`).join(", ")}; colours follow the model kind.`,
      });
    }
    sections.push({
      id: "certified",
      title: SECTION_TITLES.certified,
      intro: `${certifies.length} certificate file${certifies.length === 1 ? "" : "s"}: ${[...groups.values()].map((g) => `${g.method} (${g.norm === "l2" ? "L2" : "L-inf"})`).join(", ")}.`,
      figures,
      notes: [],
      tables: [],
    });
  }

  // ---- gallery
  const gallery: GalleryEntry[] = [];
  if (galleries.length === 0) {
    missing.push({
      section: "gallery",
      reason: "no adversarial examples were given (--adv FILE.safetensors, written by rmoe attack --out).",
    });
  } else {
    const notes: string[] = [];
    for (const g of galleries) {
      const settings = [
        `${g.attackName ?? g.attack}`,
        g.eps === null ? null : `${g.norm === "l2" ? "L2" : "L-inf"} eps ${g.epsText ?? epsText(g.eps)}`,
        `n=${g.n}`,
        g.checkpoint === null ? null : `checkpoint ${g.checkpoint}`,
        g.dataset === null ? null : `${g.dataset}${g.split === null ? "" : ` ${g.split}`}`,
        g.seed === null ? null : `seed ${g.seed}`,
        g.alpha === null ? null : `alpha ${g.alpha}`,
      ]
        .filter((s): s is string => s !== null)
        .join("; ");
      const source = addSource({
        kind: "adversarial",
        label: g.label,
        path: g.file,
        command: null,
        settings: `rmoe attack file: ${settings}`,
        machine: null,
        machineInfo: null,
      });
      if (g.routeNote !== null) notes.push(`${g.label}: ${g.routeNote}.`);
      const { items, ...rest } = g;
      gallery.push({
        label: rest.label,
        source,
        attack: rest.attack,
        attackName: rest.attackName,
        eps: rest.eps,
        epsText: rest.epsText,
        norm: rest.norm,
        n: rest.n,
        cleanAccuracy: rest.cleanAccuracy,
        robustAccuracy: rest.robustAccuracy,
        classes: rest.classes,
        routes: rest.routes,
        routeNote: rest.routeNote,
        perturbationScale: rest.perturbationScale,
        items: items.map(({ clean: _c, adv: _a, perturbation: _p, ...numbersOnly }) => numbersOnly),
      });
      if (g.cleanAccuracy !== null)
        add("gallery", g.label, `clean accuracy over the file's ${g.n} images`, g.cleanAccuracy, pct(g.cleanAccuracy), source);
      if (g.robustAccuracy !== null)
        add("gallery", g.label, `robust accuracy over the file's ${g.n} images`, g.robustAccuracy, pct(g.robustAccuracy), source);
      const cls = (k: number): string => g.classes?.[k] ?? String(k);
      for (const it of items) {
        const who = `${g.label} #${it.index}`;
        add("gallery", who, `label (${cls(it.label)})`, it.label, String(it.label), source);
        add("gallery", who, `prediction, clean (${cls(it.predClean)})`, it.predClean, String(it.predClean), source);
        add("gallery", who, `prediction, adversarial (${cls(it.predAdv)})`, it.predAdv, String(it.predAdv), source);
        add("gallery", who, "max |x_adv − x|", it.linf, epsText(it.linf), source);
        for (const [when, r] of [
          ["clean", it.routeClean],
          ["adversarial", it.routeAdv],
        ] as const)
          for (const m of r ?? [])
            add(
              "gallery",
              who,
              `top-1 expert${m.member === "model" ? "" : ` of the ${m.member} member`}, ${when}`,
              m.expert,
              String(m.expert),
              source,
            );
      }
    }
    sections.push({
      id: "gallery",
      title: SECTION_TITLES.gallery,
      intro: `The first ${galleryLimit} images of each attack file (${galleries.length}), in file order: clean, adversarial, and the perturbation (mid-grey is no change${
        galleries.every((g) => g.perturbationScale === "eps")
          ? "; white and black are ±eps"
          : "; scaled to each image's largest change"
      }). Below each: the true class, the prediction on each image, and the expert the router sends it to${galleries.some((g) => g.routes === null) ? " (where known)" : ""}.`,
      figures: [],
      notes,
      tables: [],
      gallery: galleries.map((g, i) => ({ input: g, source: gallery[i]?.source ?? "" })),
    });
  }

  // Page order: what a reader asks first (does it train, is it robust, where is it weak), then the detail.
  const order: SectionId[] = ["training", "vulnerability", "tradeoff", "certified", "routing", "gallery"];
  sections.sort((a, b) => order.indexOf(a.id as SectionId) - order.indexOf(b.id as SectionId));
  missing.sort((a, b) => order.indexOf(a.section) - order.indexOf(b.section));

  const title = options.title ?? "robust-moe report";
  const json: ReportJson = {
    schema: REPORT_JSON_SCHEMA,
    version: REPORT_JSON_VERSION,
    title,
    createdAt: (options.now ?? new Date()).toISOString(),
    generator: `robust-moe ${packageVersion()}`,
    command: options.command === undefined ? null : formatCommand(options.command),
    sections: sections.map((s) => s.id as SectionId),
    missing,
    sources,
    training,
    models,
    vulnerability,
    tradeoff: sweep,
    certified: certifies.map((c) => c.file),
    routing,
    gallery,
    numbers,
  };
  const html = renderPage({
    title,
    subtitle: [...runs.map((r) => r.label), ...evals.map((e) => e.label)],
    json,
    sections,
    kindColors: KIND_COLORS,
    kindNames: KIND_NAMES,
    sectionTitles: SECTION_TITLES,
  });
  return { json, html };
}

/**
 * Marker labels sit below-right of their symbol; when two markers of a panel are close, the
 * later one's label goes above instead, so the two labels do not print over each other.
 */
function spreadLabels(rows: TradeoffRow[]): void {
  const range = (v: number[]): number => Math.max(0.05, Math.max(...v) - Math.min(...v));
  const xr = range(rows.map((r) => r.ra));
  const yr = range(rows.map((r) => r.sa));
  const placed = new Map<string, TradeoffRow[]>();
  for (const r of rows) {
    if (r.role !== "marker") continue;
    const before = placed.get(r.attack) ?? [];
    const near = (o: TradeoffRow): boolean => Math.abs(o.ra - r.ra) < 0.3 * xr && Math.abs(o.sa - r.sa) < 0.08 * yr;
    if (before.some((o) => near(o) && o.labelAbove === r.labelAbove)) r.labelAbove = !r.labelAbove;
    before.push(r);
    placed.set(r.attack, before);
  }
}

function modelsTable(models: ModelEntry[]): {
  caption: string;
  head: string[];
  rows: { kind: ModelKind | null; cells: string[] }[];
} {
  const attacks = [...new Set(models.flatMap((m) => m.attacks.map((a) => a.spec)))];
  return {
    caption: "Models evaluated (whole model, end to end)",
    head: ["model", "kind", "n", "SA", ...attacks.map((a) => `RA ${a}`), ...(attacks.length > 1 ? ["RA worst case"] : [])],
    rows: models.map((m) => ({
      kind: m.kind,
      cells: [
        m.model,
        `${KIND_NAMES[m.kind]}${m.alpha === null ? "" : `, α=${m.alpha}`}`,
        String(m.n),
        `${pct(m.sa, 1)}${intervalText(m.saInterval)}`,
        ...attacks.map((a) => {
          const r = m.attacks.find((x) => x.spec === a);
          return r === undefined ? "–" : `${pct(r.accuracy, 1)}${intervalText(r.interval)}`;
        }),
        ...(attacks.length > 1 ? [m.worstCase === null ? "–" : pct(m.worstCase, 1)] : []),
      ],
    })),
  };
}

/** Builds the report and writes DIR/index.html and DIR/report.json (atomically each). */
export async function writeReport(
  out: string,
  options: ReportOptions,
): Promise<ReportResult & { html: string; htmlPath: string; jsonPath: string }> {
  const result = await buildReport(options);
  mkdirSync(out, { recursive: true });
  const htmlPath = join(out, "index.html");
  const jsonPath = join(out, "report.json");
  writeFileAtomic(jsonPath, `${JSON.stringify(result.json, null, 2)}\n`);
  writeFileAtomic(htmlPath, result.html);
  return { ...result, htmlPath, jsonPath };
}
