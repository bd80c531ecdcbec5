// A rank that dies or stalls: the others fail with an error that names their rank, the
// backend and the operation, within the timeout, and never hang.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { availableBackends } from "../../src/dist/process-group.js";
import { killAll, readJson, startRank, tcpStore, tempDir, waitForFile } from "./helpers.js";

const tmp = tempDir("rmoe-dist-fail-");
after(() => {
  killAll();
  tmp.cleanup();
});

interface FailResult {
  error: string | null;
  seconds: number;
  fatal?: string;
}

async function scenario(kind: "die" | "stall", timeoutMs: number): Promise<{ result: FailResult; wall: number }> {
  const store = await tcpStore();
  const ready = join(tmp.dir, `${kind}-ready`);
  const task = (rank: number) => ({
    scenario: kind,
    rank,
    worldSize: 2,
    store,
    timeoutMs,
    ready,
    out: join(tmp.dir, `${kind}-${rank}.json`),
  });
  const r0 = startRank(task(0));
  const r1 = startRank(task(1));
  await waitForFile(ready, 60_000);
  const t0 = performance.now();
  r1.child.kill(kind === "die" ? "SIGKILL" : "SIGSTOP");
  const e0 = await r0.exit;
  const wall = (performance.now() - t0) / 1000;
  if (kind === "stall") r1.child.kill("SIGKILL");
  await r1.exit;
  assert.equal(e0.code, 0, `rank 0 crashed: ${e0.stderr}`);
  return { result: readJson<FailResult>(join(tmp.dir, `${kind}-0.json`)), wall };
}

describe("a rank that goes away", { skip: !availableBackends().includes("gloo") && "built without gloo" }, () => {
  it("killed (SIGKILL): the other rank's allreduce fails at once with a clear error", async () => {
    // A long timeout: the error must come from the closed connection, not from the timeout.
    const { result, wall } = await scenario("die", 60_000);
    assert.ok(result.error !== null, "the allreduce succeeded without its peer");
    assert.match(result.error, /^dist rank 0\/2 \(gloo\): allreduce failed: /);
    assert.match(result.error, /[Cc]onnection closed by peer|Connection reset|EOF|Broken pipe/);
    assert.ok(wall < 20, `rank 0 took ${wall.toFixed(1)} s to notice`);
  });

  it("stalled (SIGSTOP): the other rank's allreduce fails within the timeout", async () => {
    const { result, wall } = await scenario("stall", 3000);
    assert.ok(result.error !== null, "the allreduce succeeded without its peer");
    assert.match(result.error, /^dist rank 0\/2 \(gloo\): allreduce (failed|did not complete)/);
    assert.match(result.error, /[Tt]imed out|within 3000 ms/);
    assert.ok(result.seconds >= 2.5 && result.seconds < 15, `failed after ${result.seconds} s (timeout 3 s)`);
    assert.ok(wall < 30);
  });
});
