// Certified accuracy as a metric of the evaluation (`rmoe eval --certify`): on a top-1 MoE
// trained here (test/certify/ibp-helpers.ts), in batches the caller makes,
//  - every certified sample is robust under the evaluation's own attacks at the same radius
//    (PGD and APGD here; a sound certificate implies it), certified <= SA, and certified
//    accuracy falls with eps;
//  - the counts equal a certification of the same samples in one batch outside the
//    evaluation (the batching and the record's row order change nothing);
//  - shards, saved flags and merging give the report of one run (smoothing included: its
//    noise is seeded per batch);
//  - the soundness alarm fires: a certifier that certifies everything is caught by PGD;
//  - bad settings fail with messages.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BatchCertifier } from "../../src/certify/batch-certifier.js";
import { ibpCertify } from "../../src/certify/ibp.js";
import { lipschitzRadius } from "../../src/certify/lipschitz-radius.js";
import {
  type EvalBatch,
  evaluateRecord,
  evaluateRobustness,
  formatReportTable,
  loadRecord,
  mergeRecords,
  type RobustnessOptions,
  type RobustnessReport,
  reportFromRecord,
  saveRecord,
} from "../../src/eval/index.js";
import type { MoE } from "../../src/models/index.js";
import { manualSeed, scope, type Tensor } from "../../src/tensor/index.js";
import { type TrainedTask, trainedSyntheticMoE } from "../certify/ibp-helpers.js";
import { tempDir } from "../data/synth.js";

const tmp = tempDir("eval-certified");
after(tmp.cleanup);

const EPS = [1 / 255, 2 / 255, 4 / 255];

function numbers(r: RobustnessReport): string {
  return JSON.stringify(r, (k, v) => (k === "seconds" ? 0 : v), 2);
}

