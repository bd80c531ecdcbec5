// The c10d binding between two Node processes: allreduce (sum, avg, max), broadcast,
// allgather and barrier give the closed-form results over a TCPStore and a FileStore;
// several collectives in flight complete independently; a group of one works in-process;
// bad input is an error naming rank and operation.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { StoreSpec } from "../../src/dist/process-group.js";
import { availableBackends, initProcessGroup, parseHostPort } from "../../src/dist/process-group.js";
import { tensor } from "../../src/tensor/index.js";
import { killAll, readJson, startRank, tcpStore, tempDir } from "./helpers.js";

const tmp = tempDir("rmoe-dist-coll-");
after(() => {
  killAll();
  tmp.cleanup();
});

interface CollectiveResult {
  sum: number[];
  avg: number[];
  completed: boolean;
  max: number[];
  broadcast: number[];
  gathered: number[][];
  many: number[];
  fatal?: string;
}

const A = [
  [0.1, -2.5, 3.75, 1e-3],
  [1.3, 0.25, -1.5, 7],
];
const B = [
  [0, 0, 0],
  [4.5, -1, 2.25],
];

async function twoRanks(store: StoreSpec, tag: string): Promise<CollectiveResult[]> {
  const ranks = [0, 1].map((rank) =>
    startRank({
      scenario: "collectives",
      rank,
      worldSize: 2,
      store,
      out: join(tmp.dir, `${tag}-${rank}.json`),
      timeoutMs: 60_000,
      a: A[rank] as number[],
      b: B[rank] as number[],
    }),
  );
  const exits = await Promise.all(ranks.map((r) => r.exit));
  for (const [rank, e] of exits.entries()) assert.equal(e.code, 0, `rank ${rank} failed: ${e.stderr}`);
  return [0, 1].map((rank) => readJson<CollectiveResult>(join(tmp.dir, `${tag}-${rank}.json`)));
}

function check(results: CollectiveResult[]): void {
  const a0 = A[0] as number[];
  const a1 = A[1] as number[];
  for (const [rank, r] of results.entries()) {
    assert.equal(r.fatal, undefined);
    // float32 sum of two float32 values, rounded once, as c10d must give it.
    assert.deepEqual(
      r.sum,
      a0.map((v, i) => Math.fround(Math.fround(v) + Math.fround(a1[i] as number))),
      `rank ${rank} sum`,
    );
    assert.deepEqual(
      r.avg,
      a0.map((v, i) => (v + (a1[i] as number)) / 2),
      `rank ${rank} avg`,
    );
    assert.equal(r.completed, true);
    assert.deepEqual(r.max, [10, 0]);
    assert.deepEqual(r.broadcast, B[1]);
    assert.deepEqual(r.gathered, [
      [0, 0.5, 0],
      [1, 1.5, -1],
    ]);
    assert.deepEqual(
      r.many,
      Array.from({ length: 8 }, (_, i) => 2 * i + 1),
    );
  }
}

describe("dist collectives between two Node processes", {
  skip: !availableBackends().includes("gloo") && "built without gloo",
}, () => {
  it("TCPStore (rank 0 serves it): allreduce sum/avg/max, broadcast, allgather, barrier", async () => {
    check(await twoRanks(await tcpStore(), "tcp"));
  });

  it("FileStore", async () => {
    check(await twoRanks({ file: join(tmp.dir, "filestore") }, "file"));
  });
});

describe("dist in one process", { skip: !availableBackends().includes("gloo") && "built without gloo" }, () => {
  it("a group of one: collectives are identities, sync and async waits agree", async () => {
    const pg = await initProcessGroup({ store: { file: join(tmp.dir, "single") }, rank: 0, worldSize: 1, timeoutMs: 10_000 });
    const t = tensor([1.5, -2]);
    await pg.allreduce(t, { op: "avg" }).wait();
    assert.deepEqual(t.toFlatArray(), [1.5, -2]);
    pg.broadcast(t).waitSync();
    assert.deepEqual(t.toFlatArray(), [1.5, -2]);
    await pg.barrier().wait();
    await pg.destroy();
    assert.throws(() => pg.allreduce(t), /rank 0\/1: the process group was destroyed/);
  });

  it("bad input: errors name the rank and the operation", async () => {
    const pg = await initProcessGroup({ store: { file: join(tmp.dir, "bad") }, rank: 0, worldSize: 1, timeoutMs: 10_000 });
    const m = tensor([
      [1, 2],
      [3, 4],
    ]);
    assert.throws(
      () => pg.allreduce(m.transpose(0, 1)),
      /dist rank 0\/1 \(gloo\): allreduce: the tensor must be dense and contiguous/,
    );
    assert.throws(() => pg.broadcast(m, { src: 1 }), /dist rank 0\/1 \(gloo\): broadcast: src must be an integer in \[0, 0\]/);
    assert.throws(() => pg.allgather([m, m], m), /allgather: needs one output tensor per rank \(1\), got 2/);
    assert.throws(() => pg.allreduce(m, { op: "xor" as "sum" }), /op must be 'sum', 'product', 'min' or 'max'/);
    await pg.destroy();
    await assert.rejects(
      initProcessGroup({ store: { tcp: "127.0.0.1:1" }, rank: 2, worldSize: 2 }),
      /rank must be an integer in \[0, 1\], got 2/,
    );
    await assert.rejects(
      initProcessGroup({ backend: "mpi" as "gloo", store: { file: "x" }, rank: 0, worldSize: 1 }),
      /backend must be 'gloo' or 'nccl'/,
    );
    assert.throws(() => parseHostPort("localhost"), /must be 'host:port'/);
    assert.deepEqual(parseHostPort("[::1]:29500"), { host: "::1", port: 29500 });
  });

  it("a rank whose peers never come: the rendezvous fails within its timeout, naming the store", async () => {
    const store = await tcpStore();
    const t0 = performance.now();
    await assert.rejects(
      initProcessGroup({ store, rank: 0, worldSize: 2, timeoutMs: 1500 }),
      (e: Error) =>
        /^dist rank 0\/2 \(gloo\): initProcessGroup \(rendezvous through tcp store 127\.0\.0\.1:\d+ \(server\)/.test(e.message) &&
        /[Tt]imeout|[Tt]imed out/.test(e.message),
    );
    assert.ok(performance.now() - t0 < 15_000);
  });
});
