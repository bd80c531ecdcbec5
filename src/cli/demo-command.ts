// `rmoe demo`: the README's main job (docs/DEMO.md).
import { runDemo } from "../demo/demo.js";
import { parseOptions } from "./args.js";
import { runCommand, UsageError } from "./eval-command.js";

const USAGE = `usage: rmoe demo [--out DIR] [--quick] [--data-root DIR]

Runs the paper's pipeline on real CIFAR-10 (docs/DEMO.md): prepares the data, trains a standard
MoE, an RT-ER MoE and a JTDMoE dual model (preset cpu-cifar10), evaluates them (SA, RA, RA-E,
RA-R), sweeps alpha, certifies (IBP and randomized smoothing), writes adversarial examples and
the HTML report, and prints where the report is. Run it again with the same --out: finished
stages are skipped and an interrupted training resumes from its last checkpoint.

options:
  --out DIR        the run directory (default runs/demo, or runs/demo-quick with --quick)
  --quick          tiny models and few images: the whole pipeline in a few minutes
  --data-root DIR  data cache (default $RMOE_DATA or ~/.cache/robust-moe)
`;

export async function demoCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runCommand("rmoe demo", USAGE, async () => {
    let o: ReturnType<typeof parseOptions>;
    try {
      o = parseOptions(argv, { out: { type: "string" }, quick: { type: "flag" }, "data-root": { type: "string" } }, "rmoe demo");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const quick = o.quick === true;
    const report = await runDemo({
      out: (o.out as string | undefined) ?? (quick ? "runs/demo-quick" : "runs/demo"),
      quick,
      ...(typeof o["data-root"] === "string" ? { dataRoot: o["data-root"] } : {}),
    });
    process.stdout.write(`report: ${report}\n`);
    return 0;
  });
}
