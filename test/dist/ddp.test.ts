// Data parallelism: two processes, each on its half of the global batch, end K steps with
// the weights of a single process trained on the whole batch (a model without BatchNorm:
// per-rank batch statistics would differ by design); the logged loss is the global one.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { assignBuckets } from "../../src/dist/buckets.js";
import { DataParallel } from "../../src/dist/data-parallel.js";
import { availableBackends, initProcessGroup } from "../../src/dist/process-group.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { crossEntropy } from "../../src/nn/functional.js";
import type { Module } from "../../src/nn/index.js";
import { SGD } from "../../src/optim/sgd.js";
import { scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { inputOf, testModel } from "./fixtures/models.js";
import { killAll, readJson, startRank, tcpStore, tempDir } from "./helpers.js";

const tmp = tempDir("rmoe-dist-ddp-");
after(() => {
  killAll();
  tmp.cleanup();
});

const STEPS = 6;
const N = 24;

function data(width = 6): { x: number[][]; y: number[] } {
  // A fixed pseudo-random batch (LCG), independent of LibTorch's generator.
  let s = 12345;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const x = Array.from({ length: N }, () => Array.from({ length: width }, () => 2 * next() - 1));
  const y = Array.from({ length: N }, () => Math.floor(next() * 4));
  return { x, y };
}

/** The same model, optimizer and steps in this process, on the whole batch. */
function singleProcess(
  kind: "mlp" | "convbn",
  x: number[][],
  y: number[],
): { params: Record<string, number[]>; losses: number[] } {
  const net = testModel(kind) as Module & { forward(x: Tensor): Tensor };
  const opt = new SGD(net.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });
  const xt = inputOf(kind, x);
  const yt = tensor(BigInt64Array.from(y.map(BigInt)));
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    opt.zeroGrad();
    losses.push(
      scope(() => {
        const l = crossEntropy(net.forward(xt), yt);
        l.backward();
        return l.item();
      }),
    );
    opt.step();
  }
  return { params: Object.fromEntries([...net.stateDict()].map(([k, v]) => [k, v.toFlatArray()])), losses };
}

describe("DataParallel", () => {
  it("buckets: reverse order, per dtype, a small first bucket", () => {
    const items = [
      { index: 0, numel: 100, dtype: "float32", bytes: 400 },
      { index: 1, numel: 10, dtype: "float64", bytes: 80 },
      { index: 2, numel: 300, dtype: "float32", bytes: 1200 },
      { index: 3, numel: 50, dtype: "float32", bytes: 200 },
    ];
    const b = assignBuckets(items, 1000, 100);
    assert.deepEqual(
      b.map((x) => [x.dtype, x.indices, x.offsets, x.numel]),
      [
        ["float32", [3], [0], 50],
        ["float32", [2], [0], 300],
        // What is left open at the end, in the order the buckets were opened.
        ["float64", [1], [0], 10],
        ["float32", [0], [0], 100],
      ],
    );
  });

  const cases = [
    {
      kind: "mlp",
      overlap: true,
      title: "2 processes x half batch == 1 process x whole batch after K steps (no BatchNorm, 1e-5)",
    },
    { kind: "mlp", overlap: false, title: "the same without overlapping the allreduces with backward" },
    {
      kind: "convbn",
      overlap: true,
      title: "with SyncBatchNorm: 2 processes == 1 process with BatchNorm over the whole batch (weights and running stats, 1e-5)",
    },
  ] as const;
  for (const { kind, overlap, title } of cases) {
    it(title, {
      skip: !availableBackends().includes("gloo") && "built without gloo",
    }, async () => {
      const { x, y } = data(kind === "mlp" ? 6 : 3 * 8 * 8);
      const store = await tcpStore();
      const ranks = [0, 1].map((rank) =>
        startRank({
          scenario: "ddp",
          model: kind,
          overlap,
          rank,
          worldSize: 2,
          store,
          timeoutMs: 60_000,
          out: join(tmp.dir, `ddp-${kind}-${overlap}-${rank}.json`),
          x,
          y,
          steps: STEPS,
        }),
      );
      const exits = await Promise.all(ranks.map((r) => r.exit));
      for (const [rank, e] of exits.entries()) assert.equal(e.code, 0, `rank ${rank} failed: ${e.stderr}`);
      const ref = singleProcess(kind, x, y);
      for (const rank of [0, 1]) {
        const r = readJson<{ params: Record<string, number[]>; losses: number[]; buckets: number; early: number }>(
          join(tmp.dir, `ddp-${kind}-${overlap}-${rank}.json`),
        );
        assert.ok(r.buckets > 1, "the tiny bucket cap should make several buckets");
        // With overlap every bucket starts while backward runs (each as soon as its last gradient
        // is accumulated); without, all start after it.
        if (overlap) assert.equal(r.early, r.buckets);
        else assert.equal(r.early, 0);
        assert.deepEqual(Object.keys(r.params), Object.keys(ref.params));
        let worst = 0;
        for (const [k, v] of Object.entries(ref.params)) {
          const got = r.params[k] as number[];
          assert.equal(got.length, v.length);
          for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs((got[i] as number) - (v[i] as number)));
        }
        assert.ok(worst < 1e-5, `rank ${rank}: max |difference| ${worst}`);
        for (let s = 0; s < STEPS; s++) assert.ok(Math.abs((r.losses[s] as number) - (ref.losses[s] as number)) < 1e-9);
        // It learned something (the comparison is not between two untouched models).
        assert.ok((ref.losses[STEPS - 1] as number) < (ref.losses[0] as number));
      }
    });
  }

  it("SyncBatchNorm refuses a top-k MoE (an expert may not run on every rank) and serialises a dense one's backward", {
    skip: !availableBackends().includes("gloo") && "built without gloo",
  }, async () => {
    const pg = await initProcessGroup({ store: { file: join(tmp.dir, "sbn") }, rank: 0, worldSize: 1, timeoutMs: 10_000 });
    const experts = () => [new ResNet18({ width: 2 }), new ResNet18({ width: 2 })];
    const topk = new MoE(experts(), { k: 1 });
    const dense = new MoE(experts(), { gating: "dense" });
    try {
      assert.throws(
        () => new DataParallel(pg, topk, { syncBatchNorm: true }),
        /syncBatchNorm: a MoE with topk gating \(k = 1 of 2 experts\) does not run every expert on every rank/,
      );
      assert.equal(dense.concurrentBackward, true);
      new DataParallel(pg, dense, { syncBatchNorm: true }).dispose();
      assert.equal(dense.concurrentBackward, false);
    } finally {
      topk.dispose();
      dense.dispose();
      await pg.destroy();
    }
  });
});
