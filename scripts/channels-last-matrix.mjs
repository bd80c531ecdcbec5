#!/usr/bin/env node
// The channels-last crash matrix: which configurations may train channels-last on this
// LibTorch. LibTorch 1.13 crashes (SIGSEGV or abort) in the backward of some channels-last
// ResNet18s once the batch size changes; a crash kills the process, so every case runs in its
// own child process and the parent records how it ended. The result is written as
// src/nn/channels-last-table.ts (committed), which nn/channels-last.ts reads: a configuration
// is allowed only if all its cases finished.
//
//   node scripts/channels-last-matrix.mjs [--quick] [--repeat N] [--out FILE]   (after npx tsc -p .)
//   node scripts/channels-last-matrix.mjs --case MODEL WIDTH PRECISION B1,B2,...  (one case)
//   node scripts/channels-last-matrix.mjs --guarded MODEL WIDTH PRECISION B1,...  (the same steps,
//     channels-last only where the committed table allows it: the fallback path, for tests)
//
// A case builds the model, converts it to channels-last, and for each batch size in turn runs a
// training step and a PGD input gradient in eval mode, on 2 intra-op threads, as training and
// its attacks do. resnet18: one clean SGD step (forward and loss under the precision, backward).
// moe: a 4-expert top-1 MoE of ResNet18s trained with the real RT-ER step (trainStep: PGD-1 on
// the MoE and on each runner-up expert, the concurrent expert backward), whose expert
// sub-batches change with every step. A first version ran only clean steps on the MoE and saw
// no crash at widths 2-8, where RT-ER training then crashed (heap corruption): the cases must
// run the code paths training runs.
//   --only MODEL  rerun that model's cases and keep the other rows of the committed table
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);

