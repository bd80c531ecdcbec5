// `rmoe eval`: robustness of a checkpoint on a prepared dataset (docs/EVAL.md). Also the
// pieces `rmoe attack` shares: the threat-model options and loading a checkpoint that fits
// the dataset.
import { existsSync, statSync, writeFileSync } from "node:fs";
import type { Norm } from "../attacks/attack.js";
import { CERTIFY_METHODS, type CertifyMethod, certifyNorm } from "../certify/batch-certifier.js";
import type { ImageDataset } from "../data/dataset.js";
import { type Progress, streamProgress } from "../data/progress.js";
import { allgatherBytes } from "../dist/gather.js";
import type { ProcessGroup } from "../dist/process-group.js";
import { parseAttackList } from "../eval/attack-spec.js";
import { shardSampleCount } from "../eval/batches.js";
import { checkSplit, defaultSplit, type EvalDatasetName, isEvalDataset, loadEvalDataset } from "../eval/datasets.js";
import { parseEps } from "../eval/eps.js";
import { evaluateRecord, reportFromRecord } from "../eval/evaluate.js";
import { loadRecord, recordFromFlags, recordToFlags, saveRecord } from "../eval/flags-file.js";
import { mergeRecords } from "../eval/merge.js";
import { checkModelFitsData } from "../eval/model-fit.js";
import type { CertifySettings } from "../eval/options.js";
import type { EvalRecord } from "../eval/record.js";
import { formatReportJson, formatReportTable } from "../eval/report-format.js";
import { parseShard, type Shard } from "../eval/shard.js";
import { loadCheckpoint, readCheckpointConfig } from "../io/checkpoint.js";
import type { Model, ModelConfig } from "../models/config.js";
import { DualModel } from "../models/dual.js";
import { type OptionSpec, type ParsedOptions, parseOptions } from "./args.js";
import { DIST_HELP, DIST_OPTIONS, startDistributed } from "./dist-options.js";

export const EVAL_SUMMARY = `eval --ckpt FILE --data cifar10 [--attacks pgd50,apgd-ce] [--n N] [--json]
                                             SA, RA per attack and worst case, RA-E, RA-R, route flips,
                                             per-class accuracy, expert usage (docs/EVAL.md)
  eval merge FLAGS... --out REPORT           merge the flags of sharded runs into one report`;

export const COMMON_HELP = `  --ckpt FILE          a checkpoint written by saveCheckpoint (required)
  --data NAME          cifar10 or tinyimagenet (required)
  --eps EPS            radius: '8/255' or a number (default 8/255 for linf, 0.5 for l2)EPS_LIST
  --norm linf|l2       threat model (default linf)
  --n N                the first N images of the split (default DEFAULT_N)
  --split NAME         cifar10: test or train; tinyimagenet: val or train (default test / val)
  --batch B            images per batch (default 100)
  --seed S             seeds each attack on each batch from (S, attack, batch) (default 0)
  --restarts R         PGD and APGD restarts (default 1)
  --apgd-steps K       APGD iterations for apgd-ce, apgd-dlr, apgd-t and aa (default 100)
  --queries Q          Square's queries for square, aa and aa-plus (default 5000, AutoAttack's)
  --alpha A            dual model: use this alpha instead of the checkpoint's
  --resize S           resize images to SxS first (bilinear, antialiased; e.g. 224 for ViT-small/16
                       on TinyImageNet); the attack then works on the resized images
  --data-root DIR      dataset cache (default $RMOE_DATA, else ~/.cache/robust-moe)`;

const ATTACK_LIST_HELP = `attacks: fgsm, pgd<steps> (e.g. pgd10, pgd50; L-inf/L2 PGD with step eps/4, which is 2/255
  at 8/255), apgd-ce, apgd-dlr (APGD on CE / DLR), apgd-t (targeted APGD-DLR, 9 targets),
  square (the Square attack, --queries), aa (AutoAttack standard: APGD-CE, APGD-T, FAB-T,
  Square), aa-plus, aa-rand (AutoAttack's other versions), aa-fast (a cheaper, weaker suite)`;

