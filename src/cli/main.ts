#!/usr/bin/env node
// rmoe: the robust-moe command line.
import { attackCommand } from "./attack-command.js";
import { certifyCommand } from "./certify-command.js";
import { claimsCommand } from "./claims-command.js";
import { dataCommand } from "./data-command.js";
import { demoCommand } from "./demo-command.js";
import { dualCommand } from "./dual-command.js";
import { evalCommand } from "./eval-command.js";
import { reportCommand } from "./report-command.js";
import { smokeCommand } from "./smoke.js";
import { sweepCommand } from "./sweep-command.js";
import { trainCommand } from "./train-command.js";

const USAGE = `usage: rmoe <command> [options]

commands:
  demo [--out DIR] [--quick]                 the whole pipeline on real CIFAR-10: train, attack,
                                             certify, sweep alpha, report (docs/DEMO.md)
  smoke [--steps N] [--width W] [--batch B]   engine smoke run: LibTorch info, then a ResNet18
                                             fitting one fixed batch (loss must fall)
  data prepare|verify|path <cifar10|tinyimagenet> [--root DIR] [--from PATH]
                                             prepare and verify datasets (docs/DATA.md)
  eval --ckpt FILE --data cifar10 [--attacks pgd50,apgd-ce,apgd-dlr] [--n N] [--json]
                                             SA, RA per attack and worst case, RA-E, RA-R,
                                             route flips, per-class accuracy, --certify M
                                             certified accuracy (docs/EVAL.md)
  eval merge FLAGS... --out REPORT           join the flags of sharded runs (--shard I/N --save-flags F)
                                             into the report of one run
  attack --ckpt FILE --data cifar10 --attack NAME --out FILE
                                             write adversarial examples (safetensors)
  train --preset P --method M --out DIR      train a model (standard, pgd-at, trades, rt-er,
                                             advmoe, jtdmoe); --resume DIR continues exactly
  dual --standard A --robust B --alpha X --out C
                                             assemble a dual-model checkpoint from two models
  sweep --standard A --robust B --data cifar10 [--alphas 0:1:0.1] [--jtdmoe C] [--out F]
                                             the dual model's SA/RA (--certify M: certified
                                             accuracy) over alpha (docs/SWEEP.md)
  report RUN_DIR... [--eval F.json...] [--sweep F] [--certify F]... [--adv F...] --out DIR
                                             an HTML report with plots (docs/REPORT.md)
  certify --ckpt FILE --data cifar10 [--method ibp|smoothing|lipschitz] [--eps LIST]
                                             certified accuracy at each radius (docs/CERTIFY.md)
  claims [--out DIR] [--rows 1,2,...] [--seeds 0,1,2] [--summarize-only] [--resume] [--quick]
                                             the paper's claims at CPU scale, 3 seeds, resumable
                                             (docs/RESULTS.md)
  help                                       this text (rmoe <command> --help for details)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "smoke":
      return smokeCommand(rest);
    case "data":
      return dataCommand(rest);
    case "eval":
      return evalCommand(rest);
    case "attack":
      return attackCommand(rest);
    case "train":
      return trainCommand(rest);
    case "dual":
      return dualCommand(rest);
    case "sweep":
      return sweepCommand(rest);
    case "certify":
      return certifyCommand(rest);
    case "demo":
      return demoCommand(rest);
    case "claims":
      return claimsCommand(rest);
    case "report":
      return reportCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`rmoe: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`rmoe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
