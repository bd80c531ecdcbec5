// `rmoe train` and `rmoe dual` end to end, in child processes (`node dist/src/cli/main.js`):
// usage and config errors (no data needed; the main ones in child processes, the many other
// message variants through the same command functions in this process); a seconds-long ci-tiny run whose run directory is
// read back (config.json, metrics.jsonl, the three checkpoints, which also load into PyTorch
// strictly and evaluate with `rmoe eval`); the NaN guard on a diverging run; and dual-model
// checkpoints assembled from two small models. The runs skip with the reason when CIFAR-10
// is not prepared; the PyTorch check skips when /usr/bin/python3 has no torch.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { dualCommand } from "../../src/cli/dual-command.js";
import { trainCommand } from "../../src/cli/train-command.js";
import type { RobustnessReport } from "../../src/eval/index.js";
import { loadCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.js";
import { loadSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { DualModel, MoE, ResNet18 } from "../../src/models/index.js";
import { dispose, isFloatingPoint, manualSeed, memoryStats, noGrad, rand, scope, type Tensor } from "../../src/tensor/index.js";
import { presetNames, presetPath, readConfigFile, resolveConfig } from "../../src/train/config.js";
import { METHOD_NAMES, methodSpec } from "../../src/train/methods/index.js";
import { type RunConfigFile, readMetrics } from "../../src/train/run-dir.js";
import type { Json } from "../../src/train/schema.js";
import { buildOptimizer, buildScheduler, buildTrainModel } from "../../src/train/setup.js";
import { loadTrainState, TRAIN_STATE_KEY } from "../../src/train/train-state.js";
import { cifarSkip } from "../data/real-data.js";
import { assertClose } from "../helpers/close.js";
import { repoRoot, sharedRoot } from "../helpers/paths.js";

const MAIN = join(repoRoot, "dist", "src", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "rmoe-train-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function rmoe(args: readonly string[]): Result {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", cwd: repoRoot, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs several rmoe command lines at once (each is mostly the start-up of node and LibTorch). */
function rmoeAll(commands: readonly (readonly string[])[]): Promise<Result[]> {
  return Promise.all(
    commands.map(
      (args) =>
        new Promise<Result>((done, fail) => {
          const child = spawn(process.execPath, [MAIN, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
          let stdout = "";
          let stderr = "";
          child.stdout.setEncoding("utf8").on("data", (d: string) => {
            stdout += d;
          });
          child.stderr.setEncoding("utf8").on("data", (d: string) => {
            stderr += d;
          });
          const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
          child.on("error", fail);
          child.on("close", (code) => {
            clearTimeout(timer);
            done({ code, stdout, stderr });
          });
        }),
    ),
  );
}

/**
 * Runs a command function in this process with its stderr captured (for the many message
 * checks; each child process costs a LibTorch start-up). Not for commands that write to
 * stdout: that is the test runner's channel.
 */
async function inProcess(command: (argv: readonly string[]) => Promise<number>, argv: readonly string[]): Promise<Result> {
  const write = process.stderr.write;
  let stderr = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await command(argv), stdout: "", stderr };
  } finally {
    process.stderr.write = write;
  }
}

const show = (r: Result) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** The tiny run: 64 training images in batches of 16 (4 steps), 32 validation images, PGD-1. */
const TINY_OVERRIDES: [string, string][] = [
  ["data.trainSize", "64"],
  ["data.valSize", "32"],
  ["batchSize", "16"],
  ["epochs", "1"],
  ["attack.steps", "1"],
  ["validation.attackSteps", "1"],
  ["logEvery", "2"],
];
const TINY_ARGS = [
  "--preset",
  "ci-tiny",
  "--set",
  "data.trainSize=64",
  "--set",
  "data.valSize=32",
  "--batch-size",
  "16",
  "--epochs",
  "1",
  "--attack-steps",
  "1",
  "--set",
  "validation.attackSteps=1",
  "--set",
  "logEvery=2",
  "--quiet",
];

function allFinite(tensors: Map<string, Tensor>, what: string): void {
  let checked = 0;
  for (const [k, t] of tensors) {
    if (!isFloatingPoint(t.dtype)) continue;
    const bad = t.toFlatArray().findIndex((v) => !Number.isFinite(v));
    assert.equal(bad, -1, `${what}: ${k} has a non-finite element at ${bad}`);
    checked++;
  }
  assert.ok(checked > 10, `${what}: only ${checked} floating-point tensors`);
}

function sameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: different keys`);
  for (const [k, t] of a) {
    const u = b.get(k) as Tensor;
    assert.deepEqual(t.shape, u.shape, `${what}: ${k} shape`);
    assert.deepEqual(t.toFlatArray(), u.toFlatArray(), `${what}: ${k} differs`);
  }
}

describe("rmoe train: usage and config errors", () => {
  it("--help exits 0 and lists every method and preset", () => {
    const r = rmoe(["train", "--help"]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^usage: rmoe train --preset/);
    for (const m of METHOD_NAMES) assert.match(r.stdout, new RegExp(`^ {4}${m} +\\S`, "m"), `method ${m} not listed`);
    const presets = /^presets: (.*)$/m.exec(r.stdout);
    assert.ok(presets !== null, "no presets line");
    assert.deepEqual(presets[1]?.split(", "), presetNames());
    assert.ok(presetNames().length >= 4);
    for (const flag of ["--resume DIR", "--set KEY=VALUE", "--max-steps N", "--lr (optimizer.lr)", "--batch-size (batchSize)"])
      assert.ok(r.stdout.includes(flag), `help lacks ${flag}`);
  });

  it("usage errors exit 2 with the problem and the usage", async () => {
    const out = join(dir, "never");
    const cases: [string[], RegExp][] = [
      [["--preset", "ci-tiny"], /^rmoe train: --out DIR is required \(or --resume DIR\)$/m],
      [
        ["--preset", "ci-tiny", "--out", out, "--bogus", "1"],
        /^rmoe train: unknown option '--bogus' \(see rmoe train --help\)$/m,
      ],
      [
        ["--resume", out, "--preset", "ci-tiny"],
        /^rmoe train: --resume continues a run with its own config; give no --preset, --out or overrides$/m,
      ],
      // In-process from here on (the same code path; a process each costs a LibTorch start-up).
      [["--resume", out, "--lr", "0.1"], /--resume continues a run with its own config/],
      [["--preset", "ci-tiny", "--out", out, "--max-steps", "0"], /--max-steps must be a positive integer, got '0'/],
      [["--preset", "ci-tiny", "--out", out, "--set", "epochs"], /--set needs KEY=VALUE, got 'epochs'/],
      [["--preset", "ci-tiny", "--out"], /option '--out' needs a value/],
      [["--preset", "ci-tiny", "--out", out, "extra"], /unexpected argument 'extra'/],
    ];
    const spawned = await rmoeAll(cases.slice(0, 3).map(([args]) => ["train", ...args]));
    for (const [i, [args, re]] of cases.entries()) {
      const r = spawned[i] ?? (await inProcess(trainCommand, args));
      assert.equal(r.code, 2, `${args.join(" ")}: ${show(r)}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /usage: rmoe train/);
    }
    assert.equal(existsSync(out), false, "a usage error created the run directory");
  });

  it("a bad config exits 1 naming the key and what is allowed, before anything is written", async () => {
    const out = join(dir, "bad-config");
    const tiny = ["--preset", "ci-tiny", "--out", out];
    const cases: [string[], RegExp][] = [
      [
        [...tiny, "--set", "model.gating=soft"],
        /^rmoe train: command line: 'model\.gating' must be one of "topk", "dense", "hard", got "soft"$/m,
      ],
      [[...tiny, "--set", "model.k=3"], /^rmoe train: .*'model\.k' \(3\) cannot exceed model\.experts \(2\)$/m],
      // In-process from here on.
      [[...tiny, "--gating", "soft"], /'model\.gating' must be one of "topk", "dense", "hard"/],
      [[...tiny, "--lr", "fast"], /'optimizer\.lr' must be a number >= 0 \(or a fraction like "8\/255"\), got "fast"/],
      [[...tiny, "--set", "optimizer=adam"], /'optimizer' is a group of settings; set one of its keys \(name, lr, momentum/],
      [[...tiny, "--set", "optimizer.learningRate=1"], /unknown key 'optimizer\.learningRate' \('optimizer' keys: name, lr/],
      [[...tiny, "--experts", "1"], /'model\.experts' must be at least 2 for rt-er/],
      [[...tiny, "--method", "sgd-at"], /'method' must be one of "standard", "pgd-at", "trades", "rt-er", "advmoe", "jtdmoe"/],
      [["--preset", "no-such-preset", "--out", out], /^rmoe train: unknown preset 'no-such-preset' \(presets: .*ci-tiny/m],
      [["--preset", join(dir, "missing.json"), "--out", out], /^rmoe train: .*missing\.json: cannot read/m],
      [["--resume", dir], /^rmoe train: .*: not a run directory \(no config\.json\)$/m],
    ];
    const spawned = await rmoeAll(cases.slice(0, 2).map(([args]) => ["train", "--quiet", ...args]));
    for (const [i, [args, re]] of cases.entries()) {
      const r = spawned[i] ?? (await inProcess(trainCommand, ["--quiet", ...args]));
      assert.equal(r.code, 1, `${args.join(" ")}: ${show(r)}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /usage:/);
    }
    assert.equal(existsSync(out), false, "a config error created the run directory");
  });
});

describe("rmoe train: a short ci-tiny run", { skip: cifarSkip }, () => {
  const run = join(dir, "run");
  let result: Result = { code: null, stdout: "", stderr: "" };
  let seconds = 0;
  before(() => {
    const t0 = performance.now();
    result = rmoe(["train", ...TINY_ARGS, "--out", run]);
    seconds = (performance.now() - t0) / 1000;
  });

  it("exits 0 and says what it did", () => {
    assert.equal(result.code, 0, show(result));
    assert.match(result.stdout, /rmoe train: 4 steps, 1 epochs in [\d.]+ s; best val RA [\d.]+% \(SA [\d.]+%\) at epoch 1/);
    assert.ok(result.stdout.includes(`run directory: ${run}`));
    assert.equal(result.stderr, "", "--quiet printed progress");
    assert.ok(seconds < 60, `the tiny run took ${seconds.toFixed(1)} s`);
  });

  it("config.json holds the version, the machine, the command and the resolved config", () => {
    const file = JSON.parse(readFileSync(join(run, "config.json"), "utf8")) as RunConfigFile;
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
    assert.equal(file.version, pkg.version);
    assert.ok(!Number.isNaN(Date.parse(file.createdAt)));
    assert.deepEqual(file.command, ["rmoe", "train", ...TINY_ARGS, "--out", run]);
    const machine = file.machine as Record<string, unknown>;
    for (const k of ["hostname", "platform", "cpu", "cores", "memoryGiB", "node", "torch", "threads", "cuda"])
      assert.ok(k in machine, `machine.${k} missing`);
    assert.equal(machine.node, process.version);
    assert.ok((machine.cores as number) >= 1);
    const expected = resolveConfig(readConfigFile(presetPath("ci-tiny")), TINY_OVERRIDES, presetPath("ci-tiny"));
    assert.deepEqual(file.config, expected);
    assert.equal(file.config.attack.eps, 8 / 255, "fractions are stored resolved");
    assert.equal(file.config.batchSize, 16);
  });

  it("metrics.jsonl has step lines and an epoch line with real numbers", () => {
    const lines = readMetrics(run);
    const steps = lines.filter((l) => l.type === "step");
    const epochs = lines.filter((l) => l.type === "epoch");
    assert.equal(lines.length, steps.length + epochs.length, "a line of another type");
    assert.deepEqual(
      steps.map((l) => l.step),
      [2, 4],
      "logEvery 2 over 4 steps",
    );
    for (const l of steps) {
      assert.equal(l.epoch, 0);
      for (const k of ["loss", "ce", "kl", "acc", "lr", "imagesPerSecond", "rssMB"]) {
        assert.equal(typeof l[k], "number", `step ${l.step}: ${k} is ${JSON.stringify(l[k])}`);
        assert.ok(Number.isFinite(l[k] as number), `step ${l.step}: ${k} = ${l[k]}`);
      }
      const [loss, ce, kl, acc] = [l.loss, l.ce, l.kl, l.acc] as number[];
      assert.ok(ce > 0.5 && ce < 10, `ce ${ce}: not a 10-class cross-entropy near chance`);
      assert.ok(kl >= 0, `kl ${kl}`);
      assert.ok(Math.abs(loss - (ce + 6 * kl)) < 1e-5 * loss, `RT-ER loss ${loss} != ce + beta * kl`);
      assert.ok(acc >= 0 && acc <= 1 && Number.isInteger(acc * 16), `acc ${acc} is not a fraction of 16`);
      assert.ok((l.imagesPerSecond as number) > 0);
      assert.ok(Number.isInteger(l.rssMB) && (l.rssMB as number) > 50, `rssMB ${l.rssMB}`);
    }
    // Cosine from 0.05 over 4 steps: after step 2, 0.025; after step 4, 0.
    assert.ok(Math.abs((steps[0]?.lr as number) - 0.025) < 1e-12, `lr after step 2: ${steps[0]?.lr}`);
    assert.ok(Math.abs(steps[1]?.lr as number) < 1e-12, `lr after step 4: ${steps[1]?.lr}`);
    assert.equal(epochs.length, 1);
    const e = epochs[0] as Record<string, unknown>;
    assert.equal(e.epoch, 0);
    assert.equal(e.step, 4);
    assert.equal(e.valN, 32);
    const [clean, robust] = [e.valClean, e.valRobust] as number[];
    assert.ok(clean >= 0 && clean <= 1 && Number.isInteger(clean * 32), `valClean ${clean}`);
    assert.ok(robust >= 0 && robust <= clean, `valRobust ${robust} (valClean ${clean})`);
    assert.match(e.valAttack as string, /^PGD-1 \(linf, ce\) eps 0\.03137$/);
    assert.equal(e.trainLoss, steps[1]?.loss);
  });

  it("writes last, best and model checkpoints; best and model load, and are the final weights", () => {
    for (const f of ["last", "best", "model"]) assert.ok(existsSync(join(run, `${f}.safetensors`)), `${f}.safetensors`);
    const start = memoryStats().liveTensors;
    const best = loadCheckpoint(join(run, "best.safetensors"));
    const model = loadCheckpoint(join(run, "model.safetensors"));
    try {
      for (const c of [best, model]) {
        assert.equal(c.config.kind, "moe");
        if (c.config.kind !== "moe") return;
        assert.equal(c.config.experts.length, 2);
        assert.deepEqual(
          c.config.experts.map((e) => (e.kind === "resnet18" ? e.width : -1)),
          [2, 2],
        );
        assert.equal(c.config.k, 1);
        assert.ok(c.model instanceof MoE);
        const meta = JSON.parse(c.metadata["robust-moe.train"] ?? "null") as { method: string; step: number; seed: number };
        assert.deepEqual([meta.method, meta.step, meta.seed], ["rt-er", 4, 0]);
      }
      // One epoch: the best model is the final one, and both are the model of the last state.
      sameTensors(best.model.stateDict(), model.model.stateDict(), "best vs model");
      const last = loadSafetensors(join(run, "last.safetensors"));
      try {
        const fromLast = new Map<string, Tensor>();
        for (const [k, v] of last.tensors) if (k.startsWith("model.")) fromLast.set(k.slice(6), v);
        sameTensors(model.model.stateDict(), fromLast, "model vs last");
        const state = JSON.parse(last.metadata[TRAIN_STATE_KEY] ?? "null") as {
          step: number;
          epoch: number;
          batch: number;
          best: { robustAccuracy: number; cleanAccuracy: number; epoch: number } | null;
        };
        assert.deepEqual([state.step, state.epoch, state.batch], [4, 1, 0]);
        const epochLine = readMetrics(run).find((l) => l.type === "epoch");
        assert.equal(state.best?.robustAccuracy, epochLine?.valRobust);
        assert.equal(state.best?.cleanAccuracy, epochLine?.valClean);
      } finally {
        dispose(last.tensors);
      }
    } finally {
      best.model.dispose();
      model.model.dispose();
    }
    assert.equal(memoryStats().liveTensors, start, "leaked tensors");
  });

  const PYTHON = "/usr/bin/python3";
  const torchSkip =
    spawnSync(PYTHON, ["-c", "import torch"]).status !== 0
      ? "Debian python3-torch is not installed (/usr/bin/python3 cannot import torch)"
      : !existsSync(join(sharedRoot, "reference", "models.py"))
        ? `the PyTorch twins ${join(sharedRoot, "reference", "models.py")} are not beside this checkout`
        : false;
  for (const file of ["best", "model"]) {
    it(`${file}.safetensors loads into PyTorch with strict=True and gives our logits`, { skip: torchSkip }, () => {
      const ckpt = loadCheckpoint(join(run, `${file}.safetensors`));
      const probe = join(dir, `${file}-torch.safetensors`);
      manualSeed(3);
      const x = rand([4, 3, 32, 32]);
      let ours: number[] = [];
      try {
        ckpt.model.eval();
        ours = scope(() => noGrad(() => ckpt.model.forward(x)).toFlatArray());
        // The checkpoint's own tensors, as saved, under the helper's "w." prefix.
        const { tensors } = loadSafetensors(join(run, `${file}.safetensors`));
        const entries = new Map<string, Tensor>([["x", x]]);
        for (const [k, v] of tensors) entries.set(`w.${k}`, v);
        saveSafetensors(probe, entries);
        dispose(tensors);
      } finally {
        x.dispose();
        ckpt.model.dispose();
      }
      const r = spawnSync(PYTHON, [join(repoRoot, "test", "helpers", "torch_load_check.py"), "moe:2:2:1:0", probe], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, `PyTorch could not load ${file}.safetensors strictly:\n${r.stderr}`);
      const theirs = (JSON.parse(r.stdout) as { logits: number[] }).logits;
      assert.equal(theirs.length, 40);
      assertClose(ours, theirs, { atol: 1e-5, rtol: 1e-4 }, `${file}.safetensors logits in PyTorch`);
    });
  }

  it("rmoe eval reads best.safetensors", () => {
    const r = rmoe([
      "eval",
      "--ckpt",
      join(run, "best.safetensors"),
      "--data",
      "cifar10",
      "--n",
      "16",
      "--attacks",
      "fgsm",
      "--json",
    ]);
    assert.equal(r.code, 0, show(r));
    const report = JSON.parse(r.stdout) as RobustnessReport;
    assert.equal(report.n, 16);
    assert.equal(report.model.kind, "moe");
    assert.equal(report.source.checkpoint, join(run, "best.safetensors"));
    assert.ok(report.clean.accuracy >= 0 && report.clean.accuracy <= 1);
    assert.equal(report.clean.accuracy, report.clean.correct / 16);
    assert.deepEqual(
      report.attacks.map((a) => a.spec),
      ["fgsm"],
    );
    assert.ok((report.attacks[0]?.correct as number) <= report.clean.correct);
  });
});

describe("rmoe train: the NaN guard", { skip: cifarSkip }, () => {
  // SGD at 1e12 moves the weights by ~1e12 on the first step; the second forward overflows.
  const DIVERGE = [
    "--preset",
    "ci-tiny",
    "--method",
    "standard",
    "--lr",
    "1000000000000",
    "--set",
    "data.trainSize=256",
    "--set",
    "data.valSize=32",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--set",
    "logEvery=1",
    "--quiet",
  ];

  it("stops with exit 1 naming the step and the term, and keeps a finite, loadable last checkpoint", () => {
    const run = join(dir, "nan");
    const r = rmoe(["train", ...DIVERGE, "--set", "checkpointEvery=1", "--out", run]);
    assert.equal(r.code, 1, show(r));
    const m =
      /rmoe train: step (\d+): loss term '(\w+)' is (NaN|-?Infinity); stopping \(the last good checkpoint (\S+) is kept\)/.exec(
        r.stderr,
      );
    assert.ok(m !== null, `no divergence message in: ${r.stderr}`);
    const step = Number(m[1]);
    assert.ok(step >= 2 && step <= 16, `diverged at step ${step}`);
    assert.ok(["loss", "ce"].includes(m[2] as string), `term '${m[2]}'`);
    assert.equal(m[4], join(run, "last.safetensors"));
    // The steps before it were logged with finite losses; nothing after it.
    const logged = readMetrics(run);
    assert.deepEqual(
      logged.map((l) => l.step),
      Array.from({ length: step - 1 }, (_, i) => i + 1),
    );
    for (const l of logged) assert.ok(Number.isFinite(l.loss as number), `step ${l.step}: loss ${l.loss}`);
    assert.equal(existsSync(join(run, "model.safetensors")), false, "a diverged run wrote a final model");
    assert.equal(existsSync(join(run, "best.safetensors")), false, "no validation ran, so no best model");

    const last = join(run, "last.safetensors");
    const { tensors, metadata } = loadSafetensors(last);
    try {
      allFinite(tensors, "last.safetensors");
      const state = JSON.parse(metadata[TRAIN_STATE_KEY] ?? "null") as { step: number };
      assert.equal(state.step, step - 1, "the last checkpoint is the step before the divergence");
    } finally {
      dispose(tensors);
    }
    // And it restores into the run's model and optimizer.
    const file = JSON.parse(readFileSync(join(run, "config.json"), "utf8")) as RunConfigFile;
    const c = resolveConfig(file.config as unknown as Json, []);
    const model = buildTrainModel(c);
    const method = methodSpec(c.method).create(model, {
      attack: c.attack,
      beta: c.beta,
      alpha: c.alpha,
      loadBalancing: c.loadBalancing,
    });
    const optimizers = method.levels.map((l) => buildOptimizer(l.parameters, c));
    try {
      const schedulers = optimizers.map((o) => buildScheduler(o, c, 256 / 16));
      const s = loadTrainState(last, { model, optimizers, schedulers });
      assert.deepEqual([s.step, s.epoch, s.batch, s.best], [step - 1, 0, step - 1, null]);
      allFinite(model.stateDict(), "the restored model");
      // The schedule was restored too: cosine over 16 steps, (step - 1) of them done.
      const lr = optimizers[0]?.paramGroups[0]?.lr as number;
      const want = c.optimizer.lr * 0.5 * (1 + Math.cos((Math.PI * (step - 1)) / 16));
      assert.ok(Math.abs(lr - want) <= 1e-9 * want, `restored lr ${lr}, expected ${want}`);
    } finally {
      for (const o of optimizers) o.dispose();
      model.dispose();
    }
  });

  it("before the first checkpoint it says none was written", () => {
    const run = join(dir, "nan-early");
    const r = rmoe(["train", ...DIVERGE, "--set", "checkpointEvery=100", "--out", run]);
    assert.equal(r.code, 1, show(r));
    assert.match(
      r.stderr,
      /rmoe train: step \d+: loss term '\w+' is (NaN|-?Infinity); stopping \(no checkpoint was written yet\)/,
    );
    assert.equal(existsSync(join(run, "last.safetensors")), false);
  });
});

describe("rmoe dual", () => {
  const a = join(dir, "dual-a.safetensors");
  const b = join(dir, "dual-b.safetensors");
  const out = {
    ab: join(dir, "dual-ab.safetensors"),
    probs: join(dir, "dual-probs.safetensors"),
    one: join(dir, "dual-one.safetensors"),
  };
  let made: Result[] = [];
  before(async () => {
    manualSeed(5);
    // A MoE and a single classifier, with BatchNorm statistics moved off their initial values.
    const models = [new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]), new ResNet18({ width: 2 })];
    for (const [i, m] of models.entries()) {
      scope(() => noGrad(() => m.forward(rand([8, 3, 32, 32]))));
      saveCheckpoint(i === 0 ? a : b, m);
      m.dispose();
    }
    made = await rmoeAll([
      ["dual", "--standard", a, "--robust", b, "--alpha", "0.3", "--out", out.ab],
      ["dual", "--standard", a, "--robust", b, "--alpha", "0.25", "--out", out.probs, "--space", "probs"],
      ["dual", "--standard", a, "--robust", b, "--alpha", "1", "--out", out.one],
    ]);
  });

  /** Logits of the checkpoint at path on x, in eval mode. */
  function logits(path: string, x: Tensor): number[] {
    const c = loadCheckpoint(path);
    try {
      c.model.eval();
      return scope(() => noGrad(() => c.model.forward(x)).toFlatArray());
    } finally {
      c.model.dispose();
    }
  }

  /** Row-wise softmax of [rows, 10] logits given flat. */
  function softmaxRows(flat: readonly number[]): number[] {
    const result: number[] = [];
    for (let i = 0; i < flat.length; i += 10) {
      const row = flat.slice(i, i + 10);
      const max = Math.max(...row);
      const e = row.map((v) => Math.exp(v - max));
      const sum = e.reduce((acc, v) => acc + v, 0);
      result.push(...e.map((v) => v / sum));
    }
    return result;
  }

  const TOL = { atol: 1e-6, rtol: 1e-6 };

  it("writes (1 - alpha) F_A + alpha F_B as a loadable DualModel", () => {
    const r = made[0] as Result;
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^rmoe dual: wrote .*dual-ab\.safetensors \(alpha 0\.3, logits\)$/m);
    const c = loadCheckpoint(out.ab);
    manualSeed(9);
    const x = rand([5, 3, 32, 32]);
    try {
      assert.ok(c.model instanceof DualModel);
      assert.equal(c.model.alpha, 0.3);
      assert.equal(c.model.space, "logits");
      assert.equal(c.config.kind, "dual");
      if (c.config.kind === "dual") assert.deepEqual([c.config.standard.kind, c.config.robust.kind], ["moe", "resnet18"]);
      assert.deepEqual(JSON.parse(c.metadata["robust-moe.dual"] ?? "null"), { standard: a, robust: b });
      c.model.eval();
      const got = scope(() => noGrad(() => c.model.forward(x)).toFlatArray());
      const fa = logits(a, x);
      const fb = logits(b, x);
      assert.equal(got.length, 50);
      assertClose(
        got,
        fa.map((v, i) => 0.7 * v + 0.3 * (fb[i] as number)),
        TOL,
        "dual logits vs 0.7 F_A(x) + 0.3 F_B(x)",
      );
      // A real mixture: the two models disagree.
      assert.ok(Math.max(...fa.map((v, i) => Math.abs(v - (fb[i] as number)))) > 1e-3);
    } finally {
      x.dispose();
      c.model.dispose();
    }
  });

  it("--space probs mixes probabilities; alpha 1 is the robust model alone", () => {
    for (const r of made.slice(1)) assert.equal(r.code, 0, show(r));
    const p = loadCheckpoint(out.probs);
    try {
      assert.ok(p.model instanceof DualModel);
      assert.deepEqual([p.model.space, p.model.alpha], ["probs", 0.25]);
    } finally {
      p.model.dispose();
    }
    manualSeed(10);
    const x = rand([3, 3, 32, 32]);
    try {
      const fa = logits(a, x);
      const fb = logits(b, x);
      const [pa, pb] = [softmaxRows(fa), softmaxRows(fb)];
      assertClose(
        logits(out.probs, x).map(Math.exp),
        pa.map((v, i) => 0.75 * v + 0.25 * (pb[i] as number)),
        TOL,
        "probs-space dual",
      );
      assertClose(logits(out.one, x), fb, TOL, "alpha 1");
    } finally {
      x.dispose();
    }
  });

  it("bad inputs: exit 2 for usage, 1 for files, each naming the problem, and no output written", async () => {
    const bad = join(dir, "dual-bad.safetensors");
    const missing = join(dir, "no-such.safetensors");
    // A run's last.safetensors is a training state, not a model checkpoint.
    const trainState = join(dir, "a-train-state.safetensors");
    manualSeed(1);
    const m = new ResNet18({ width: 2 });
    saveSafetensors(trainState, new Map([...m.stateDict()].map(([k, v]) => [`model.${k}`, v])));
    m.dispose();
    const ok = ["--standard", a, "--robust", b];
    const cases: [string[], 1 | 2, RegExp][] = [
      [[...ok, "--out", bad], 2, /^rmoe dual: --alpha X is required/m],
      [[...ok, "--alpha", "2", "--out", bad], 2, /^rmoe dual: --alpha must be a number in \[0, 1\], got 2$/m],
      [
        ["--standard", out.ab, "--robust", b, "--alpha", "0.3", "--out", bad],
        1,
        /^rmoe dual: --standard is already a dual model; give a MoE or a single classifier$/m,
      ],
      [
        ["--standard", a, "--robust", missing, "--alpha", "0.3", "--out", bad],
        1,
        /^rmoe dual: .*no-such\.safetensors: cannot open/m,
      ],
      // In-process from here on.
      [[...ok, "--alpha", "-0.1", "--out", bad], 2, /--alpha must be a number in \[0, 1\], got -0\.1/],
      [[...ok, "--alpha", "half", "--out", bad], 2, /option '--alpha' must be a number, got 'half'/],
      [[...ok, "--alpha", "0.3"], 2, /^rmoe dual: --out is required$/m],
      [["--robust", b, "--alpha", "0.3", "--out", bad], 2, /^rmoe dual: --standard is required$/m],
      [[...ok, "--alpha", "0.3", "--out", bad, "--space", "mix"], 2, /--space must be logits or probs, got 'mix'/],
      [[...ok, "--alpha", "0.3", "--out", bad, "--bogus", "1"], 2, /unknown option '--bogus'/],
      [["--standard", a, "--robust", out.ab, "--alpha", "0.3", "--out", bad], 1, /^rmoe dual: --robust is already a dual model/m],
      [
        ["--standard", trainState, "--robust", b, "--alpha", "0.3", "--out", bad],
        1,
        /^rmoe dual: .*a-train-state\.safetensors: not a robust-moe checkpoint/m,
      ],
    ];
    const spawned = await rmoeAll(cases.slice(0, 4).map(([args]) => ["dual", ...args]));
    for (const [i, [args, code, re]] of cases.entries()) {
      const r = spawned[i] ?? (await inProcess(dualCommand, args));
      assert.equal(r.code, code, `${args.join(" ")}: ${show(r)}`);
      assert.match(r.stderr, re);
      if (code === 2) assert.match(r.stderr, /usage: rmoe dual/);
      else assert.doesNotMatch(r.stderr, /usage:/);
    }
    assert.equal(existsSync(bad), false, "a failed rmoe dual wrote its output");
  });
});