export const EVAL_USAGE = `usage: rmoe eval --ckpt FILE --data cifar10|tinyimagenet [options]
       rmoe eval merge FLAGS... --out REPORT [--json] [--save-flags FILE]

Evaluates a checkpoint (docs/EVAL.md): SA; RA under each attack and the per-sample worst
case over them, with Clopper-Pearson intervals; RA against eps; per-class accuracy; for a
MoE, and for each MoE member of a dual model (attacked alone), expert usage, RA-E, RA-R and
route-flip rates; samples with all-zero input gradients.

options:
  --attacks LIST       comma-separated attacks (default pgd50; 'none': SA only)
${COMMON_HELP.replace("DEFAULT_N", "1000").replace(
  "EPS_LIST",
  `
                       or a list, '2/255,4/255,8/255': every attack runs at each radius
                       (one curve per attack); the largest is the threat model of the rest`,
)}
  --moe-steps K        PGD steps of RA-E and RA-R (default 50)
  --no-moe-attacks     skip RA-E and RA-R (expert usage and route flips are still reported)
  --masking-checks     run the gradient-masking checks on the first batch and print them
  --certify M          certified accuracy beside SA and RA (docs/CERTIFY.md): ibp (L-inf),
                       smoothing (L2, randomized smoothing) or lipschitz (--certify-norm); a
                       certified sample that an attack at the same radius broke is flagged
  --certify-eps LIST   its radii (default: the --eps list when the norms agree, else
                       0.125,0.25,0.5,1)
  --certify-norm N     lipschitz: linf (default) or l2
  --sigma S            smoothing noise std (0.25)   --samples N  its Monte Carlo samples (1000)
  --certify-alpha A    smoothing failure probability (0.001)
  --confidence L       level of the Clopper-Pearson intervals (default 0.95)
  --save-flags FILE    write every per-sample flag (JSON) so that runs combine
  --shard I/N          evaluate only shard I of N (batches I-1, I-1+N, ...; needs --save-flags);
                       rmoe eval merge joins the shards into the report of one run
${DIST_HELP}
  --json               print the report as JSON (schema in docs/EVAL.md) instead of a table

merge: reads the flags files of shards 1/N..N/N of one evaluation and writes the report of
the whole evaluation to --out (JSON; the same numbers as one run, timings summed), printing
the table (or --json the JSON) on stdout; --save-flags also writes the merged flags.

${ATTACK_LIST_HELP}

The table (or JSON) goes to stdout; progress to stderr (a bar with the time left on a
terminal, otherwise a plain line every 10 s). Exit codes: 0 ok; 1 error (unknown attack,
missing or unfitting checkpoint, dataset not prepared); 2 usage error.
`;

export class UsageError extends Error {}

/** Options shared by `rmoe eval` and `rmoe attack`. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  ckpt: { type: "string" },
  data: { type: "string" },
  eps: { type: "string" },
  norm: { type: "string", default: "linf" },
  split: { type: "string" },
  batch: { type: "int", default: 100, min: 1 },
  seed: { type: "int", default: 0, min: 0 },
  restarts: { type: "int", default: 1, min: 1 },
  "apgd-steps": { type: "int", default: 100, min: 1 },
  queries: { type: "int", default: 5000, min: 1 },
  alpha: { type: "float" },
  resize: { type: "int", min: 1 },
  "data-root": { type: "string" },
};

export function parseCommandOptions(argv: readonly string[], spec: Record<string, OptionSpec>, command: string): ParsedOptions {
  try {
    return parseOptions(argv, spec, command);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** The validated shared options. */
export interface CommonSettings {
  ckpt: string;
  data: EvalDatasetName;
  split: string;
  /** The threat model: the largest of the --eps list. */
  eps: number;
  /** Every radius of --eps, as given. */
  epsList: number[];
  norm: Norm;
  n: number;
  batch: number;
  seed: number;
  restarts: number;
  apgdSteps: number;
  queries: number;
  alpha: number | undefined;
  resize: number | undefined;
  dataRoot: string | undefined;
}

