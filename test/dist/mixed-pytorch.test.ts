// A Node rank and a PyTorch rank (Debian's python3-torch, torch.distributed with gloo) in
// one process group, each way round (Node serving the TCPStore as rank 0, and PyTorch
// serving it): allreduce, broadcast from either side, allgather and barrier give the same
// tensors on both. This is c10d's own protocol, so mixed fleets work.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { availableBackends } from "../../src/dist/process-group.js";
import type { Task } from "./fixtures/rank.js";
import { killAll, readJson, startRank, startTorchRank, tcpStore, tempDir, torchAvailable } from "./helpers.js";

const tmp = tempDir("rmoe-dist-mixed-");
after(() => {
  killAll();
  tmp.cleanup();
});

interface MixedResult {
  sum: number[];
  b: number[];
  c: number[];
  max: number[];
  gathered: number[][];
  fatal?: string;
}

// Values chosen to need float32 rounding in the sum.
const A = [
  [0.1, 1 / 3, -2.75, 1e7 + 1],
  [0.2, 2 / 3, 1.125, 3.5],
];
const B = [
  [Math.PI, -Math.E, 1e-300],
  [0, 0, 0],
];
const C = [
  [0, 0],
  [-0.625, 123.5],
];

async function mixed(nodeRank: number, tag: string): Promise<[MixedResult, MixedResult]> {
  const store = await tcpStore();
  const torchRank = 1 - nodeRank;
  const base = { scenario: "mixed" as const, worldSize: 2, store, timeoutMs: 60_000 };
  const task = (rank: number): Task => ({
    ...base,
    rank,
    out: join(tmp.dir, `${tag}-${rank}.json`),
    a: A[rank] as number[],
    b: B[rank] as number[],
    c: C[rank] as number[],
  });
  const node = startRank(task(nodeRank));
  const py = startTorchRank({ ...task(torchRank), scenario: "mixed" });
  const [en, ep] = await Promise.all([node.exit, py.exit]);
  assert.equal(en.code, 0, `node rank failed: ${en.stderr}`);
  assert.equal(ep.code, 0, `pytorch rank failed: ${ep.stderr}`);
  return [readJson<MixedResult>(join(tmp.dir, `${tag}-0.json`)), readJson<MixedResult>(join(tmp.dir, `${tag}-1.json`))];
}

function check(results: MixedResult[]): void {
  const a0 = A[0] as number[];
  const a1 = A[1] as number[];
  const sum = a0.map((v, i) => Math.fround(Math.fround(v) + Math.fround(a1[i] as number)));
  for (const [rank, r] of results.entries()) {
    assert.equal(r.fatal, undefined);
    assert.deepEqual(r.sum, sum, `rank ${rank}: allreduce`);
    assert.deepEqual(r.b, B[0], `rank ${rank}: broadcast from rank 0 (float64, bit for bit)`);
    assert.deepEqual(r.c, (C[1] as number[]).map(Math.fround), `rank ${rank}: broadcast from rank 1`);
    assert.deepEqual(r.max, [14, 0], `rank ${rank}: allreduce max (int64)`);
    assert.deepEqual(r.gathered, [
      [0.25, 0],
      [1.25, -1],
    ]);
  }
}

describe("a Node rank and a PyTorch rank in one c10d group", {
  skip:
    (!torchAvailable() && "Debian's python3-torch is not installed") ||
    (!availableBackends().includes("gloo") && "built without gloo"),
}, () => {
  it("Node is rank 0 (serves the TCPStore), PyTorch rank 1", async () => {
    check(await mixed(0, "node0"));
  });
  it("PyTorch is rank 0 (serves the TCPStore), Node rank 1", async () => {
    check(await mixed(1, "torch0"));
  });
});