describe("certified accuracy in the evaluation report", () => {
  let task: TrainedTask;
  let x: Tensor;
  let y: Tensor;
  let batches: EvalBatch[];
  before(() => {
    manualSeed(61);
    task = trainedSyntheticMoE();
    ({ x, y } = task.sample(48));
    batches = [0, 13, 26, 39].map((s) => ({ x: x.narrow(0, s, Math.min(13, 48 - s)), y: y.narrow(0, s, Math.min(13, 48 - s)) }));
  });
  after(() => {
    for (const b of batches) for (const t of [b.x, b.y]) t.dispose();
    for (const t of [x, y]) t.dispose();
    task.dispose();
  });

  const base: RobustnessOptions = {
    attacks: ["pgd20", "apgd-ce"],
    eps: 4 / 255,
    curveEps: [1 / 255, 2 / 255],
    apgdSteps: 20,
    moeAttacks: false,
    seed: 3,
  };

  it("IBP: certified samples are robust under the attacks, counts equal an outside certification, the table shows it", () => {
    const record = evaluateRecord(task.moe, batches, { ...base, certify: { method: "ibp" } });
    const r = reportFromRecord(record);
    const c = r.certified;
    assert.ok(c !== null);
    assert.equal(c.method, "ibp");
    assert.equal(c.norm, "linf");
    assert.deepEqual(
      c.points.map((p) => p.eps),
      EPS,
      "default radii: the evaluation's own",
    );
    const outside = scope(() => ibpCertify(task.moe, x, y, EPS, { batchSize: 64 }).certified);
    c.points.forEach((p, i) => {
      assert.equal(p.correct, (outside[i] as boolean[]).filter(Boolean).length, `eps ${p.eps}`);
      assert.ok(p.correct <= r.clean.correct);
      if (i > 0) assert.ok(p.correct <= (c.points[i - 1]?.correct as number));
      assert.deepEqual(p.brokenByAttacks, []);
      assert.ok(p.interval.lower <= p.accuracy && p.accuracy <= p.interval.upper);
    });
    assert.ok((c.points[0]?.correct as number) >= 5, `too few certified at 1/255: ${c.points[0]?.correct}`);
    // Per sample: certified at eps => robust under every attack at eps.
    for (const [i, eps] of EPS.entries()) {
      const cert = record.table.column(`certified:ibp@${i === 0 ? "1/255" : i === 1 ? "2/255" : "4/255"}`);
      for (const a of ["pgd20", "apgd-ce"]) {
        const robust = record.table.column(`robust:${a}@${i === 0 ? "1/255" : i === 1 ? "2/255" : "4/255"}`);
        cert.forEach((v, s) => {
          if (v !== 0) assert.equal(robust[s], 1, `sample ${s} certified at ${eps} but broken by ${a}`);
        });
      }
    }
    const table = formatReportTable(r);
    assert.match(table, /certified: IBP with CROWN refinement, L-inf/);
    assert.match(table, new RegExp(`certified accuracy\\s+radius.*\\n\\s+1/255\\s+[\\d.]+%\\s+${c.points[0]?.correct}/48`));
    assert.doesNotMatch(table, /UNSOUND/);
  });

  it("lipschitz (L2) and smoothing: their own norm's default radii; shards, flags files and merging give one run's report", () => {
    for (const certify of [
      { method: "lipschitz", norm: "l2" },
      { method: "smoothing", samples: 200, sigma: 0.12 },
    ] as const) {
      const o: RobustnessOptions = { ...base, attacks: ["pgd5"], curveEps: [], certify };
      const one = evaluateRobustness(task.moe, batches, o);
      const c = one.certified;
      assert.ok(c !== null);
      assert.equal(c.norm, "l2");
      assert.deepEqual(
        c.points.map((p) => p.eps),
        [0.125, 0.25, 0.5, 1],
      );
      const shards = [2, 1].map((i) => {
        const path = join(tmp.dir, `${certify.method}-${i}.json`);
        saveRecord(path, evaluateRecord(task.moe, batches, { ...o, shard: { index: i, count: 2 } }));
        return loadRecord(path);
      });
      assert.equal(numbers(reportFromRecord(mergeRecords(shards))), numbers(one), certify.method);
      if (certify.method === "lipschitz") {
        // The outside reference: Theorem 5.4's radius of each sample, certified where > eps.
        const cert = scope(() => lipschitzRadius(task.moe, x, { norm: "l2", labels: y }));
        c.points.forEach((p) => {
          const expected = cert.radius.filter((rad, s) => rad > p.eps && cert.correct?.[s] === true).length;
          assert.equal(p.correct, expected, `lipschitz at ${p.eps}`);
        });
        assert.deepEqual(
          c.points.map((p) => p.brokenByAttacks),
          [[], [], [], []],
        );
      } else {
        assert.deepEqual(c.smoothing, { sigma: 0.12, n0: 100, samples: 200, alpha: 0.001 });
        assert.ok((c.points[0]?.correct as number) > 0, "smoothing certified nothing at 0.125");
        assert.match(formatReportTable(one), /randomized smoothing, L2, sigma 0\.12, 200 samples/);
      }
    }
  });

  it("the soundness alarm: a certifier that certifies everything is caught by the attacks at the same radius", (t) => {
    const original = BatchCertifier.prototype.certify;
    t.after(() => {
      BatchCertifier.prototype.certify = original;
    });
    BatchCertifier.prototype.certify = (bx: Tensor, _by: Tensor, eps: readonly number[]) => ({
      certified: eps.map(() => Array.from({ length: bx.size(0) }, () => true)),
      radius: null,
    });
    const r = evaluateRobustness(task.moe, batches, { ...base, eps: 32 / 255, curveEps: [], certify: { method: "ibp" } });
    const broken = r.certified?.points[0]?.brokenByAttacks ?? [];
    assert.ok(broken.length > 0, "PGD at 32/255 broke nothing: the alarm was not tested");
    assert.equal(broken[0]?.attack, "pgd20@32/255");
    assert.ok((broken[0]?.samples.length as number) > 0);
    assert.match(formatReportTable(r), /UNSOUND: \d+ sample\(s\) certified at 32\/255 broken by pgd20@32\/255/);
  });

  it("rejects bad settings with messages", () => {
    const f = (bx: Tensor) => task.moe.forward(bx);
    assert.throws(
      () => evaluateRobustness({ forward: f } as unknown as MoE, batches, { ...base, certify: { method: "ibp" } }),
      /certify needs a Module/,
    );
    assert.throws(
      () => evaluateRobustness(task.moe, batches, { ...base, certify: { method: "crown" as "ibp" } }),
      /certify method 'crown' is not one of ibp, smoothing, lipschitz/,
    );
    assert.throws(
      () => evaluateRobustness(task.moe, batches, { ...base, certify: { method: "ibp", eps: [] } }),
      /no radius to certify at/,
    );
    assert.throws(
      () => evaluateRobustness(task.moe, batches, { ...base, certify: { method: "smoothing", sigma: 0 } }),
      /certify sigma must be > 0/,
    );
  });
});
