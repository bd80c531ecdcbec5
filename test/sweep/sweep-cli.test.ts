// `rmoe sweep --certify` end to end in a child process: tiny untrained MoE checkpoints, the
// first 8 real CIFAR-10 test images; the certified accuracies of the end points equal
// `rmoe certify` of each member alone (an independent command over the same images).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { saveCheckpoint } from "../../src/io/checkpoint.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { manualSeed } from "../../src/tensor/index.js";
import { cifarSkip } from "../data/real-data.js";
import { tempDir } from "../data/synth.js";
import { repoRoot } from "../helpers/paths.js";

const tmp = tempDir("sweep-cli");
after(tmp.cleanup);
const CLI = join(repoRoot, "dist/src/cli/main.js");
const ckpt = { s: join(tmp.dir, "s.safetensors"), r: join(tmp.dir, "r.safetensors") };

function rmoe(args: readonly string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface SweepJson {
  certify: { method: string; norm: string; eps: number[] } | null;
  points: { alpha: number; sa: number; certified: { eps: number; accuracy: number }[] | null }[];
}

describe("rmoe sweep --certify", { skip: cifarSkip }, () => {
  before(() => {
    manualSeed(2);
    for (const path of [ckpt.s, ckpt.r]) {
      const m = new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]);
      saveCheckpoint(path, m);
      m.dispose();
    }
  });

  it("certifies every alpha; the end points equal rmoe certify of each member", () => {
    const eps = ["--certify-eps", "0.0001,1/255"];
    const r = rmoe([
      "sweep",
      "--standard",
      ckpt.s,
      "--robust",
      ckpt.r,
      "--data",
      "cifar10",
      "--alphas",
      "0,0.5,1",
      "--attacks",
      "fgsm",
      "--n",
      "8",
      "--certify",
      "ibp",
      ...eps,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as SweepJson;
    assert.deepEqual(j.certify, { method: "ibp", norm: "linf", eps: [0.0001, 1 / 255], smoothing: null });
    const alone = (path: string) => {
      const c = rmoe([
        "certify",
        "--ckpt",
        path,
        "--data",
        "cifar10",
        "--method",
        "ibp",
        ...eps.slice(1).flatMap((e) => ["--eps", e]),
        "--n",
        "8",
        "--json",
      ]);
      assert.equal(c.code, 0, c.stderr);
      return (
        JSON.parse(c.stdout) as { curves: { points: { eps: number; certifiedAccuracy: number }[] }[] }
      ).curves[0]?.points.map((p) => ({ eps: p.eps, accuracy: p.certifiedAccuracy }));
    };
    assert.deepEqual(j.points[0]?.certified, alone(ckpt.s));
    assert.deepEqual(j.points[2]?.certified, alone(ckpt.r));
    for (const p of j.points) assert.ok((p.certified?.[0]?.accuracy as number) <= p.sa);
    const table = rmoe([
      "sweep",
      "--standard",
      ckpt.s,
      "--robust",
      ckpt.r,
      "--data",
      "cifar10",
      "--alphas",
      "0.5",
      "--attacks",
      "fgsm",
      "--n",
      "4",
      "--certify",
      "ibp",
      "--certify-eps",
      "1/255",
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /certified by ibp \(linf\)/);
    assert.match(table.stdout, /alpha\s+SA\s+RA fgsm\s+RA worst\s+cert 1\/255/);
  });

  it("rejects a bad certificate with a usage error", () => {
    const r = rmoe(["sweep", "--standard", ckpt.s, "--robust", ckpt.r, "--data", "cifar10", "--certify", "exact"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /rmoe sweep: --certify must be one of ibp, smoothing, lipschitz, got 'exact'/);
  });
});
