// Sharded evaluation, saved flags and RA against eps: an evaluation split into 3 shards,
// each written to a flags file and read back, merges into exactly the report one run
// gives (every number but timings, bit for bit), for a dataset and for caller-made
// batches; merging refuses what is not the complete set of shards of one evaluation; a
// point of an eps curve is the run at that eps.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { recordToFlags } from "../../src/eval/flags-file.js";
import {
  type EvalBatch,
  type EvalRecord,
  evaluateRecord,
  evaluateRobustness,
  formatReportTable,
  loadRecord,
  MergeError,
  mergeRecords,
  type RobustnessOptions,
  type RobustnessReport,
  reportFromRecord,
  saveRecord,
} from "../../src/eval/index.js";
import { dispose, fromBytes, scope, tensor } from "../../src/tensor/index.js";
import { guardLeaks } from "../attacks/helpers.js";
import { tempDir } from "../data/synth.js";
import { CLASSES, SHAPE, synthData, tinyMoE } from "./helpers.js";

const tmp = tempDir("eval-shards");
after(tmp.cleanup);

/** The report without timings, as JSON text: equal text means equal numbers, bit for bit. */
function numbers(r: RobustnessReport): string {
  return JSON.stringify(r, (k, v) => (k === "seconds" ? 0 : v), 2);
}

/** Through a flags file and back, as shards on other machines would hand it over. */
function viaFile(r: EvalRecord, name: string): EvalRecord {
  const path = join(tmp.dir, `${name}.json`);
  saveRecord(path, r);
  return loadRecord(path);
}

const OPTIONS: RobustnessOptions = {
  attacks: ["fgsm", "pgd3", "apgd-ce", "square"],
  eps: 0.06,
  curveEps: [0.02, 0.04],
  apgdSteps: 4,
  queries: 10,
  moeSteps: 3,
  maskingChecks: { steps: 2, queries: 5 },
  batchSize: 4,
  seed: 5,
};

