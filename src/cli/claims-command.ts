// `rmoe claims`: the paper's claims at CPU scale, every row reproducible (docs/RESULTS.md).
import { existsSync } from "node:fs";
import { commandsFile, DEFAULTS, parseRows, parseSeeds } from "../claims/plan.js";
import { runClaims } from "../claims/run.js";
import { parseOptions } from "./args.js";
import { runCommand, UsageError } from "./eval-command.js";

const USAGE = `usage: rmoe claims [--out DIR] [--seeds 0,1,2] [--rows 1,2,...] [--n N] [--aa-n N] [--quick]
                   [--summarize-only] [--resume] [--data-root DIR]

Checks the six claims of issue #13 at CPU scale (preset claims-cifar10, docs/RESULTS.md):
  1  a standard MoE: RA-E far below RA-R (worst case over the router attacks)
  2  RT-ER against PGD-AT, TRADES and AdvMoE: SA, RA under PGD-50 and AutoAttack
  3  the alpha sweep of the post-hoc dual model: SA falls, RA rises
  4  JTDMoE against the post-hoc dual model at the same alpha
  5  certified accuracy against eps (IBP, smoothing, Lipschitz) of the RT-ER MoE and the dual models
  6  router kinds: hard against trainable top-1, with and without load balancing
For each seed it trains the models the selected claims need, evaluates them, sweeps alpha and
certifies, one rmoe command per stage; then writes DIR/claims.json and DIR/results-tables.md
(mean, sample std and per-seed values, a verdict per claim, the command behind every number).
Run it again with the same --out: finished stages are skipped and an interrupted training
resumes from its last checkpoint (--resume says so explicitly and refuses a directory that
holds no earlier run).

options:
  --out DIR         the run directory (default runs/claims, or runs/claims-quick with --quick)
  --seeds LIST      training seeds, e.g. 0,1,2 or 0-2 (default 0,1,2; --quick: 0)
  --rows LIST       claims to run, e.g. 1,3 or 1-6 (default 1-6)
  --n N             images of the PGD evaluations, the sweep and IBP/Lipschitz (default ${DEFAULTS.n}; --quick ${DEFAULTS.quickN})
  --aa-n N          images of the AutoAttack evaluations (default ${DEFAULTS.aaN}; --quick ${DEFAULTS.quickAaN})
  --quick           preset ci-tiny, 1 epoch, few images, weak attacks: checks the machinery
                    in minutes; its numbers mean nothing
  --summarize-only  run nothing: summarize what exists
  --resume          continue the run in --out; an error when DIR holds no earlier rmoe claims
                    run (no DIR/commands.json), so a mistyped --out never starts hours of
                    training from nothing (without --resume a new DIR starts a new run)
  --data-root DIR   data cache (default $RMOE_DATA or ~/.cache/robust-moe)
`;

export async function claimsCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runCommand("rmoe claims", USAGE, async () => {
    let o: ReturnType<typeof parseOptions>;
    let seeds: number[] | undefined;
    let rows: ReturnType<typeof parseRows>;
    try {
      o = parseOptions(
        argv,
        {
          out: { type: "string" },
          seeds: { type: "string" },
          rows: { type: "string", default: "1-6" },
          n: { type: "int", min: 1 },
          "aa-n": { type: "int", min: 1 },
          quick: { type: "flag" },
          "summarize-only": { type: "flag" },
          resume: { type: "flag" },
          "data-root": { type: "string" },
        },
        "rmoe claims",
      );
      seeds = typeof o.seeds === "string" ? parseSeeds(o.seeds) : undefined;
      rows = parseRows(o.rows as string);
    } catch (e) {
      const message = (e as Error).message;
      throw new UsageError(message.startsWith("rmoe claims") ? message : `rmoe claims: ${message}`);
    }
    const quick = o.quick === true;
    const out = (o.out as string | undefined) ?? (quick ? "runs/claims-quick" : "runs/claims");
    // Every run resumes; --resume only adds the check that there is something to resume.
    if (o.resume === true && !existsSync(commandsFile(out))) {
      throw new UsageError(
        `rmoe claims: --resume: ${out} holds no earlier rmoe claims run (no ${commandsFile(out)}); check --out, or drop --resume to start a new run there`,
      );
    }
    const r = await runClaims({
      out,
      seeds: seeds ?? [...(quick ? DEFAULTS.quickSeeds : DEFAULTS.seeds)],
      rows,
      n: (o.n as number | undefined) ?? (quick ? DEFAULTS.quickN : DEFAULTS.n),
      aaN: (o["aa-n"] as number | undefined) ?? (quick ? DEFAULTS.quickAaN : DEFAULTS.aaN),
      quick,
      summarizeOnly: o["summarize-only"] === true,
      ...(typeof o["data-root"] === "string" ? { dataRoot: o["data-root"] } : {}),
    });
    process.stdout.write(`claims: ${r.json}\ntables: ${r.tables}\n`);
    return 0;
  });
}