/** Checks the shared options; problems are usage errors. */
export function commonSettings(o: ParsedOptions, command: string): CommonSettings {
  const ckpt = o.ckpt;
  if (typeof ckpt !== "string" || ckpt === "") throw new UsageError(`${command}: --ckpt FILE is required`);
  const data = o.data;
  if (typeof data !== "string") throw new UsageError(`${command}: --data is required (cifar10 or tinyimagenet)`);
  if (!isEvalDataset(data)) throw new UsageError(`${command}: unknown dataset '${data}' (known: cifar10, tinyimagenet)`);
  const norm = o.norm;
  if (norm !== "linf" && norm !== "l2") throw new UsageError(`${command}: --norm must be linf or l2, got '${String(norm)}'`);
  let epsList: number[];
  try {
    epsList = o.eps === undefined ? [norm === "linf" ? 8 / 255 : 0.5] : (o.eps as string).split(",").map(parseEps);
  } catch (e) {
    throw new UsageError(`${command}: --eps: ${(e as Error).message}`);
  }
  const eps = Math.max(...epsList);
  const split = (o.split as string | undefined) ?? defaultSplit(data);
  try {
    checkSplit(data, split);
  } catch (e) {
    throw new UsageError(`${command}: --split: ${(e as Error).message}`);
  }
  const alpha = o.alpha as number | undefined;
  if (alpha !== undefined && !(alpha >= 0 && alpha <= 1))
    throw new UsageError(`${command}: --alpha must be in [0, 1], got ${alpha}`);
  return {
    ckpt,
    data,
    split,
    eps,
    epsList,
    norm,
    n: o.n as number,
    batch: o.batch as number,
    seed: o.seed as number,
    restarts: o.restarts as number,
    apgdSteps: o["apgd-steps"] as number,
    queries: o.queries as number,
    alpha,
    resize: o.resize as number | undefined,
    dataRoot: o["data-root"] as string | undefined,
  };
}

export interface Target {
  model: Model;
  config: ModelConfig;
  dataset: ImageDataset;
}

/**
 * Loads the dataset and the checkpoint, checking that the checkpoint exists, is a robust-moe
 * checkpoint and fits the dataset (classes, image shape) before its weights are read, and
 * applies --alpha. Errors name the problem (exit 1).
 */
export function loadTarget(s: CommonSettings): Target {
  if (!existsSync(s.ckpt)) throw new Error(`checkpoint not found: ${s.ckpt}`);
  if (!statSync(s.ckpt).isFile()) throw new Error(`checkpoint ${s.ckpt} is not a file`);
  let config: ModelConfig;
  try {
    config = readCheckpointConfig(s.ckpt).config;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(
      `cannot read checkpoint ${s.ckpt}: ${message.startsWith(s.ckpt) ? message.slice(s.ckpt.length + 2) : message}`,
    );
  }
  if (s.alpha !== undefined && config.kind !== "dual") {
    throw new Error(`--alpha applies to dual models only; ${s.ckpt} holds a ${config.kind} model`);
  }
  const dataset = loadEvalDataset(s.data, s.split, s.dataRoot);
  const [c, h, w] = dataset.imageShape;
  const shape = s.resize === undefined ? dataset.imageShape : ([c, s.resize, s.resize] as const);
  const dataName = `${s.data} (${s.split}${s.resize === undefined ? "" : `, resized to ${s.resize}x${s.resize} from ${h}x${w}`})`;
  checkModelFitsData(config, { classes: dataset.classes, imageShape: shape }, `checkpoint ${s.ckpt}`, dataName);
  const { model } = loadCheckpoint(s.ckpt);
  if (s.alpha !== undefined && model instanceof DualModel) model.alpha = s.alpha;
  return { model, config, dataset };
}

/** Progress on stderr as the data commands show it, fed by EvalProgress updates. */
export function evalProgress(label: string, total: number): { progress: Progress; update: (done: number) => void } {
  const progress = streamProgress(process.stderr);
  progress.start(label, total, "images");
  return { progress, update: (done) => progress.update(done) };
}

/** Runs a command body, mapping usage errors to exit code 2 and other errors to 1. */
export async function runCommand(command: string, usage: string, body: () => Promise<number> | number): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n\n${usage}`);
      return 2;
    }
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${command}: ${message}\n`);
    return 1;
  }
}

