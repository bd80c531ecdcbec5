// `rmoe smoke`: proves the engine works end to end on this machine, in seconds.

import { ResNet18 } from "../models/resnet18.js";
import { crossEntropy } from "../nn/functional.js";
import { SGD } from "../optim/sgd.js";
import { rand, randint } from "../tensor/creation.js";
import { engineInfo, manualSeed, memoryStats } from "../tensor/runtime.js";
import { scope } from "../tensor/scope.js";
import { parseOptions } from "./args.js";

export function smokeCommand(argv: readonly string[]): number {
  const o = parseOptions(
    argv,
    {
      steps: { type: "int", default: 30, min: 1 },
      width: { type: "int", default: 16, min: 1 },
      batch: { type: "int", default: 32, min: 1 },
      lr: { type: "float", default: 0.02 },
    },
    "rmoe smoke",
  );
  const steps = o.steps as number;
  const info = engineInfo();
  console.log(
    `LibTorch ${info.torchVersion}, ${info.threads} threads, CUDA ${info.cudaAvailable ? "available" : "not available"}`,
  );
  manualSeed(0);
  const model = new ResNet18({ width: o.width as number });
  console.log(`ResNet18 width ${o.width}: ${model.parameterCount().toLocaleString("en-US")} parameters`);
  const x = rand([o.batch as number, 3, 32, 32]).keep();
  const y = randint(0, 10, [o.batch as number]).keep();
  const optimizer = new SGD(model.parameters(), { lr: o.lr as number, momentum: 0.9 });
  const losses: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const loss = scope(() => {
      const l = crossEntropy(model.forward(x), y);
      optimizer.zeroGrad();
      l.backward();
      optimizer.step();
      return l.item();
    });
    losses.push(loss);
    if (i === 0 || (i + 1) % 10 === 0 || i === steps - 1)
      console.log(`step ${String(i + 1).padStart(4)}  loss ${loss.toFixed(4)}`);
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(
    `${((steps * (o.batch as number)) / secs).toFixed(1)} img/s (train, fixed batch); live tensors ${memoryStats().liveTensors}`,
  );
  x.dispose();
  y.dispose();
  model.dispose();
  optimizer.dispose();
  const first = losses[0] as number;
  const last = losses[losses.length - 1] as number;
  if (!(last < first)) {
    console.error(`smoke: FAILED, loss did not fall (${first.toFixed(4)} -> ${last.toFixed(4)})`);
    return 1;
  }
  console.log(`smoke: OK, loss ${first.toFixed(4)} -> ${last.toFixed(4)}`);
  return 0;
}
