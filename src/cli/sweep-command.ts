// `rmoe sweep`: the dual model's accuracy/robustness trade-off over alpha (docs/EVAL.md, "Sweep").
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseAttackSpec } from "../eval/attack-spec.js";
import { checkSplit, defaultSplit, isEvalDataset, loadEvalDataset } from "../eval/datasets.js";
import { formatEps, parseEps } from "../eval/eps.js";
import { checkModelFitsData } from "../eval/model-fit.js";
import { alignColumns, percent } from "../eval/report-format.js";
import { loadCheckpoint, readCheckpointConfig } from "../io/checkpoint.js";
import type { Model } from "../models/config.js";
import { type CertifiedAt, parseAlphas, SWEEP_SCHEMA, type SweepReport, sweepAlphas } from "../sweep/sweep.js";
import { writeFileAtomic } from "../train/run-dir.js";
import { parseOptions } from "./args.js";
import { CERTIFY_OPTIONS, certifyOption, defaultCertifyEps, runCommand, UsageError } from "./eval-command.js";

const USAGE = `usage: rmoe sweep --standard A.safetensors --robust B.safetensors --data cifar10 [options]

Evaluates the dual model (1 - alpha) F_S + alpha F_R at every alpha (METHOD.md section 4) on the
same images with the same seeded attacks: SA, RA per attack and the per-sample worst case. The
table goes to stdout; --out writes the JSON that rmoe report draws (the trade-off plot).

options:
  --alphas LIST        start:stop:step (inclusive) or a,b,c (default 0:1:0.1)
  --attacks LIST       attacks, comma-separated (default pgd50; see rmoe eval --help)
  --jtdmoe FILE        a JTDMoE dual-model checkpoint to place on the same axes (its own alpha)
  --marker LABEL=FILE  any other checkpoint to place on the axes (repeatable)
  --space logits|probs how the dual model mixes (default logits)
  --n N                images (default 1000)      --batch B   batch size (default 100)
  --eps E              default 8/255 (linf)       --norm linf|l2
  --split S            default: the test split    --seed S    attack seed (default 0)
  --certify M          certified accuracy of the dual model at every alpha (and of each marker):
                       ibp, smoothing or lipschitz; --certify-eps, --certify-norm, --sigma,
                       --samples, --certify-alpha as in rmoe eval (default radii 1/255,2/255,
                       4/255,8/255 in L-inf, 0.125,0.25,0.5,1 in L2)
  --data-root DIR      data cache
  --out FILE           write the sweep JSON here (atomically)
  --json               print the JSON instead of the table
`;

/** Loads a checkpoint after checking it exists and fits the data. */
function loadFitting(path: string, what: string, dataset: ReturnType<typeof loadEvalDataset>, dataName: string): Model {
  if (!existsSync(path)) throw new Error(`${what}: checkpoint not found: ${path}`);
  const { config } = readCheckpointConfig(path);
  checkModelFitsData(config, { classes: dataset.classes, imageShape: dataset.imageShape }, `${what} ${path}`, dataName);
  return loadCheckpoint(path).model;
}

