import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { allocatorStats, emptyCache, full, scope, zeros } from "../../src/tensor/index.js";

const MiB = 2 ** 20;
const INDEX = new URL("../../src/tensor/index.js", import.meta.url).href;

/** Runs a module snippet in a fresh Node process with extra environment; its stdout. */
function runChild(code: string, env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("caching CPU allocator", () => {
  it("is LibTorch's CPU allocator by default", () => {
    assert.equal(allocatorStats().caching, true);
  });

  it("reuses a freed large block for the next allocation of the same rounded size", () => {
    emptyCache();
    const before = allocatorStats();
    // 3 MiB of float32, rounded up to a 4 MiB block.
    const a = zeros([(3 * MiB) / 4]);
    const mid = allocatorStats();
    assert.equal(mid.allocatedBytes - before.allocatedBytes, 4 * MiB);
    assert.equal(mid.maps - before.maps, 1);
    a.dispose();
    assert.equal(allocatorStats().cachedBytes, 4 * MiB);
    // A slightly different size in the same 2 MiB class takes the cached block, not a new mapping.
    const b = full([(3 * MiB) / 4 + 1000], 2.5);
    const after = allocatorStats();
    assert.equal(after.maps, mid.maps);
    assert.equal(after.cacheHits - mid.cacheHits, 1);
    assert.equal(after.cachedBytes, 0);
    // The reused block holds exactly what the new tensor wrote, wherever the old one wrote.
    assert.equal(Number(scope(() => b.eq(2.5).all().item())), 1);
    assert.equal(
      scope(() => b.sum().item()),
      2.5 * ((3 * MiB) / 4 + 1000),
    );
    b.dispose();
  });

  it("serves a request from the smallest cached block up to 1.5x its size", () => {
    emptyCache();
    const six = zeros([(6 * MiB) / 4]);
    six.dispose();
    const s0 = allocatorStats();
    // 2 MiB: a 6 MiB block would waste too much, so it maps a new one.
    const two = zeros([(2 * MiB) / 4]);
    assert.equal(allocatorStats().maps, s0.maps + 1);
    // 4 MiB: the cached 6 MiB block fits within 1.5x and is taken (and counted at 6 MiB).
    const four = full([MiB], 1);
    const s1 = allocatorStats();
    assert.equal(s1.maps, s0.maps + 1);
    assert.equal(s1.cacheHits, s0.cacheHits + 1);
    assert.equal(s1.allocatedBytes - s0.allocatedBytes, 8 * MiB);
    assert.equal(
      scope(() => four.sum().item()),
      MiB,
    );
    two.dispose();
    four.dispose();
    emptyCache();
  });

  it("leaves small blocks to malloc", () => {
    const before = allocatorStats();
    const t = zeros([1000]);
    assert.equal(allocatorStats().allocatedBytes, before.allocatedBytes);
    t.dispose();
  });

  it("gives the cache back to the OS on emptyCache()", () => {
    const t = zeros([MiB]);
    t.dispose();
    assert.ok(allocatorStats().cachedBytes >= 4 * MiB);
    const released = emptyCache();
    const s = allocatorStats();
    assert.ok(released >= 4 * MiB, `released ${released}`);
    assert.equal(s.cachedBytes, 0);
    assert.equal(s.mappedBytes, s.allocatedBytes);
  });

  it("a training-like loop maps its blocks once and then only reuses them", () => {
    emptyCache();
    const step = () =>
      scope(() => {
        const x = zeros([64, 16, 32, 32]).add(1); // 4 MiB activations
        return x.relu().mul(2).sum().item();
      });
    step();
    const afterFirst = allocatorStats().maps;
    for (let i = 0; i < 20; i++) assert.equal(step(), 2 * 64 * 16 * 32 * 32);
    assert.equal(allocatorStats().maps, afterFirst);
  });

  it("keeps at most RMOE_CPU_CACHE_MB in its free lists", () => {
    const code = `
      import { allocatorStats, zeros } from ${JSON.stringify(INDEX)};
      const a = zeros([${MiB}]), b = zeros([${MiB}]); // 4 MiB each
      a.dispose(); b.dispose();
      console.log(JSON.stringify(allocatorStats()));`;
    const r = runChild(code, { RMOE_CPU_CACHE_MB: "6" });
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as ReturnType<typeof allocatorStats>;
    assert.equal(s.cacheLimitBytes, 6 * MiB);
    assert.equal(s.cachedBytes, 4 * MiB);
    assert.equal(s.mappedBytes, 4 * MiB);
  });

  it("RMOE_CPU_ALLOCATOR=system keeps LibTorch's default allocator", () => {
    const code = `
      import { allocatorStats, zeros } from ${JSON.stringify(INDEX)};
      const t = zeros([${MiB}]);
      console.log(JSON.stringify({ ...allocatorStats(), sum: t.add(1).sum().item() }));`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], {
      env: { ...process.env, RMOE_CPU_ALLOCATOR: "system" },
      encoding: "utf8",
    });
    const s = JSON.parse(out) as ReturnType<typeof allocatorStats> & { sum: number };
    assert.equal(s.caching, false);
    assert.equal(s.mappedBytes, 0);
    assert.equal(s.sum, MiB);
  });

  it("names a bad RMOE_CPU_ALLOCATOR or RMOE_CPU_CACHE_MB value", () => {
    const code = `import ${JSON.stringify(INDEX)};`;
    const bad = runChild(code, { RMOE_CPU_ALLOCATOR: "jemalloc" });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /RMOE_CPU_ALLOCATOR must be 'caching' \(the default\) or 'system', got 'jemalloc'/);
    const badMb = runChild(code, { RMOE_CPU_CACHE_MB: "lots" });
    assert.notEqual(badMb.status, 0);
    assert.match(badMb.stderr, /RMOE_CPU_CACHE_MB must be a whole number of MiB, got 'lots'/);
  });
});