/** `rmoe eval merge FLAGS... --out REPORT`: the report of a sharded evaluation. */
export async function evalMergeCommand(argv: readonly string[]): Promise<number> {
  return runCommand("rmoe eval merge", EVAL_USAGE, () => {
    const files: string[] = [];
    const rest: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i] as string;
      if (a.startsWith("--")) {
        rest.push(a);
        if (a !== "--json" && i + 1 < argv.length) rest.push(argv[++i] as string);
      } else {
        files.push(a);
      }
    }
    const o = parseCommandOptions(
      rest,
      { out: { type: "string" }, json: { type: "flag" }, "save-flags": { type: "string" } },
      "rmoe eval merge",
    );
    if (files.length === 0) throw new UsageError("rmoe eval merge: give the flags files of the shards");
    if (typeof o.out !== "string" || o.out === "") throw new UsageError("rmoe eval merge: --out REPORT is required");
    const merged = mergeRecords(files.map(loadRecord));
    const report = reportFromRecord(merged);
    writeFileSync(o.out, formatReportJson(report));
    if (typeof o["save-flags"] === "string") saveRecord(o["save-flags"], merged);
    process.stdout.write(o.json === true ? formatReportJson(report) : formatReportTable(report));
    return 0;
  });
}

/** The --certify options of `rmoe eval` and `rmoe sweep`. */
export const CERTIFY_OPTIONS: Record<string, OptionSpec> = {
  certify: { type: "string" },
  "certify-eps": { type: "string" },
  "certify-norm": { type: "string", default: "linf" },
  sigma: { type: "float", default: 0.25 },
  samples: { type: "int", default: 1000, min: 1 },
  "certify-alpha": { type: "float", default: 0.001 },
};

/** rmoe certify's default radii, by the certificate's norm. */
export function defaultCertifyEps(norm: "linf" | "l2"): number[] {
  return norm === "l2" ? [0.125, 0.25, 0.5, 1] : [1 / 255, 2 / 255, 4 / 255, 8 / 255];
}

/**
 * --certify and its settings, checked (null without --certify). Without --certify-eps the
 * radii are fallbackEps's for the certificate's norm, or (no fallback) the evaluation's.
 */
export function certifyOption(
  o: ParsedOptions,
  command = "rmoe eval",
  fallbackEps?: (norm: "linf" | "l2") => number[],
): CertifySettings | null {
  const method = o.certify as string | undefined;
  if (method === undefined) return null;
  if (!(CERTIFY_METHODS as readonly string[]).includes(method))
    throw new UsageError(`${command}: --certify must be one of ${CERTIFY_METHODS.join(", ")}, got '${method}'`);
  const norm = o["certify-norm"];
  if (norm !== "linf" && norm !== "l2")
    throw new UsageError(`${command}: --certify-norm must be linf or l2, got '${String(norm)}'`);
  if (!((o.sigma as number) > 0)) throw new UsageError(`${command}: --sigma must be > 0, got ${String(o.sigma)}`);
  const alpha = o["certify-alpha"] as number;
  if (!(alpha > 0 && alpha < 1)) throw new UsageError(`${command}: --certify-alpha must be in (0, 1), got ${alpha}`);
  let eps: number[] | undefined;
  if (typeof o["certify-eps"] === "string") {
    try {
      eps = [...new Set(o["certify-eps"].split(",").map((e) => parseEps(e.trim())))].sort((a, b) => a - b);
    } catch (e) {
      throw new UsageError(`${command}: --certify-eps: ${(e as Error).message}`);
    }
  }
  if (eps === undefined && fallbackEps !== undefined) eps = fallbackEps(certifyNorm({ method: method as CertifyMethod, norm }));
  return {
    method: method as CertifyMethod,
    norm,
    ...(eps === undefined ? {} : { eps }),
    sigma: o.sigma as number,
    samples: o.samples as number,
    alpha,
  };
}