export async function sweepCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runCommand("rmoe sweep", USAGE, () => {
    // --marker repeats: pull those out before the ordinary option parser sees them.
    const markers: { label: string; path: string }[] = [];
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] !== "--marker") {
        rest.push(argv[i] as string);
        continue;
      }
      const v = argv[++i];
      const eq = v?.indexOf("=") ?? -1;
      if (v === undefined || eq <= 0) throw new UsageError("rmoe sweep: --marker needs LABEL=FILE");
      markers.push({ label: v.slice(0, eq), path: resolve(v.slice(eq + 1)) });
    }
    let o: ReturnType<typeof parseOptions>;
    try {
      o = parseOptions(
        rest,
        {
          standard: { type: "string" },
          robust: { type: "string" },
          data: { type: "string" },
          alphas: { type: "string", default: "0:1:0.1" },
          attacks: { type: "string", default: "pgd50" },
          jtdmoe: { type: "string" },
          space: { type: "string", default: "logits" },
          n: { type: "int", default: 1000, min: 1 },
          batch: { type: "int", default: 100, min: 1 },
          eps: { type: "string" },
          norm: { type: "string", default: "linf" },
          split: { type: "string" },
          seed: { type: "int", default: 0, min: 0 },
          ...CERTIFY_OPTIONS,
          "data-root": { type: "string" },
          out: { type: "string" },
          json: { type: "flag" },
        },
        "rmoe sweep",
      );
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    for (const k of ["standard", "robust", "data"] as const)
      if (typeof o[k] !== "string") throw new UsageError(`rmoe sweep: --${k} is required`);
    const data = o.data as string;
    if (!isEvalDataset(data)) throw new UsageError(`rmoe sweep: unknown dataset '${data}' (known: cifar10, tinyimagenet)`);
    if (o.norm !== "linf" && o.norm !== "l2")
      throw new UsageError(`rmoe sweep: --norm must be linf or l2, got '${String(o.norm)}'`);
    if (o.space !== "logits" && o.space !== "probs")
      throw new UsageError(`rmoe sweep: --space must be logits or probs, got '${String(o.space)}'`);
    let alphas: number[];
    let eps: number;
    try {
      alphas = parseAlphas(o.alphas as string);
      eps = o.eps === undefined ? (o.norm === "linf" ? 8 / 255 : 0.5) : parseEps(o.eps as string);
    } catch (e) {
      throw new UsageError(`rmoe sweep: ${(e as Error).message}`);
    }
    const attacks = (o.attacks as string)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .map((s) => parseAttackSpec(s).name);
    const certify = certifyOption(o, "rmoe sweep", defaultCertifyEps);
    const split = (o.split as string | undefined) ?? defaultSplit(data);
    checkSplit(data, split);
    const dataset = loadEvalDataset(data, split, o["data-root"] as string | undefined);
    const dataName = `${data} (${split})`;
    const owned: Model[] = [];
    try {
      const standard = loadFitting(resolve(o.standard as string), "--standard", dataset, dataName);
      owned.push(standard);
      const robust = loadFitting(resolve(o.robust as string), "--robust", dataset, dataName);
      owned.push(robust);
      const placed: { label: string; kind: string; model: Model }[] = [];
      if (typeof o.jtdmoe === "string") {
        const m = loadFitting(resolve(o.jtdmoe), "--jtdmoe", dataset, dataName);
        owned.push(m);
        placed.push({ label: "JTDMoE", kind: "jtdmoe", model: m });
      }
      for (const mk of markers) {
        const m = loadFitting(mk.path, `--marker ${mk.label}`, dataset, dataName);
        owned.push(m);
        placed.push({ label: mk.label, kind: "marker", model: m });
      }
      const t = sweepAlphas(
        standard,
        robust,
        dataset,
        alphas,
        {
          attacks,
          eps,
          norm: o.norm,
          n: o.n as number,
          batchSize: o.batch as number,
          seed: o.seed as number,
          space: o.space,
          certify,
          onPoint: (done, total, label) => process.stderr.write(`rmoe sweep: ${done}/${total} ${label}\n`),
        },
        placed,
      );
      const report: SweepReport = {
        kind: "sweep",
        schema: SWEEP_SCHEMA,
        version: 1,
        source: { standard: o.standard as string, robust: o.robust as string, dataset: data, split },
        ...t,
      };
      const json = `${JSON.stringify(report, null, 2)}\n`;
      if (typeof o.out === "string") writeFileAtomic(resolve(o.out), json);
      if (o.json === true) {
        process.stdout.write(json);
        return 0;
      }
      const certEps = report.certify?.eps ?? [];
      const epsLabel = (e: number) => (report.certify?.norm === "l2" ? String(e) : formatEps(e));
      const head = [
        "alpha",
        "SA",
        ...report.attacks.map((a) => `RA ${a}`),
        "RA worst",
        ...certEps.map((e) => `cert ${epsLabel(e)}`),
      ];
      const row = (
        label: string,
        p: { sa: number; ra: Record<string, number>; worst: number | null; certified: CertifiedAt[] | null },
      ) => [
        label,
        percent(p.sa),
        ...report.attacks.map((a) => percent(p.ra[a] ?? null)),
        percent(p.worst),
        ...certEps.map((e) => percent(p.certified?.find((c) => c.eps === e)?.accuracy ?? null)),
      ];
      const rows = [
        head,
        ...report.points.map((p) => row(String(p.alpha), p)),
        ...report.markers.map((m) => row(`${m.label}${m.alpha === null ? "" : ` (alpha ${m.alpha})`}`, m)),
      ];
      process.stdout.write(
        `dual-model sweep: ${report.source.standard} + ${report.source.robust}, ${dataName}, n=${report.points[0]?.n ?? 0}, ${report.threatModel.norm} eps ${formatEps(eps)}${report.certify === null ? "" : `; certified by ${report.certify.method} (${report.certify.norm})`}\n${alignColumns(rows, `l${"r".repeat(head.length - 1)}`)}\n`,
      );
      return 0;
    } finally {
      for (const m of owned) m.dispose();
    }
  });
}