describe("sharded evaluation and saved flags", () => {
  guardLeaks();

  it("3 shards of a dataset, saved and merged, give exactly the report of one run", () => {
    const ds = synthData(23, 3); // 6 batches of 4 (the last of 3): shards of 2 batches each
    const moe = tinyMoE(2);
    const one = evaluateRecord(moe, ds, OPTIONS);
    const shards = [3, 1, 2].map((i) => viaFile(evaluateRecord(moe, ds, { ...OPTIONS, shard: { index: i, count: 3 } }), `s${i}`));
    const partial = shards.map(reportFromRecord);
    assert.deepEqual(
      partial.map((p) => [p.shard?.index, p.n, p.shard?.total]),
      [
        [3, 7, 23],
        [1, 8, 23],
        [2, 8, 23],
      ],
    );
    assert.equal(partial[1]?.masking?.n, 4, "the shard holding batch 0 ran the masking checks");
    assert.equal(partial[0]?.masking, null);
    assert.match(formatReportTable(partial[0] as RobustnessReport), /shard\s+3\/3 \(7 of 23 images/);
    const merged = mergeRecords(shards);
    const single = reportFromRecord(one);
    assert.equal(numbers(reportFromRecord(merged)), numbers(single));
    // The flags themselves, sample by sample.
    assert.deepEqual(recordToFlags(merged).columns, recordToFlags(one).columns);
    assert.equal(single.shard, null);
    assert.ok(single.masking !== null && single.moe[0]?.routerAttack !== null);
    moe.dispose();
  });

  it("caller-made batches shard and merge the same way", () => {
    const ds = synthData(10, 8);
    const { storage } = ds.view();
    const [x, y] = scope(() => [
      fromBytes(storage.images.slice(0, 160), [10, ...SHAPE], "uint8")
        .to("float32")
        .div(255),
      tensor(Array.from(storage.labels), { dtype: "int64" }),
    ]);
    const batches: EvalBatch[] = [0, 3, 6, 9].map((s) => ({
      x: x.narrow(0, s, Math.min(3, 10 - s)),
      y: y.narrow(0, s, Math.min(3, 10 - s)),
    }));
    const moe = tinyMoE(5);
    const o = { ...OPTIONS, classes: CLASSES, maskingChecks: false };
    const one = evaluateRobustness(moe, batches, o);
    const merged = mergeRecords([1, 2].map((i) => evaluateRecord(moe, batches, { ...o, shard: { index: i, count: 2 } })));
    assert.equal(numbers(reportFromRecord(merged)), numbers(one));
    dispose(batches);
    dispose([x, y]);
    moe.dispose();
  });

  it("merging refuses missing, repeated, foreign or overlapping shards", () => {
    const ds = synthData(12, 1);
    const moe = tinyMoE(1);
    const o: RobustnessOptions = { attacks: ["fgsm"], moeSteps: 2, batchSize: 4 };
    const s = (i: number, extra: RobustnessOptions = {}) =>
      evaluateRecord(moe, ds, { ...o, ...extra, shard: { index: i, count: 3 } });
    const [a, b, c] = [s(1), s(2), s(3)] as [EvalRecord, EvalRecord, EvalRecord];
    assert.throws(
      () => mergeRecords([a, b]),
      (e) => e instanceof MergeError && /shards 3\/3 missing/.test(e.message),
    );
    assert.throws(() => mergeRecords([a, b, b]), /shard 2\/3 is given twice/);
    assert.throws(() => mergeRecords([a, b, s(3, { seed: 1 })]), /different evaluation than input 1: 'seed' differs/);
    assert.throws(() => mergeRecords([a, b, s(3, { attacks: ["pgd2"] })]), /'attacks' differs/);
    assert.throws(() => mergeRecords([a, b, evaluateRecord(moe, ds, { ...o, shard: { index: 3, count: 4 } })]), /of 3 shards/);
    assert.throws(() => mergeRecords([a, b, evaluateRecord(moe, ds, o)]), /is a whole evaluation/);
    assert.throws(() => mergeRecords([]), /nothing to merge/);
    assert.equal(reportFromRecord(mergeRecords([c, a, b])).n, 12);
    // A shard without batches is an error, not an empty report.
    assert.throws(() => evaluateRecord(moe, ds, { ...o, shard: { index: 4, count: 4 } }), /shard 4\/4 has no batches/);
    moe.dispose();
  });

  it("RA against eps: one curve per attack; each point is the run at that eps", () => {
    const ds = synthData(11, 4);
    const moe = tinyMoE(3);
    const o: RobustnessOptions = { attacks: ["fgsm", "pgd3"], moeAttacks: false, batchSize: 4, seed: 2 };
    const r = evaluateRobustness(moe, ds, { ...o, eps: 0.08, curveEps: [0.08, 0.01, 0.04] });
    assert.deepEqual(r.curves.eps, [0.01, 0.04, 0.08]);
    assert.deepEqual(
      r.curves.attacks.map((c) => c.spec),
      ["fgsm", "pgd3"],
    );
    for (const e of [0.01, 0.04, 0.08]) {
      const alone = evaluateRobustness(moe, ds, { ...o, eps: e });
      for (const [i, c] of r.curves.attacks.entries()) {
        const p = c.points.find((q) => q.eps === e);
        assert.equal(p?.correct, alone.attacks[i]?.correct, `${c.spec} at ${e}`);
        assert.deepEqual(p?.interval, alone.attacks[i]?.interval);
      }
      assert.equal(r.curves.worstCase?.find((q) => q.eps === e)?.correct, alone.worstCase?.correct);
    }
    // The headline numbers are those at eps.
    assert.equal(r.attacks[1]?.correct, r.curves.attacks[1]?.points[2]?.correct);
    assert.match(formatReportTable(r), /RA against eps\s+0\.01\s+0\.04\s+0\.08/);
    assert.throws(() => evaluateRobustness(moe, ds, { ...o, curveEps: [0.01, 0.01] }), /eps 0\.01 is listed twice/);
    moe.dispose();
  });
});
