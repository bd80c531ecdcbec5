// `rmoe demo`: the paper's whole pipeline on real CIFAR-10, as stages that each leave files in
// the run directory: prepare the data, train a standard MoE, an RT-ER MoE and a JTDMoE dual
// model, evaluate them (SA, RA, RA-E, RA-R), sweep alpha, certify, write adversarial examples,
// and build the report. Every stage runs the `rmoe` command in its own process (so each frees
// its memory, and each is exactly what a user would type), is skipped when its output exists,
// and a training stage that was interrupted resumes from its last checkpoint.
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { runStages, type Stage } from "../pipeline/stages.js";
import { formatDuration } from "../train/progress.js";

export interface DemoOptions {
  out: string;
  quick: boolean;
  dataRoot?: string;
  /** Where progress lines go (default stderr). */
  log?: (line: string) => void;
}

function settings(quick: boolean) {
  return quick
    ? {
        preset: "ci-tiny",
        train: ["--epochs", "2", "--attack-steps", "2", "--set", "data.trainSize=512"],
        evalN: "100",
        evalAttacks: "pgd10",
        moeSteps: "10",
        sweepN: "100",
        alphas: "0:1:0.25",
        certifyN: "50",
        smoothingN: "20",
        samples: "200",
      }
    : {
        preset: "cpu-cifar10",
        train: [] as string[],
        evalN: "500",
        evalAttacks: "pgd20,apgd-ce",
        moeSteps: "20",
        sweepN: "500",
        alphas: "0:1:0.2",
        certifyN: "200",
        smoothingN: "50",
        samples: "1000",
      };
}

