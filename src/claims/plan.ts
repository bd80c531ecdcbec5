// The stages behind `rmoe claims` (docs/RESULTS.md): for each seed, the trainings, evaluations,
// the alpha sweep, the dual-model checkpoint and the certificates that the six claims of issue
// #13 need, each one `rmoe` command in its own process through src/pipeline/stages.ts (skipped
// when its output exists, a training resumed from its last checkpoint), exactly as `rmoe demo`
// runs. Every stage carries the command that reproduces it from scratch, which the summary
// prints beside the numbers.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import type { Stage } from "../pipeline/stages.js";
import { presetPath, readConfigFile, resolveConfig } from "../train/config.js";
import { writeFileAtomic } from "../train/run-dir.js";

/** The claims of issue #13, numbered as there. */
export const CLAIM_ROWS = [1, 2, 3, 4, 5, 6] as const;
export type ClaimRow = (typeof CLAIM_ROWS)[number];

/** The models a seed can train: name -> method and the --set overrides that make the variant. */
export const MODELS = {
  standard: { method: "standard", set: [] as string[], title: "standard MoE (top-1 softmax router, load balancing)" },
  "standard-hard": {
    method: "standard",
    // The paper's code: argmax routing with weight 1 and no auxiliary loss, so the router gets no
    // gradient at all (with load balancing it would learn through the softmax of that loss).
    set: ["model.gating=hard", "loadBalancing=0"],
    title: "standard MoE, hard router (never learns)",
  },
  "standard-nolb": {
    method: "standard",
    set: ["loadBalancing=0"],
    title: "standard MoE, top-1 softmax router, no load balancing",
  },
  "pgd-at": { method: "pgd-at", set: [] as string[], title: "PGD-AT MoE" },
  trades: { method: "trades", set: [] as string[], title: "TRADES MoE" },
  advmoe: { method: "advmoe", set: [] as string[], title: "AdvMoE" },
  "rt-er": { method: "rt-er", set: [] as string[], title: "RT-ER MoE" },
  jtdmoe: { method: "jtdmoe", set: [] as string[], title: "JTDMoE dual model" },
} as const;
export type ModelName = keyof typeof MODELS;

/** Which models each claim trains (rows 3 and 4 share one sweep that places JTDMoE as a marker). */
export const ROW_MODELS: Record<ClaimRow, readonly ModelName[]> = {
  1: ["standard"],
  2: ["rt-er", "pgd-at", "trades", "advmoe"],
  3: ["standard", "rt-er", "jtdmoe"],
  4: ["standard", "rt-er", "jtdmoe"],
  5: ["standard", "rt-er", "jtdmoe"],
  6: ["standard", "standard-hard", "standard-nolb"],
};

/** Models evaluated with PGD-50 + RA-E/RA-R, per claim; AutoAttack (`aa`) runs for claim 2's. */
export const ROW_EVALS: Record<ClaimRow, readonly ModelName[]> = {
  1: ["standard"],
  2: ["rt-er", "pgd-at", "trades", "advmoe"],
  3: [],
  4: [],
  5: [],
  6: ["standard", "standard-hard", "standard-nolb"],
};
export const AA_MODELS: readonly ModelName[] = ["rt-er", "pgd-at", "trades", "advmoe"];

/** The certificates of claim 5 (every kind rmoe certify has; the Lipschitz margin in both norms). */
export const CERT_KINDS = {
  ibp: { args: ["--method", "ibp"], title: "IBP (L-inf, sound)", norm: "linf" },
  smoothing: { args: ["--method", "smoothing"], title: "randomized smoothing (L2)", norm: "l2" },
  "lipschitz-linf": { args: ["--method", "lipschitz", "--norm", "linf"], title: "Lipschitz margin (L-inf)", norm: "linf" },
  "lipschitz-l2": { args: ["--method", "lipschitz", "--norm", "l2"], title: "Lipschitz margin (L2)", norm: "l2" },
} as const;
export type CertKind = keyof typeof CERT_KINDS;

