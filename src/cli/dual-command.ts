// `rmoe dual`: a dual-model checkpoint (1 - alpha) F_S + alpha F_R from two trained models.
import { resolve } from "node:path";
import { loadCheckpoint, saveCheckpoint } from "../io/checkpoint.js";
import { DualModel, type MixSpace } from "../models/dual.js";
import { parseOptions } from "./args.js";
import { runCommand, UsageError } from "./eval-command.js";

const USAGE = `usage: rmoe dual --standard A.safetensors --robust B.safetensors --alpha X --out C.safetensors [--space logits|probs]

Writes a dual-model checkpoint F_D = (1 - alpha) F_S + alpha F_R (METHOD.md section 4) from a
standard model A and a robust model B (MoEs or single classifiers, e.g. the model.safetensors or
best.safetensors of two runs). 'logits' (default) mixes logits as the paper's code does; 'probs'
mixes probabilities (what the certificates assume) and outputs the log of the mixture, so that
attacks and CE see the mixture itself. rmoe eval reads the result.
`;

export async function dualCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runCommand("rmoe dual", USAGE, () => {
    let o: ReturnType<typeof parseOptions>;
    try {
      o = parseOptions(
        argv,
        {
          standard: { type: "string" },
          robust: { type: "string" },
          alpha: { type: "float" },
          out: { type: "string" },
          space: { type: "string", default: "logits" },
        },
        "rmoe dual",
      );
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    for (const k of ["standard", "robust", "out"] as const)
      if (typeof o[k] !== "string") throw new UsageError(`rmoe dual: --${k} is required`);
    if (o.alpha === undefined) throw new UsageError("rmoe dual: --alpha X is required (the robust model's weight, in [0, 1])");
    if (typeof o.alpha !== "number" || !(o.alpha >= 0 && o.alpha <= 1))
      throw new UsageError(`rmoe dual: --alpha must be a number in [0, 1], got ${String(o.alpha)}`);
    if (o.space !== "logits" && o.space !== "probs")
      throw new UsageError(`rmoe dual: --space must be logits or probs, got '${String(o.space)}'`);
    const standard = loadCheckpoint(resolve(o.standard as string));
    const robust = loadCheckpoint(resolve(o.robust as string));
    for (const [name, c] of [
      ["--standard", standard],
      ["--robust", robust],
    ] as const) {
      if (c.config.kind === "dual") throw new Error(`${name} is already a dual model; give a MoE or a single classifier`);
    }
    // Mixing outputs needs the same classes (and the same input images) on both sides.
    const classes = (c: typeof standard) =>
      c.config.kind === "moe" ? c.config.experts[0]?.numClasses : c.config.kind === "dual" ? undefined : c.config.numClasses;
    if (classes(standard) !== classes(robust)) {
      standard.model.dispose();
      robust.model.dispose();
      throw new Error(
        `--standard predicts ${classes(standard)} classes but --robust ${classes(robust)}; a dual model mixes outputs of the same classes`,
      );
    }
    const dual = new DualModel(standard.model, robust.model, { alpha: o.alpha, space: o.space as MixSpace });
    try {
      saveCheckpoint(resolve(o.out as string), dual, {
        "robust-moe.dual": JSON.stringify({ standard: o.standard, robust: o.robust }),
      });
    } finally {
      dual.dispose();
    }
    process.stdout.write(`rmoe dual: wrote ${o.out} (alpha ${o.alpha}, ${o.space})\n`);
    return 0;
  });
}
