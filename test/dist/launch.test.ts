// The torchrun-style launcher and placement: the variables each process gets, the exit code
// of a failed run, the other processes stopped after the grace period (never left running);
// placement from flags and environment, with errors for incomplete worlds.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { distPlacement } from "../../src/dist/env.js";
import { launch } from "../../src/dist/launch.js";
import { repoRoot } from "../helpers/paths.js";
import { readJson, tempDir } from "./helpers.js";

const CHILD = join(repoRoot, "dist", "test", "dist", "fixtures", "launch-child.js");
const tmp = tempDir("rmoe-dist-launch-");
after(() => tmp.cleanup());

describe("launch (--nproc)", () => {
  it("starts N processes with torchrun's variables and a share of the cores each", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, OUT_DIR: tmp.dir, BEHAVIOUR: "ok,ok,ok" };
    delete env.RMOE_NUM_THREADS;
    const r = await launch({ args: [CHILD], nproc: 3, worldSize: 5, firstRank: 2, masterPort: 29999, env, threadsPerProcess: 1 });
    assert.equal(r.code, 0);
    for (const [i, rank] of [2, 3, 4].entries()) {
      assert.deepEqual(readJson(join(tmp.dir, `rank-${rank}.json`)), {
        RANK: String(rank),
        WORLD_SIZE: "5",
        LOCAL_RANK: String(i),
        LOCAL_WORLD_SIZE: "3",
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: "29999",
        RMOE_NUM_THREADS: "1",
      });
    }
  });

  it("one process fails: the run exits with its code, the others are stopped after the grace period", async () => {
    const env = { ...process.env, OUT_DIR: tmp.dir, BEHAVIOUR: "hang,fail" };
    const t0 = performance.now();
    const r = await launch({ args: [CHILD], nproc: 2, env, graceMs: 300 });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 3);
    assert.equal(r.exits[1]?.code, 3);
    assert.equal(r.exits[0]?.signal, "SIGTERM");
    assert.ok(seconds < 10, `took ${seconds} s`);
  });

  it("bad requests are refused before anything starts", async () => {
    await assert.rejects(launch({ args: [CHILD], nproc: 0 }), /--nproc must be a positive integer/);
    await assert.rejects(launch({ args: [CHILD], nproc: 2, worldSize: 3, firstRank: 2 }), /ranks 2..3 do not fit a world of 3/);
    await assert.rejects(launch({ args: [CHILD], nproc: 1, worldSize: 2, firstRank: 1 }), /--master-port is needed/);
  });
});

describe("distPlacement", () => {
  it("reads torchrun's environment; flags win", () => {
    const env = {
      RANK: "1",
      WORLD_SIZE: "4",
      MASTER_ADDR: "10.0.0.1",
      MASTER_PORT: "29500",
      LOCAL_RANK: "1",
      LOCAL_WORLD_SIZE: "2",
    };
    assert.deepEqual(distPlacement({}, env), {
      rank: 1,
      worldSize: 4,
      localRank: 1,
      localWorldSize: 2,
      masterAddr: "10.0.0.1",
      masterPort: 29500,
    });
    assert.equal(distPlacement({ rank: 3 }, env)?.rank, 3);
    assert.equal(distPlacement({}, {}), null);
  });

  it("incomplete worlds are errors that say what is missing", () => {
    assert.throws(() => distPlacement({ rank: 1 }, {}), /--rank needs --world-size/);
    assert.throws(() => distPlacement({ worldSize: 2 }, {}), /needs this process's rank/);
    assert.throws(() => distPlacement({ worldSize: 2, rank: 2 }, {}), /rank 2 is outside a world of 2/);
    assert.throws(() => distPlacement({ worldSize: 2, rank: 0 }, { MASTER_PORT: "1" }), /store's host/);
    assert.throws(() => distPlacement({}, { WORLD_SIZE: "x", RANK: "0" }), /WORLD_SIZE must be an integer/);
  });
});