/** `rmoe eval ...`; returns the exit code (0 ok, 1 error, 2 usage error). */
export async function evalCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "merge") {
    if (argv.includes("--help") || argv.includes("-h")) {
      process.stdout.write(EVAL_USAGE);
      return 0;
    }
    return evalMergeCommand(argv.slice(1));
  }
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(EVAL_USAGE);
    return 0;
  }
  return runCommand("rmoe eval", EVAL_USAGE, async () => {
    const o = parseCommandOptions(
      argv,
      {
        ...COMMON_OPTIONS,
        attacks: { type: "string", default: "pgd50" },
        n: { type: "int", default: 1000, min: 1 },
        "moe-steps": { type: "int", default: 50, min: 1 },
        "no-moe-attacks": { type: "flag" },
        "masking-checks": { type: "flag" },
        ...CERTIFY_OPTIONS,
        confidence: { type: "float" },
        "save-flags": { type: "string" },
        shard: { type: "string" },
        json: { type: "flag" },
        ...DIST_OPTIONS,
      },
      "rmoe eval",
    );
    // Data parallel: every rank evaluates shard rank+1 of worldSize, rank 0 merges and reports.
    const started = await startDistributed("eval", o, argv);
    if ("launched" in started) return started.launched;
    const group = started.group;
    if (group !== null && typeof o.shard === "string")
      throw new UsageError("rmoe eval: --shard and a process group both split the evaluation; give one");
    const s = commonSettings(o, "rmoe eval");
    let shard: Shard | null = group === null ? null : { index: group.rank + 1, count: group.worldSize };
    if (typeof o.shard === "string") {
      try {
        shard = parseShard(o.shard);
      } catch (e) {
        throw new UsageError(`rmoe eval: --shard: ${(e as Error).message}`);
      }
      if (typeof o["save-flags"] !== "string") {
        throw new UsageError("rmoe eval: --shard needs --save-flags FILE (rmoe eval merge reads the shards' flags)");
      }
    }
    const confidence = o.confidence as number | undefined;
    if (confidence !== undefined && !(confidence > 0 && confidence < 1)) {
      throw new UsageError(`rmoe eval: --confidence must be in (0, 1), got ${confidence}`);
    }
    const attacks = parseAttackList(o.attacks as string);
    const certify = certifyOption(o);
    const { model, dataset } = loadTarget(s);
    try {
      const total = shardSampleCount(dataset, { limit: s.n, batchSize: s.batch, shard }) ?? 0;
      const { progress, update } = evalProgress(shard === null ? "rmoe eval" : `rmoe eval (shard ${o.shard})`, total);
      const record = evaluateRecord(model, dataset, {
        attacks,
        eps: s.eps,
        curveEps: s.epsList,
        norm: s.norm,
        restarts: s.restarts,
        apgdSteps: s.apgdSteps,
        queries: s.queries,
        moeAttacks: o["no-moe-attacks"] !== true,
        moeSteps: o["moe-steps"] as number,
        maskingChecks: o["masking-checks"] === true,
        certify,
        n: s.n,
        batchSize: s.batch,
        ...(s.resize === undefined ? {} : { resize: s.resize }),
        seed: s.seed,
        shard,
        ...(confidence === undefined ? {} : { confidence }),
        source: { checkpoint: s.ckpt, dataset: s.data, split: s.split },
        onProgress: (p) => update(p.done),
      });
      progress.end();
      const merged = group === null ? record : await mergeOverGroup(group, record);
      if (merged === null) return 0;
      if (typeof o["save-flags"] === "string") saveRecord(o["save-flags"], merged);
      const report = reportFromRecord(merged);
      process.stdout.write(o.json === true ? formatReportJson(report) : formatReportTable(report));
      return 0;
    } finally {
      model.dispose();
      await group?.destroy().catch(() => {});
    }
  });
}

/** Every rank's shard record to rank 0, merged there (null on the other ranks). */
async function mergeOverGroup(group: ProcessGroup, record: EvalRecord): Promise<EvalRecord | null> {
  const mine = new TextEncoder().encode(JSON.stringify(recordToFlags(record)));
  const all = await allgatherBytes(group, mine);
  if (group.rank !== 0) return null;
  const text = new TextDecoder();
  return mergeRecords(all.map((b, r) => recordFromFlags(JSON.parse(text.decode(b)), `rank ${r}'s shard`)));
}
