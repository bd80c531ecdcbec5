// `rmoe certify`: certified accuracy of a checkpoint at each radius (docs/CERTIFY.md).
import { basename, resolve } from "node:path";
import { type CertifyMethod, certifyDataset } from "../certify/run-certify.js";
import { checkSplit, defaultSplit, isEvalDataset, loadEvalDataset } from "../eval/datasets.js";
import { formatEps, parseEps } from "../eval/eps.js";
import { checkModelFitsData } from "../eval/model-fit.js";
import { alignColumns, percent } from "../eval/report-format.js";
import { loadCheckpoint, readCheckpointConfig } from "../io/checkpoint.js";
import { CERTIFY_SCHEMA, CERTIFY_VERSION, type CertifyFile, MODEL_KINDS, type ModelKind } from "../report/inputs.js";
import { machineInfo, writeFileAtomic } from "../train/run-dir.js";
import { parseOptions } from "./args.js";
import { runCommand, UsageError } from "./eval-command.js";

const USAGE = `usage: rmoe certify --ckpt FILE --data cifar10 [--method ibp|smoothing|lipschitz] [--eps LIST] [--n N] [options]

Certified accuracy: the fraction of images whose label is provably the model's prediction
everywhere in the ball of each radius (docs/CERTIFY.md).
  ibp        interval bound propagation, L-inf (through the MoE's router and experts and the
             dual model); deterministic and sound
  smoothing  randomized smoothing (Cohen et al. 2019), L2; holds with probability 1 - alpha
  lipschitz  the paper's Lipschitz-margin radius (Theorem 5.4; 5.5 for a dual model), --norm
             linf or l2; on a normally trained ResNet the bound is vacuous, and says so

options:
  --method M           ibp (default), smoothing or lipschitz
  --norm N             lipschitz: linf (default) or l2
  --eps LIST           radii, comma-separated (default 1/255,2/255,4/255,8/255 for ibp;
                       0.125,0.25,0.5,1 for smoothing)
  --n N                images (default 100)       --split S   default: the test split
  --sigma S            smoothing noise std (0.25)  --samples N  Monte Carlo samples (1000)
  --alpha A            smoothing failure probability (0.001)    --seed S  noise seed (0)
  --kind K             the model's kind in reports (${MODEL_KINDS.join(", ")}; default other)
  --label L            its name in reports (default the file name)
  --data-root DIR      data cache
  --out FILE           write the certificate JSON (what rmoe report draws), atomically
  --json               print that JSON instead of the table
`;