/** The models certified for claim 5: the single RT-ER MoE, the post-hoc dual model, JTDMoE. */
export const CERT_MODELS = ["rt-er", "dual", "jtdmoe"] as const;
export type CertModel = (typeof CERT_MODELS)[number];
export const CERT_MODEL_TITLES: Record<CertModel, string> = {
  "rt-er": "RT-ER MoE",
  dual: "post-hoc dual model",
  jtdmoe: "JTDMoE dual model",
};

export interface ClaimsOptions {
  out: string;
  seeds: readonly number[];
  rows: readonly ClaimRow[];
  /** Images of the PGD evaluations, the sweep and the deterministic certificates. */
  n: number;
  /** Images of the AutoAttack evaluations. */
  aaN: number;
  quick: boolean;
  dataRoot?: string;
}

/** Everything about the scale of a run that is not the seed, the rows or the image counts. */
export interface ClaimsSettings {
  preset: string;
  /** Extra `rmoe train` arguments (quick runs only: the scale otherwise lives in the preset). */
  train: readonly string[];
  /** The whole-model attack of the evaluations and the sweep (RA). */
  attack: string;
  /** PGD steps of RA-E and RA-R. */
  moeSteps: number;
  /** Extra `rmoe eval --attacks aa` arguments (quick runs shrink AutoAttack to a smoke run). */
  aaArgs: readonly string[];
  alphas: string;
  smoothingN: number;
  smoothingSamples: number;
  /** The dual model's alpha for claim 5: the preset's (JTDMoE trains at the same alpha). */
  alpha: number;
}

export const DEFAULTS = { seeds: [0, 1, 2], quickSeeds: [0], n: 500, aaN: 200, quickN: 32, quickAaN: 16 } as const;

export function claimsSettings(quick: boolean): ClaimsSettings {
  const preset = quick ? "ci-tiny" : "claims-cifar10";
  // The preset's alpha (after the defaults), so the dual model of claim 5 and JTDMoE agree.
  const alpha = resolveConfig(readConfigFile(presetPath(preset)), [], preset).alpha;
  return quick
    ? {
        preset,
        // ci-tiny has no load balancing; claims-cifar10's 0.01 keeps claim 6's three routers distinct.
        train: [
          "--epochs",
          "1",
          "--attack-steps",
          "1",
          "--set",
          "data.trainSize=256",
          "--set",
          "data.valSize=64",
          "--set",
          "loadBalancing=0.01",
        ],
        attack: "pgd10",
        moeSteps: 5,
        aaArgs: ["--apgd-steps", "5", "--queries", "50"],
        alphas: "0:1:0.5",
        smoothingN: 8,
        smoothingSamples: 100,
        alpha,
      }
    : {
        preset,
        train: [],
        attack: "pgd50",
        moeSteps: 50,
        aaArgs: [],
        alphas: "0:1:0.1",
        smoothingN: 100,
        smoothingSamples: 1000,
        alpha,
      };
}

export type StageKind = "data" | "train" | "eval" | "eval-aa" | "sweep" | "dual" | "certify";

export interface ClaimStage extends Stage {
  kind: StageKind;
  /** null for the data stage (shared by all seeds). */
  seed: number | null;
  /** The claims that read this stage's output. */
  rows: ClaimRow[];
  /** The `rmoe` command (without 'rmoe') that produces the output from scratch. */
  command: readonly string[];
}

/** Where each output of a seed lives (shared by the plan and the summary). */
export function seedPaths(out: string, seed: number, alpha: number) {
  const dir = join(out, `seed-${seed}`);
  return {
    dir,
    run: (m: ModelName) => join(dir, m),
    model: (m: ModelName) => join(dir, m, "model.safetensors"),
    eval: (m: ModelName) => join(dir, `eval-${m}.json`),
    evalAa: (m: ModelName) => join(dir, `eval-aa-${m}.json`),
    sweep: join(dir, "sweep.json"),
    dual: join(dir, `dual-alpha-${alpha}.safetensors`),
    certify: (kind: CertKind, m: CertModel) => join(dir, `certify-${kind}-${m}.json`),
  };
}

