// Benchmarks entry point: node dist/bench/main.js <name> [options]  (npm run bench -- <name>)
//
// Each benchmark is one module exporting a Benchmark (see harness.ts): a ComparedBenchmark
// (modes, our step, the reference's arguments; the harness alternates, times and prints)
// or a CustomBenchmark with its own run(). Add one line for it to BENCHMARKS.
// Progress goes to stderr; stdout carries JSON lines, the last ones being the results.
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import type { Precision } from "../src/tensor/autocast.js";
import { BenchError, type Benchmark, type BenchOptions, compare, isCompared, log, runWorker } from "./harness.js";

const BENCHMARKS: Record<string, () => Promise<Benchmark>> = {
  engine: async () => (await import("./engine.js")).engine,
  optim: async () => (await import("./optim.js")).optim,
  moe: async () => (await import("./moe.js")).moe,
  attack: async () => (await import("./attack.js")).attack,
  train: async () => (await import("./train.js")).train,
  autoattack: async () => (await import("./autoattack.js")).autoattack,
  dist: async () => (await import("./dist.js")).dist,
  "attack-precision": async () => (await import("./attack-precision.js")).attackPrecision,
  data: async () => {
    const { runDataBench } = await import("./data.js");
    return {
      name: "data",
      description: "augmented CIFAR-10 training batches per second (no reference)",
      run: async (opts) => {
        await runDataBench({ batchSize: opts.batch });
      },
    };
  },
};

const USAGE = `usage: node dist/bench/main.js <benchmark> [options]   (or: npm run bench -- <benchmark> [options])

benchmarks: ${Object.keys(BENCHMARKS).join(", ")}

options:
  --width N          model width (engine: 64, i.e. ResNet18 64-128-256-512)
  --batch N          batch size (engine: 128)
  --threads N        intra-op threads of both sides (default: all cores, ${availableParallelism()} here)
  --rounds N         alternating ours/reference rounds, median per side (default 3)
  --steps N          timed steps per measurement (default: per mode)
  --warmup N         untimed steps before them (default: per mode)
  --modes a,b        modes to run (default: all)
  --pgd-steps N      PGD iterations of the training attack (train: 10)
  --n N              images to evaluate (autoattack: 1000)
  --ckpt FILE        the model checkpoint (attack-precision)
  --official DIR     the official AutoAttack code, the folder holding autoattack/ (autoattack: /tmp/aa_official)
  --quick            smoke-test size: width 16, batch 32, 1 round (explicit options win)
  --max-wait S       seconds to wait for an idle machine before each measurement (default 600)
  --idle-threshold C other processes' CPU use, in cores, that counts as contention (default 0.15)
  --retries N        re-measure a measurement disturbed by another process (default 2)
  --no-reference     measure our side only
  --match-malloc     give the reference our addon's glibc malloc settings (GLIBC_TUNABLES)
  --profile          count native calls per step and the time spent outside them
  --precision P      fp32 (default) or bf16 (autocast, fp32 master weights) on our side
  --channels-last    our model and batches channels-last (where nn/channels-last.ts allows it)
                     with bf16 or channels-last, the reference runs twice: its default fp32 NCHW
                     (ratio) and the same settings (ratioSameSettings)
`;

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new BenchError(`--${name}: expected a positive integer, got '${v}'`);
  return n;
}

function nonNegative(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new BenchError(`--${name}: expected a non-negative number, got '${v}'`);
  return n;
}

function precisionOf(v: string): Precision {
  if (v !== "fp32" && v !== "bf16") throw new BenchError(`--precision: expected fp32 or bf16, got '${v}'`);
  return v;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      width: { type: "string" },
      batch: { type: "string" },
      threads: { type: "string" },
      rounds: { type: "string" },
      steps: { type: "string" },
      warmup: { type: "string" },
      modes: { type: "string" },
      "pgd-steps": { type: "string" },
      n: { type: "string" },
      official: { type: "string" },
      ckpt: { type: "string" },
      quick: { type: "boolean", default: false },
      "max-wait": { type: "string" },
      "idle-threshold": { type: "string" },
      retries: { type: "string" },
      "no-reference": { type: "boolean", default: false },
      "match-malloc": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      precision: { type: "string", default: "fp32" },
      "channels-last": { type: "boolean", default: false },
      worker: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const name = positionals[0];
  if (values.help || name === undefined) {
    process.stdout.write(USAGE);
    return;
  }
  if (positionals.length > 1) throw new BenchError(`unexpected arguments: ${positionals.slice(1).join(" ")}\n\n${USAGE}`);
  const load = BENCHMARKS[name];
  if (load === undefined) throw new BenchError(`unknown benchmark '${name}' (benchmarks: ${Object.keys(BENCHMARKS).join(", ")})`);
  const bench = await load();
  const d = bench.defaults?.(values.quick) ?? {};
  const warmup = values.warmup === undefined ? undefined : Number(values.warmup);
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) {
    throw new BenchError(`--warmup: expected a non-negative integer, got '${values.warmup}'`);
  }
  const opts: BenchOptions = {
    width: positiveInt("width", values.width) ?? d.width ?? 64,
    batch: positiveInt("batch", values.batch) ?? d.batch ?? 128,
    threads: positiveInt("threads", values.threads) ?? d.threads ?? availableParallelism(),
    rounds: positiveInt("rounds", values.rounds) ?? d.rounds ?? 3,
    steps: positiveInt("steps", values.steps) ?? d.steps,
    warmup: warmup ?? d.warmup,
    modes: values.modes?.split(",").map((m) => m.trim()) ?? d.modes,
    pgdSteps: positiveInt("pgd-steps", values["pgd-steps"]) ?? d.pgdSteps,
    n: positiveInt("n", values.n) ?? d.n,
    official: values.official ?? d.official,
    ckpt: values.ckpt,
    quick: values.quick,
    maxWait: nonNegative("max-wait", values["max-wait"]) ?? 600,
    idleThreshold: nonNegative("idle-threshold", values["idle-threshold"]) ?? 0.15,
    retries: nonNegative("retries", values.retries) ?? 2,
    reference: !values["no-reference"],
    matchMalloc: values["match-malloc"],
    profile: values.profile,
    precision: precisionOf(values.precision),
    channelsLast: values["channels-last"],
  };
  if (!isCompared(bench)) {
    await bench.run(opts);
    return;
  }
  if (values.worker !== undefined) {
    runWorker(bench, values.worker, opts);
    return;
  }
  await compare(bench, opts);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const usage = (e as { code?: unknown }).code?.toString().startsWith("ERR_PARSE_ARGS") === true;
  if (e instanceof BenchError || usage) log(`${(e as Error).message}${usage ? " (see --help)" : ""}`);
  else log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
