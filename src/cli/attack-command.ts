// `rmoe attack`: adversarial examples of a checkpoint for inspection, written to a
// safetensors file (docs/EVAL.md, "Adversarial examples").
import { resolve } from "node:path";
import { generateAdversarial, saveAdversarial } from "../eval/adversarial-examples.js";
import { parseAttackSpec } from "../eval/attack-spec.js";
import { formatEps } from "../eval/eps.js";
import { percent } from "../eval/report-format.js";
import { dispose } from "../tensor/scope.js";
import {
  COMMON_HELP,
  COMMON_OPTIONS,
  commonSettings,
  evalProgress,
  loadTarget,
  parseCommandOptions,
  runCommand,
  UsageError,
} from "./eval-command.js";

export const ATTACK_SUMMARY = `attack --ckpt FILE --data cifar10 --attack pgd50 --out adv.safetensors [--n N]
                                             writes adversarial examples for inspection`;

export const ATTACK_USAGE = `usage: rmoe attack --ckpt FILE --data cifar10|tinyimagenet --attack NAME --out FILE [options]

Runs one attack on the first N images and writes a safetensors file with x_adv, x, y,
pred_clean and pred_adv, and metadata (attack, eps, norm, checkpoint, robust accuracy...).

options:
  --attack NAME        one attack: fgsm, pgd<steps>, apgd-ce, apgd-dlr, apgd-t, square, aa (required)
  --out FILE           where to write the safetensors file (required)
${COMMON_HELP.replace("DEFAULT_N", "100").replace("EPS_LIST", "")}

Exit codes: 0 ok; 1 error (unknown attack, missing or unfitting checkpoint, dataset not
prepared, file not writable); 2 usage error.
`;

/** `rmoe attack ...`; returns the exit code (0 ok, 1 error, 2 usage error). */
export async function attackCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(ATTACK_USAGE);
    return 0;
  }
  return runCommand("rmoe attack", ATTACK_USAGE, () => {
    const o = parseCommandOptions(
      argv,
      { ...COMMON_OPTIONS, attack: { type: "string" }, out: { type: "string" }, n: { type: "int", default: 100, min: 1 } },
      "rmoe attack",
    );
    const s = commonSettings(o, "rmoe attack");
    if (typeof o.attack !== "string") throw new UsageError("rmoe attack: --attack NAME is required (e.g. pgd50)");
    if (typeof o.out !== "string" || o.out === "") throw new UsageError("rmoe attack: --out FILE is required");
    if (s.epsList.length > 1) throw new UsageError("rmoe attack: --eps takes one radius (a list is for rmoe eval)");
    const spec = parseAttackSpec(o.attack);
    const out = o.out;
    const { model, dataset } = loadTarget(s);
    try {
      const total = Math.min(s.n, dataset.length);
      const { progress, update } = evalProgress(`rmoe attack ${spec.name}`, total);
      const ex = generateAdversarial(model, dataset, spec, {
        eps: s.eps,
        norm: s.norm,
        restarts: s.restarts,
        apgdSteps: s.apgdSteps,
        queries: s.queries,
        n: s.n,
        batchSize: s.batch,
        ...(s.resize === undefined ? {} : { resize: s.resize }),
        seed: s.seed,
        onProgress: (p) => update(p.done),
      });
      progress.end();
      try {
        saveAdversarial(out, ex, {
          checkpoint: resolve(s.ckpt),
          dataset: s.data,
          split: s.split,
          seed: String(s.seed),
          ...(s.alpha === undefined ? {} : { alpha: String(s.alpha) }),
          ...(s.resize === undefined ? {} : { resize: String(s.resize) }),
        });
        process.stdout.write(
          `wrote ${ex.n} adversarial examples to ${out}\n` +
            `  attack ${ex.spec}: ${ex.attack}, ${s.norm === "linf" ? "L-inf" : "L2"} eps ${formatEps(ex.eps)}\n` +
            `  clean accuracy ${percent(ex.cleanAccuracy)}, robust accuracy ${percent(ex.robustAccuracy)}\n` +
            "  tensors: x_adv, x (float32 [N, C, H, W] in [0, 1]), y, pred_clean, pred_adv (int64 [N])\n",
        );
      } finally {
        dispose(ex);
      }
      return 0;
    } finally {
      model.dispose();
    }
  });
}