async function runCase(model, width, precision, batches, guarded = false) {
  const lib = await import(join(root, "dist/src/index.js"));
  const { F, autograd, manualSeed, rand, randint, scope, setNumThreads, withPrecision, models, nn, optim } = lib;
  setNumThreads(2);
  manualSeed(0);
  const net =
    model === "moe"
      ? new models.MoE(
          Array.from({ length: 4 }, () => new models.ResNet18({ numClasses: 10, width })),
          { k: 1 },
        )
      : new models.ResNet18({ numClasses: 10, width });
  let layout = "channelsLast";
  if (guarded) {
    const r = nn.resolveMemoryFormat("channelsLast", { model, width, precision });
    if (r.notice !== null) process.stderr.write(`${r.notice}\n`);
    layout = r.format;
  }
  net.to({ memoryFormat: layout });
  const opt = new optim.SGD(net.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  let rtEr = null;
  if (model === "moe") {
    const { methodSpec } = await import(join(root, "dist/src/train/methods/index.js"));
    const { trainStep } = await import(join(root, "dist/src/train/trainer.js"));
    const method = methodSpec("rt-er").create(net, {
      attack: { eps: 8 / 255, stepSize: 2 / 255, steps: 1, randomStart: true },
      beta: 6,
      alpha: 0.5,
      loadBalancing: 0.01,
    });
    rtEr = (x, y) => trainStep(net, method, [{ optimizer: opt }], { x, y }, { precision });
  }
  for (const b of batches) {
    scope(() => {
      const x = rand([b, 3, 32, 32]).contiguous(layout);
      const y = randint(0, 10, [b]);
      if (rtEr !== null) {
        rtEr(x, y);
      } else {
        net.train();
        opt.zeroGrad();
        const loss = withPrecision(precision, () => F.crossEntropy(net.forward(x), y));
        loss.backward();
        opt.step();
      }
      net.eval();
      const xa = x.clone().requiresGrad_();
      const [g] = autograd.grad(
        withPrecision(precision, () => F.crossEntropy(net.forward(xa), y)),
        xa,
      );
      if (!Number.isFinite(g.abs().sum().item())) throw new Error("non-finite input gradient");
    });
  }
  opt.dispose();
  net.dispose();
  process.stdout.write(`layout ${layout}\n`);
}

function describeExit(r) {
  if (r.error !== undefined) return { outcome: "error", exit: r.error.message };
  if (r.signal !== null) return { outcome: "crash", exit: r.signal };
  if (r.status === 0) return { outcome: "ok", exit: 0 };
  // 134 = abort through a shell; node reports an uncaught C++ abort as a signal, a JS error as 1.
  return { outcome: r.status === 134 || r.status === 139 ? "crash" : "error", exit: r.status };
}

function matrix(quick, only) {
  const widths = quick ? [4, 16] : [2, 4, 8, 16, 32, 64];
  const cases = [];
  for (const precision of ["fp32", "bf16"]) {
    for (const width of widths) {
      const seqs = quick
        ? [[4, 5, 7]]
        : [
            [4, 5, 7],
            [33, 29, 36],
            [128, 97, 131],
          ];
      for (const batches of seqs) cases.push({ model: "resnet18", width, precision, batches });
      // RT-ER steps: routes, hence sub-batch sizes, change from step to step.
      const moeSeqs = quick
        ? [[16, 19]]
        : [
            [32, 32, 32, 32, 32, 32],
            [128, 97, 128],
          ];
      for (const batches of moeSeqs) cases.push({ model: "moe", width, precision, batches });
    }
  }
  return only === null ? cases : cases.filter((c) => c.model === only);
}

function tsTable(measured, cases) {
  const line = (c) =>
    `    { model: "${c.model}", width: ${c.width}, precision: "${c.precision}", batches: [${c.batches.join(", ")}], outcome: "${c.outcome}", exit: ${typeof c.exit === "number" ? c.exit : JSON.stringify(c.exit)}, seconds: ${c.seconds} },`;
  return `// Generated by scripts/channels-last-matrix.mjs: do not edit by hand (rerun the script).
import type { ChannelsLastTable } from "./channels-last.js";

export const CHANNELS_LAST_TABLE: ChannelsLastTable = {
  measured: ${JSON.stringify(measured)},
  cases: [
${cases.map(line).join("\n")}
  ],
};
`;
}

async function main() {
  if (args[0] === "--case" || args[0] === "--guarded") {
    const [, model, width, precision, batches] = args;
    await runCase(model, Number(width), precision, batches.split(",").map(Number), args[0] === "--guarded");
    return;
  }
  const quick = args.includes("--quick");
  const repeatAt = args.indexOf("--repeat");
  const repeat = repeatAt >= 0 ? Number(args[repeatAt + 1]) : 1;
  const outAt = args.indexOf("--out");
  const out = outAt >= 0 ? resolve(args[outAt + 1]) : join(root, "src/nn/channels-last-table.ts");
  const onlyAt = args.indexOf("--only");
  const only = onlyAt >= 0 ? args[onlyAt + 1] : null;
  const results = [];
  if (only !== null) {
    const { CHANNELS_LAST_TABLE } = await import(join(root, "dist/src/nn/channels-last-table.js"));
    results.push(...CHANNELS_LAST_TABLE.cases.filter((c) => c.model !== only));
  }
  for (const c of matrix(quick, only)) {
    let worst = { outcome: "ok", exit: 0 };
    const t0 = performance.now();
    for (let r = 0; r < repeat && worst.outcome === "ok"; r++) {
      const res = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), "--case", c.model, `${c.width}`, c.precision, c.batches.join(",")],
        { encoding: "utf8", timeout: 600_000, env: { ...process.env, RMOE_NUM_THREADS: "2" } },
      );
      worst = describeExit(res);
      if (worst.outcome === "error") process.stderr.write(`${(res.stderr ?? "").trim().split("\n").slice(-3).join("\n")}\n`);
    }
    const seconds = Math.round((performance.now() - t0) / 100) / 10;
    results.push({ ...c, ...worst, seconds });
    process.stderr.write(
      `[matrix] ${c.model} width ${c.width} ${c.precision} batches ${c.batches.join(",")}: ${worst.outcome} (exit ${worst.exit}, ${seconds} s)\n`,
    );
  }
  const lib = await import(join(root, "dist/src/index.js"));
  const measured = {
    date: new Date().toISOString().slice(0, 16).replace("T", " "),
    cpu: cpus()[0]?.model ?? "unknown",
    torch: lib.engineInfo().torchVersion,
    threads: 2,
  };
  writeFileSync(out, tsTable(measured, results));
  // The repository's formatting (quotes, line width), so that the lint stays clean.
  spawnSync(join(root, "node_modules/.bin/biome"), ["format", "--write", out], { stdio: "inherit" });
  process.stderr.write(`[matrix] wrote ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