/** The file that records which command produced each output (see recordCommand). */
export function commandsFile(out: string): string {
  return join(out, "commands.json");
}

/** Quotes an argument for a POSIX shell when it needs it, so printed commands can be pasted. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function formatCommand(argv: readonly string[]): string {
  return ["rmoe", ...argv].map(shellQuote).join(" ");
}

/** A stage's command as a user would type it: with the redirection of a command that prints JSON. */
export function stageCommand(stage: ClaimStage, argv: readonly string[] = stage.command): string {
  return `${formatCommand(argv)}${stage.stdoutTo === undefined ? "" : ` > ${shellQuote(stage.stdoutTo)}`}`;
}

const TRAIN_WEIGHT: Record<string, number> = {
  standard: 0.03,
  "pgd-at": 0.05,
  trades: 0.06,
  "rt-er": 0.08,
  advmoe: 0.1,
  jtdmoe: 0.1,
};

/** The stages for the given seeds and claims, in the order they run: seed by seed. */
export function claimsStages(o: ClaimsOptions, s: ClaimsSettings = claimsSettings(o.quick)): ClaimStage[] {
  const root = o.dataRoot === undefined ? [] : ["--data-root", o.dataRoot];
  const data = ["--data", "cifar10"];
  const rowsOf = (table: Record<ClaimRow, readonly string[]>, name: string) => o.rows.filter((r) => table[r].includes(name));
  const stages: ClaimStage[] = [
    {
      id: "data",
      kind: "data",
      seed: null,
      rows: [...o.rows],
      title: "prepare CIFAR-10",
      weight: 0.002,
      output: join(o.out, ".data-ready"),
      marker: true,
      // `rmoe data` names its cache option --root (the other commands: --data-root).
      command: ["data", "prepare", "cifar10", ...(o.dataRoot === undefined ? [] : ["--root", o.dataRoot])],
      args: () => ["data", "prepare", "cifar10", ...(o.dataRoot === undefined ? [] : ["--root", o.dataRoot])],
    },
  ];
  for (const seed of o.seeds) {
    const p = seedPaths(o.out, seed, s.alpha);
    const seedArg = ["--seed", String(seed)];
    const models = (Object.keys(MODELS) as ModelName[]).filter((m) => rowsOf(ROW_MODELS, m).length > 0);
    for (const m of models) {
      const def = MODELS[m];
      const fresh = [
        "train",
        "--preset",
        s.preset,
        "--method",
        def.method,
        "--set",
        `seed=${seed}`,
        // The quick settings first, so that a variant's own --set (loadBalancing=0) wins.
        ...s.train,
        ...def.set.flatMap((kv) => ["--set", kv]),
        "--out",
        p.run(m),
        ...root,
      ];
      stages.push({
        id: `seed-${seed}/train-${m}`,
        kind: "train",
        seed,
        rows: rowsOf(ROW_MODELS, m),
        title: `seed ${seed}: train the ${def.title} (${def.method}, preset ${s.preset})`,
        weight: TRAIN_WEIGHT[def.method] ?? 0.05,
        output: p.model(m),
        command: fresh,
        // As rmoe demo: a run killed half way continues from its last checkpoint.
        args: () => (existsSync(join(p.run(m), "last.safetensors")) ? ["train", "--resume", p.run(m), ...root] : fresh),
      });
    }
    for (const m of models.filter((x) => rowsOf(ROW_EVALS, x).length > 0)) {
      const command = [
        "eval",
        "--ckpt",
        p.model(m),
        ...data,
        "--attacks",
        s.attack,
        "--n",
        String(o.n),
        "--moe-steps",
        String(s.moeSteps),
        ...seedArg,
        "--json",
        ...root,
      ];
      stages.push({
        id: `seed-${seed}/eval-${m}`,
        kind: "eval",
        seed,
        rows: rowsOf(ROW_EVALS, m),
        title: `seed ${seed}: evaluate the ${MODELS[m].title}: SA, RA (${s.attack}), RA-E, RA-R (n=${o.n})`,
        weight: 0.04,
        output: p.eval(m),
        stdoutTo: p.eval(m),
        inputs: [p.model(m)],
        command,
        args: () => command,
      });
    }
    if (o.rows.includes(2)) {
      for (const m of AA_MODELS) {
        // A separate evaluation so AutoAttack's n can be smaller; RA-E/RA-R come from the PGD one.
        const command = [
          "eval",
          "--ckpt",
          p.model(m),
          ...data,
          "--attacks",
          "aa",
          ...s.aaArgs,
          "--n",
          String(o.aaN),
          "--no-moe-attacks",
          ...seedArg,
          "--json",
          ...root,
        ];
        stages.push({
          id: `seed-${seed}/eval-aa-${m}`,
          kind: "eval-aa",
          seed,
          rows: [2],
          title: `seed ${seed}: AutoAttack on the ${MODELS[m].title} (n=${o.aaN})`,
          weight: 0.05,
          output: p.evalAa(m),
          stdoutTo: p.evalAa(m),
          inputs: [p.model(m)],
          command,
          args: () => command,
        });
      }
    }
    if (o.rows.includes(3) || o.rows.includes(4)) {
      const command = [
        "sweep",
        "--standard",
        p.model("standard"),
        "--robust",
        p.model("rt-er"),
        "--jtdmoe",
        p.model("jtdmoe"),
        ...data,
        "--alphas",
        s.alphas,
        "--attacks",
        s.attack,
        "--n",
        String(o.n),
        ...seedArg,
        "--out",
        p.sweep,
        ...root,
      ];
      stages.push({
        id: `seed-${seed}/sweep`,
        kind: "sweep",
        seed,
        rows: o.rows.filter((r) => r === 3 || r === 4),
        title: `seed ${seed}: sweep alpha ${s.alphas} of the post-hoc dual model, JTDMoE as a marker (n=${o.n})`,
        weight: 0.1,
        output: p.sweep,
        inputs: [p.model("standard"), p.model("rt-er"), p.model("jtdmoe")],
        command,
        args: () => command,
      });
    }
    if (o.rows.includes(5)) {
      const dual = [
        "dual",
        "--standard",
        p.model("standard"),
        "--robust",
        p.model("rt-er"),
        "--alpha",
        String(s.alpha),
        "--out",
        p.dual,
      ];
      stages.push({
        id: `seed-${seed}/dual`,
        kind: "dual",
        seed,
        rows: [5],
        title: `seed ${seed}: the post-hoc dual model at alpha ${s.alpha}`,
        weight: 0.002,
        output: p.dual,
        inputs: [p.model("standard"), p.model("rt-er")],
        command: dual,
        args: () => dual,
      });
      const ckpt: Record<CertModel, string> = { "rt-er": p.model("rt-er"), dual: p.dual, jtdmoe: p.model("jtdmoe") };
      for (const kind of Object.keys(CERT_KINDS) as CertKind[]) {
        for (const m of CERT_MODELS) {
          const n =
            kind === "smoothing"
              ? ["--n", String(Math.min(s.smoothingN, o.n)), "--samples", String(s.smoothingSamples)]
              : ["--n", String(o.n)];
          const command = [
            "certify",
            "--ckpt",
            ckpt[m],
            ...data,
            ...CERT_KINDS[kind].args,
            ...n,
            ...seedArg,
            "--kind",
            m,
            "--label",
            m === "dual" ? `${CERT_MODEL_TITLES[m]} (alpha ${s.alpha})` : CERT_MODEL_TITLES[m],
            "--out",
            p.certify(kind, m),
            ...root,
          ];
          stages.push({
            id: `seed-${seed}/certify-${kind}-${m}`,
            kind: "certify",
            seed,
            rows: [5],
            title: `seed ${seed}: certify the ${CERT_MODEL_TITLES[m]} with ${CERT_KINDS[kind].title}`,
            weight: kind === "smoothing" ? 0.03 : 0.005,
            output: p.certify(kind, m),
            inputs: [ckpt[m]],
            command,
            args: () => command,
          });
        }
      }
    }
  }
  return stages;
}