export async function certifyCommand(argv: readonly string[]): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runCommand("rmoe certify", USAGE, () => {
    let o: ReturnType<typeof parseOptions>;
    try {
      o = parseOptions(
        argv,
        {
          ckpt: { type: "string" },
          data: { type: "string" },
          method: { type: "string", default: "ibp" },
          norm: { type: "string", default: "linf" },
          eps: { type: "string" },
          n: { type: "int", default: 100, min: 1 },
          split: { type: "string" },
          sigma: { type: "float", default: 0.25 },
          samples: { type: "int", default: 1000, min: 1 },
          alpha: { type: "float", default: 0.001 },
          seed: { type: "int", default: 0, min: 0 },
          kind: { type: "string", default: "other" },
          label: { type: "string" },
          "data-root": { type: "string" },
          out: { type: "string" },
          json: { type: "flag" },
        },
        "rmoe certify",
      );
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (typeof o.ckpt !== "string") throw new UsageError("rmoe certify: --ckpt FILE is required");
    if (typeof o.data !== "string" || !isEvalDataset(o.data))
      throw new UsageError("rmoe certify: --data cifar10|tinyimagenet is required");
    const method = o.method as string;
    if (method !== "ibp" && method !== "smoothing" && method !== "lipschitz")
      throw new UsageError(`rmoe certify: --method must be ibp, smoothing or lipschitz, got '${method}'`);
    if (o.norm !== "linf" && o.norm !== "l2")
      throw new UsageError(`rmoe certify: --norm must be linf or l2, got '${String(o.norm)}'`);
    if (!(MODEL_KINDS as readonly string[]).includes(o.kind as string))
      throw new UsageError(`rmoe certify: --kind must be one of ${MODEL_KINDS.join(", ")}, got '${String(o.kind)}'`);
    if (!((o.sigma as number) > 0)) throw new UsageError(`rmoe certify: --sigma must be > 0, got ${String(o.sigma)}`);
    if (!((o.alpha as number) > 0 && (o.alpha as number) < 1))
      throw new UsageError(`rmoe certify: --alpha must be in (0, 1), got ${String(o.alpha)}`);
    const l2 = method === "smoothing" || (method === "lipschitz" && o.norm === "l2");
    const defaults = l2 ? "0.125,0.25,0.5,1" : "1/255,2/255,4/255,8/255";
    let eps: number[];
    try {
      eps = ((o.eps as string | undefined) ?? defaults).split(",").map((e) => parseEps(e.trim()));
    } catch (e) {
      throw new UsageError(`rmoe certify: --eps: ${(e as Error).message}`);
    }
    eps = [...new Set(eps)].sort((a, b) => a - b);
    const data = o.data;
    const split = (o.split as string | undefined) ?? defaultSplit(data);
    checkSplit(data, split);
    const ckpt = resolve(o.ckpt);
    const dataset = loadEvalDataset(data, split, o["data-root"] as string | undefined);
    const { config } = readCheckpointConfig(ckpt);
    checkModelFitsData(
      config,
      { classes: dataset.classes, imageShape: dataset.imageShape },
      `checkpoint ${ckpt}`,
      `${data} (${split})`,
    );
    const { model } = loadCheckpoint(ckpt);
    try {
      const r = certifyDataset(model, dataset, {
        method: method as CertifyMethod,
        norm: o.norm as "linf" | "l2",
        eps,
        n: o.n as number,
        sigma: o.sigma as number,
        samples: o.samples as number,
        alpha: o.alpha as number,
        seed: o.seed as number,
        onProgress: (done, total) => process.stderr.write(`\rrmoe certify: ${done}/${total} images`),
      });
      process.stderr.write("\n");
      const file: CertifyFile = {
        schema: CERTIFY_SCHEMA,
        version: CERTIFY_VERSION,
        method: method === "smoothing" ? "randomized-smoothing" : method,
        norm: r.norm,
        data: { dataset: data, split, n: r.n },
        settings:
          method === "ibp"
            ? {}
            : {
                sigma: o.sigma as number,
                samples: o.samples as number,
                n0: 100,
                alpha: o.alpha as number,
                seed: o.seed as number,
              },
        command: ["rmoe", "certify", ...argv].join(" "),
        machine: machineInfo() as CertifyFile["machine"],
        curves: [
          {
            model: (o.label as string | undefined) ?? basename(ckpt),
            kind: o.kind as ModelKind,
            checkpoint: ckpt,
            points: r.eps.map((e, i) => ({ eps: e, certifiedAccuracy: r.certifiedAccuracy[i] as number })),
          },
        ],
      };
      const json = `${JSON.stringify({ ...file, cleanAccuracy: r.cleanAccuracy, seconds: r.seconds }, null, 2)}\n`;
      if (typeof o.out === "string") writeFileAtomic(resolve(o.out), json);
      if (o.json === true) {
        process.stdout.write(json);
        return 0;
      }
      const rows = [
        ["radius", "certified accuracy"],
        ...r.eps.map((e, i) => [
          `${r.norm} ${r.norm === "linf" ? formatEps(e) : String(e)}`,
          percent(r.certifiedAccuracy[i] as number),
        ]),
      ];
      const how =
        method === "ibp"
          ? "IBP (sound, deterministic)"
          : method === "lipschitz"
            ? "Lipschitz margin, c = 2 (sound, deterministic)"
            : `randomized smoothing (sigma ${o.sigma}, ${o.samples} samples, holds with probability 1 - ${o.alpha})`;
      // Over the samples that have a certificate at all (wrong or abstained ones have radius 0).
      const sorted = [...(r.radius ?? [])].filter((v) => v > 0).sort((a, b) => a - b);
      const median = sorted.length === 0 ? null : (sorted[Math.floor(sorted.length / 2)] as number);
      const vacuous = method === "lipschitz" && median !== null && median < 1e-4;
      const radiusLine =
        median === null
          ? ""
          : `median certified radius of the ${sorted.length} samples with one: ${median.toExponential(2)}${vacuous ? " (vacuous: the Lipschitz bound of a deep network is a product over its layers, astronomically loose)" : ""}\n`;
      process.stdout.write(
        `certified accuracy of ${ckpt} on ${data} (${split}), n=${r.n}, ${how}\nclean accuracy ${percent(r.cleanAccuracy)}\n${radiusLine}${alignColumns(rows, "lr")}\n(${r.seconds.toFixed(1)} s)\n`,
      );
      return 0;
    } finally {
      model.dispose();
    }
  });
}