export function demoStages(o: DemoOptions): Stage[] {
  const s = settings(o.quick);
  const dir = resolve(o.out);
  const root = o.dataRoot === undefined ? [] : ["--data-root", o.dataRoot];
  const run = (name: string) => join(dir, "runs", name);
  const train = (name: string, method: string): Stage => ({
    id: `train-${name}`,
    title: `train the ${name} model (${method}, preset ${s.preset})`,
    weight: method === "standard" ? 0.06 : 0.33,
    output: join(run(name), "model.safetensors"),
    args: () =>
      existsSync(join(run(name), "last.safetensors"))
        ? ["train", "--resume", run(name), ...root]
        : ["train", "--preset", s.preset, "--method", method, "--out", run(name), ...s.train, ...root],
  });
  const model = (name: string) => join(run(name), "model.safetensors");
  const evalStage = (name: string): Stage => ({
    id: `eval-${name}`,
    title: `evaluate the ${name} model: SA, RA, RA-E, RA-R (n=${s.evalN})`,
    weight: 0.03,
    output: join(dir, `eval-${name}.json`),
    stdoutTo: join(dir, `eval-${name}.json`),
    args: () => [
      "eval",
      "--ckpt",
      model(name),
      "--data",
      "cifar10",
      "--n",
      s.evalN,
      "--attacks",
      s.evalAttacks,
      "--moe-steps",
      s.moeSteps,
      "--json",
      ...root,
    ],
  });
  return [
    {
      id: "data",
      title: "prepare CIFAR-10",
      weight: 0.01,
      output: join(dir, ".data-ready"),
      marker: true,
      // `rmoe data` names the cache --root (the other commands: --data-root).
      args: () => ["data", "prepare", "cifar10", ...(o.dataRoot === undefined ? [] : ["--root", o.dataRoot])],
    },
    train("standard", "standard"),
    train("rt-er", "rt-er"),
    train("jtdmoe", "jtdmoe"),
    evalStage("standard"),
    evalStage("rt-er"),
    evalStage("jtdmoe"),
    {
      id: "sweep",
      title: `sweep alpha ${s.alphas} of the post-hoc dual model (n=${s.sweepN})`,
      weight: 0.08,
      output: join(dir, "sweep.json"),
      args: () => [
        "sweep",
        "--standard",
        model("standard"),
        "--robust",
        model("rt-er"),
        "--jtdmoe",
        model("jtdmoe"),
        "--marker",
        `RT-ER alone=${model("rt-er")}`,
        "--data",
        "cifar10",
        "--alphas",
        s.alphas,
        "--attacks",
        "pgd20",
        "--n",
        s.sweepN,
        "--out",
        join(dir, "sweep.json"),
        ...root,
      ],
    },
    {
      id: "certify-ibp",
      title: `certify the RT-ER MoE with IBP (n=${s.certifyN})`,
      weight: 0.01,
      output: join(dir, "certify-ibp.json"),
      args: () => [
        "certify",
        "--ckpt",
        model("rt-er"),
        "--data",
        "cifar10",
        "--method",
        "ibp",
        "--n",
        s.certifyN,
        "--kind",
        "rt-er",
        "--label",
        "RT-ER MoE",
        "--out",
        join(dir, "certify-ibp.json"),
        ...root,
      ],
    },
    {
      id: "certify-smoothing",
      title: `certify the JTDMoE dual model with randomized smoothing (n=${s.smoothingN})`,
      weight: 0.04,
      output: join(dir, "certify.json"),
      args: () => [
        "certify",
        "--ckpt",
        model("jtdmoe"),
        "--data",
        "cifar10",
        "--method",
        "smoothing",
        "--n",
        s.smoothingN,
        "--samples",
        s.samples,
        "--kind",
        "jtdmoe",
        "--label",
        "JTDMoE dual model",
        "--out",
        join(dir, "certify.json"),
        ...root,
      ],
    },
    {
      id: "certify-smoothing-rt-er",
      title: `certify the RT-ER MoE with randomized smoothing (n=${s.smoothingN})`,
      weight: 0.04,
      output: join(dir, "certify-smoothing-rt-er.json"),
      args: () => [
        "certify",
        "--ckpt",
        model("rt-er"),
        "--data",
        "cifar10",
        "--method",
        "smoothing",
        "--n",
        s.smoothingN,
        "--samples",
        s.samples,
        "--kind",
        "rt-er",
        "--label",
        "RT-ER MoE",
        "--out",
        join(dir, "certify-smoothing-rt-er.json"),
        ...root,
      ],
    },
    {
      id: "attack",
      title: "adversarial examples of the RT-ER MoE for the gallery",
      weight: 0.01,
      output: join(dir, "adv-rt-er.safetensors"),
      args: () => [
        "attack",
        "--ckpt",
        model("rt-er"),
        "--data",
        "cifar10",
        "--attack",
        "pgd20",
        "--n",
        "16",
        "--out",
        join(dir, "adv-rt-er.safetensors"),
        ...root,
      ],
    },
    {
      id: "report",
      title: "write the report",
      weight: 0.01,
      output: join(dir, "report", "index.html"),
      args: () => [
        "report",
        `standard=${run("standard")}`,
        `RT-ER=${run("rt-er")}`,
        `JTDMoE=${run("jtdmoe")}`,
        "--eval",
        `standard=${join(dir, "eval-standard.json")}`,
        `RT-ER=${join(dir, "eval-rt-er.json")}`,
        `JTDMoE=${join(dir, "eval-jtdmoe.json")}`,
        "--sweep",
        join(dir, "sweep.json"),
        "--certify",
        join(dir, "certify.json"),
        "--certify",
        join(dir, "certify-smoothing-rt-er.json"),
        "--certify",
        join(dir, "certify-ibp.json"),
        "--adv",
        join(dir, "adv-rt-er.safetensors"),
        "--title",
        `robust-moe demo${o.quick ? " (quick)" : ""}`,
        "--out",
        join(dir, "report"),
      ],
    },
  ];
}

/** Runs the stages not yet done; returns the report path. Throws naming the stage that failed. */
export async function runDemo(o: DemoOptions): Promise<string> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = resolve(o.out);
  mkdirSync(join(dir, "runs"), { recursive: true });
  const seconds = await runStages("rmoe demo", demoStages(o), log);
  const report = join(dir, "report", "index.html");
  log(`rmoe demo: finished in ${formatDuration(seconds)}; report: ${report}`);
  return report;
}