/** commands.json: output path (relative to the run directory) -> the command that made it. */
export interface CommandRecord {
  command: string;
  /** What ran the last time (the resume command of a training continued after a kill). */
  lastRun: string;
  at: string;
}

export function readCommands(out: string): Record<string, CommandRecord> {
  const file = commandsFile(out);
  if (!existsSync(file)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); delete it to start the record again`);
  }
  const stages = (parsed as { stages?: unknown }).stages;
  if (typeof stages !== "object" || stages === null || Array.isArray(stages))
    throw new Error(`${file}: field 'stages' must be an object of output -> {command, lastRun, at}`);
  return stages as Record<string, CommandRecord>;
}

/**
 * Records the command of a stage that is about to run. A resumed training keeps the command
 * that started it (the one that reproduces it); only lastRun changes.
 */
export function recordCommand(out: string, stage: ClaimStage, argv: readonly string[]): void {
  const all = readCommands(out);
  const key = relative(out, stage.output);
  const resumed = argv[0] === "train" && argv[1] === "--resume";
  const previous = all[key];
  all[key] = {
    command: resumed && previous !== undefined ? previous.command : stageCommand(stage),
    lastRun: stageCommand(stage, argv),
    at: new Date().toISOString(),
  };
  mkdirSync(dirname(commandsFile(out)), { recursive: true });
  writeFileAtomic(commandsFile(out), `${JSON.stringify({ version: 1, stages: all }, null, 2)}\n`);
}

/** The stages with their args wrapped so each records its command just before it runs. */
export function recordingStages(out: string, stages: readonly ClaimStage[]): ClaimStage[] {
  return stages.map((st) => ({
    ...st,
    args: () => {
      const argv = st.args();
      recordCommand(out, st, argv);
      return argv;
    },
  }));
}

/** '0,1,2' or '0-2' (or both, '0,3-5'): distinct non-negative integers in the given order. */
export function parseSeeds(text: string): number[] {
  return parseList(text, "--seeds", (v) => {
    if (!/^\d+$/.test(v)) throw new Error(`--seeds: '${v}' is not a non-negative integer (e.g. --seeds 0,1,2)`);
    return Number(v);
  });
}

/** '1,2,5' or '1-6': claim numbers 1..6, sorted. */
export function parseRows(text: string): ClaimRow[] {
  const rows = parseList(text, "--rows", (v) => {
    const k = Number(v);
    if (!/^\d+$/.test(v) || !(CLAIM_ROWS as readonly number[]).includes(k))
      throw new Error(`--rows: '${v}' is not a claim of issue #13 (claims are 1 to 6, e.g. --rows 1,3 or --rows 1-6)`);
    return k as ClaimRow;
  });
  return [...rows].sort((a, b) => a - b);
}

function parseList<T extends number>(text: string, what: string, item: (v: string) => T): T[] {
  const out: T[] = [];
  const parts = text.split(",").map((v) => v.trim());
  if (parts.some((v) => v === "")) throw new Error(`${what}: empty entry in '${text}' (give numbers separated by commas)`);
  for (const part of parts) {
    const range = /^(\d+)-(\d+)$/.exec(part);
    const values = range === null ? [item(part)] : expand(item(range[1] as string), item(range[2] as string), part, what);
    for (const v of values) {
      if (out.includes(v)) throw new Error(`${what}: ${v} is given twice in '${text}'`);
      out.push(v);
    }
  }
  return out;
}

function expand<T extends number>(a: T, b: T, part: string, what: string): T[] {
  if (b < a) throw new Error(`${what}: range '${part}' runs backwards`);
  return Array.from({ length: b - a + 1 }, (_, i) => (a + i) as T);
}
