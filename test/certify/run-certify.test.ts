// certifyDataset and rmoe certify: per-sample results equal the certificate functions called
// directly, certified accuracy never exceeds clean accuracy and falls with eps, and the JSON
// is what rmoe report reads (parseCertify accepts it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ibpCertify } from "../../src/certify/ibp.js";
import { certifyDataset } from "../../src/certify/run-certify.js";
import { DataLoader } from "../../src/data/loader.js";
import { saveCheckpoint } from "../../src/io/checkpoint.js";
import { MoE, ResNet18 } from "../../src/models/index.js";
import { parseCertify } from "../../src/report/inputs.js";
import { dispose, manualSeed } from "../../src/tensor/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { synthData, tinyMoE } from "../eval/helpers.js";
import { repoRoot } from "../helpers/paths.js";

const CLI = join(repoRoot, "dist", "src", "cli", "main.js");

describe("certifyDataset", () => {
  guardLeaks();

  it("ibp: the per-sample flags are ibpCertify's; certified <= clean; monotone in eps", () => {
    const moe = tinyMoE(4).eval();
    const data = synthData(20, 3);
    const eps = [0.001, 0.01, 0.1];
    const r = certifyDataset(moe, data, { method: "ibp", eps, batchSize: 8 });
    const loader = new DataLoader(data, { batchSize: 20, shuffle: false, workers: 0 });
    const [batch] = [...loader.epoch(0)];
    loader.close();
    const direct = ibpCertify(moe, batch?.x as never, batch?.y as never, eps);
    dispose(batch);
    assert.deepEqual(r.certified, direct.certified);
    assert.equal(r.n, 20);
    assert.equal(r.norm, "linf");
    for (const [i, acc] of r.certifiedAccuracy.entries()) {
      assert.ok(acc <= r.cleanAccuracy + 1e-12, `eps ${eps[i]}: certified ${acc} <= clean ${r.cleanAccuracy}`);
      if (i > 0) assert.ok(acc <= (r.certifiedAccuracy[i - 1] as number), "monotone in eps");
    }
    assert.throws(() => certifyDataset(moe, data, { method: "ibp", eps: [0.1, 0.01] }), /increasing/);
    moe.dispose();
  });

  it("smoothing: radii are per sample; a sample counts at eps only when its radius exceeds eps", () => {
    const moe = tinyMoE(5).eval();
    const data = synthData(6, 2);
    const r = certifyDataset(moe, data, { method: "smoothing", eps: [0.1, 0.5], samples: 200, sigma: 0.25 });
    assert.equal(r.norm, "l2");
    assert.equal(r.radius?.length, 6);
    r.eps.forEach((e, i) => {
      assert.deepEqual(
        r.certified[i],
        (r.radius as number[]).map((rad) => rad > e),
      );
    });
    moe.dispose();
  });
});

describe("rmoe certify", () => {
  it("writes the certificate JSON rmoe report reads; usage errors exit 2", () => {
    const dir = mkdtempSync(join(tmpdir(), "rmoe-certify-"));
    try {
      manualSeed(0);
      const moe = new MoE([new ResNet18({ width: 2 }), new ResNet18({ width: 2 })]);
      const ckpt = join(dir, "moe.safetensors");
      saveCheckpoint(ckpt, moe);
      moe.dispose();
      for (const method of ["ibp", "smoothing", "lipschitz"]) {
        const out = join(dir, `${method}.json`);
        const r = spawnSync(
          process.execPath,
          [
            CLI,
            "certify",
            "--ckpt",
            ckpt,
            "--data",
            "cifar10",
            "--n",
            "4",
            "--method",
            method,
            "--samples",
            "100",
            "--out",
            out,
            "--kind",
            "rt-er",
          ],
          { encoding: "utf8" },
        );
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /certified accuracy/);
        const file = parseCertify(JSON.parse(readFileSync(out, "utf8")), out);
        assert.equal(file.norm, method === "smoothing" ? "l2" : "linf");
        assert.equal(file.curves[0]?.kind, "rt-er");
        assert.equal(file.curves[0]?.points.length, 4);
      }
      const bad = spawnSync(process.execPath, [CLI, "certify", "--ckpt", ckpt, "--data", "cifar10", "--method", "magic"], {
        encoding: "utf8",
      });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /--method must be ibp, smoothing or lipschitz, got 'magic'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
