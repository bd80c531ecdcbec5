// One process of `npm run bench -- dist` (bench/dist.ts): `node dist-worker.js TASK_JSON`.
//   allreduce: times `reps` allreduces of a float32 tensor of `mb` MB (after `warmup`), prints
//              {"seconds": [...]} from rank 0
//   step:      times `steps` training steps (after `warmup`) of a width-16 ResNet18 on its
//              share of a fixed batch, data-parallel over the group when worldSize > 1;
//              prints {"stepSeconds": ..., "waitSeconds": ...} from rank 0
import { DataParallel } from "../src/dist/data-parallel.js";
import { initProcessGroup, type ProcessGroup } from "../src/dist/process-group.js";
import { ResNet18 } from "../src/models/resnet18.js";
import { crossEntropy } from "../src/nn/functional.js";
import { SGD } from "../src/optim/sgd.js";
import { keep, manualSeed, rand, randint, scope, setNumThreads, zeros } from "../src/tensor/index.js";

interface WorkerTask {
  kind: "allreduce" | "step";
  rank: number;
  worldSize: number;
  store: string;
  threads: number;
  mb?: number[];
  reps?: number;
  warmup: number;
  steps?: number;
  batch?: number;
  width?: number;
  overlap?: boolean;
}

const task = JSON.parse(process.argv[2] as string) as WorkerTask;
setNumThreads(task.threads);

async function allreduce(pg: ProcessGroup): Promise<Record<string, unknown>> {
  const out: Record<string, number[]> = {};
  for (const mb of task.mb ?? []) {
    const t = keep(zeros([Math.round((mb * 1e6) / 4)]));
    t.fill_(1);
    const times: number[] = [];
    for (let i = 0; i < task.warmup + (task.reps ?? 5); i++) {
      await pg.barrier().wait();
      const t0 = performance.now();
      pg.allreduce(t).waitSync();
      if (i >= task.warmup) times.push((performance.now() - t0) / 1000);
    }
    out[String(mb)] = times;
    t.dispose();
  }
  return { seconds: out };
}

async function steps(pg: ProcessGroup | null): Promise<Record<string, unknown>> {
  manualSeed(0);
  const net = new ResNet18({ numClasses: 10, width: task.width ?? 16 });
  const world = task.worldSize;
  const local = (task.batch ?? 128) / world;
  const x = keep(rand([local, 3, 32, 32]));
  const y = keep(randint(0, 10, [local]));
  const opt = new SGD(net.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const dp = pg === null ? null : new DataParallel(pg, net, { overlap: task.overlap ?? true });
  const params = net.parameters();
  dp?.syncModule();
  net.train();
  const step = () => {
    opt.zeroGrad();
    dp?.beforeForward();
    scope(() => {
      const loss = crossEntropy(net.forward(x), y);
      dp?.beforeBackward(params);
      loss.backward();
    });
    dp?.afterBackward(params);
    opt.step();
  };
  for (let i = 0; i < task.warmup; i++) step();
  const wait0 = dp?.stats.waitSeconds ?? 0;
  if (pg !== null) await pg.barrier().wait();
  const t0 = performance.now();
  const n = task.steps ?? 5;
  for (let i = 0; i < n; i++) step();
  const stepSeconds = (performance.now() - t0) / 1000 / n;
  return { stepSeconds, waitSeconds: ((dp?.stats.waitSeconds ?? 0) - wait0) / n, buckets: dp?.stats.allreduces ?? 0 };
}

async function main(): Promise<void> {
  const pg =
    task.worldSize > 1
      ? await initProcessGroup({ store: { tcp: task.store }, rank: task.rank, worldSize: task.worldSize, timeoutMs: 300_000 })
      : null;
  const r = task.kind === "allreduce" ? await allreduce(pg as ProcessGroup) : await steps(pg);
  if (task.rank === 0) process.stdout.write(`${JSON.stringify(r)}\n`);
  await pg?.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`dist-worker rank ${task.rank}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
