// Certificates against the strongest attacks of the library (issue 11's soundness
// requirement): on a top-1 MoE trained here (test/certify/ibp-helpers.ts),
//  - no sample that IBP (with CROWN refinement) or the Lipschitz-margin radius certifies at eps
//    is broken by APGD-CE or APGD-DLR with restarts at that eps;
//  - every certified radius is at most FAB's minimal adversarial distance (FAB's distance is
//    an upper bound on the true minimal distance, so a radius above it would be a proof of
//    something false), in L-inf and, for the Lipschitz radius, in L2.
// The attacks are src/attacks' own (APGD and FAB were checked against the official AutoAttack
// in test/attacks); PGD with restarts is tested in ibp.test.ts, crown.test.ts and
// lipschitz-radius.test.ts. Randomized smoothing certifies the smoothed classifier, not the
// model, so a deterministic attack on the model says nothing about it: smoothing.test.ts checks
// it against closed forms and the Neyman-Pearson worst case instead.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { APGD } from "../../src/attacks/apgd.js";
import type { Norm } from "../../src/attacks/attack.js";
import { FAB } from "../../src/attacks/fab.js";
import { ibpCertify } from "../../src/certify/ibp.js";
import { lipschitzRadius } from "../../src/certify/lipschitz-radius.js";
import { manualSeed, noGrad, scope, type Tensor, tensor } from "../../src/index.js";
import { type TrainedTask, trainedSyntheticMoE } from "./ibp-helpers.js";

// Up to where IBP stops certifying on this task (FAB's distances start near 32/255), so the
// comparison with FAB is close, not trivially far.
const EPS = [2, 4, 8, 16, 24, 32, 48, 64].map((e) => e / 255);

function rowsOf(flags: readonly boolean[]): number[] {
  return flags.flatMap((c, i) => (c ? [i] : []));
}

/** Samples (of rows) that some APGD run misclassifies within eps. */
function apgdBreaks(task: TrainedTask, x: Tensor, y: Tensor, rows: readonly number[], eps: number, norm: Norm): number[] {
  if (rows.length === 0) return [];
  return scope(() => {
    const idx = tensor([...rows], { dtype: "int64" });
    const xs = x.indexSelect(0, idx);
    const ys = y.indexSelect(0, idx);
    const broken = new Set<number>();
    for (const loss of ["ce", "dlr"] as const) {
      const adv = new APGD(task.moe, { eps, norm, steps: 50, restarts: 3, loss, seed: 7 }).run(xs, ys);
      const dist = adv
        .sub(xs)
        .flatten(1)
        .norm(norm === "linf" ? Number.POSITIVE_INFINITY : 2, 1)
        .max()
        .item();
      // float32 pixels: x + eps - x is eps up to a few ulps of the pixel value (about 6e-8).
      assert.ok(dist <= eps + 1e-6, `APGD-${loss} left the ball: ${dist} > ${eps}`);
      const ok = noGrad(() => task.moe.forward(adv).argmax(1).eq(ys).toFlatArray());
      ok.forEach((v, t) => {
        if (v === 0) broken.add(rows[t] as number);
      });
    }
    return [...broken];
  });
}

/** FAB's minimal adversarial distance per sample (Infinity where it found none; 0 where x is already wrong). */
function fabDistance(task: TrainedTask, x: Tensor, y: Tensor, norm: Norm): number[] {
  return scope(() => {
    const fab = new FAB(task.moe, { norm, steps: 100, restarts: 5, seed: 3 });
    return fab.minimalAdversarial(x, y).distance.toFlatArray();
  });
}

describe("certificates against APGD and FAB (a top-1 MoE trained here)", () => {
  let task: TrainedTask;
  let x: Tensor;
  let y: Tensor;
  before(() => {
    manualSeed(61);
    task = trainedSyntheticMoE();
    ({ x, y } = task.sample(120));
  });
  after(() => {
    for (const t of [x, y]) t.dispose();
    task.dispose();
  });

  it("IBP: APGD-CE/DLR with restarts break no certified sample, and FAB finds no adversarial example inside a certified ball", () => {
    const res = ibpCertify(task.moe, x, y, EPS, { batchSize: 64 });
    const counts = res.certified.map((row) => row.filter(Boolean).length);
    assert.ok((counts[0] as number) >= 10, `too few certified at 2/255 to test anything: ${counts}`);
    assert.ok((counts.at(-1) as number) < (counts[0] as number), `IBP certifies as much at 64/255 as at 2/255: ${counts}`);
    const fab = fabDistance(task, x, y, "linf");
    let checked = 0;
    EPS.forEach((eps, i) => {
      const rows = rowsOf(res.certified[i] as boolean[]);
      assert.deepEqual(apgdBreaks(task, x, y, rows, eps, "linf"), [], `APGD broke samples IBP certified at ${eps * 255}/255`);
      for (const r of rows) {
        assert.ok((fab[r] as number) > eps, `sample ${r} certified at ${eps * 255}/255 but FAB found one at ${fab[r]}`);
      }
      checked += rows.length;
    });
    assert.ok(checked > 0);
    // The check has teeth: FAB finds adversarial examples for most samples (on some, its
    // linearisation of the routed MoE finds none: +Infinity, which bounds nothing), and for
    // some certified sample the largest certified radius is a good part of FAB's distance, so
    // a certificate claiming a few times more would be caught.
    const found = fab.filter((d) => Number.isFinite(d) && d > 0).length;
    assert.ok(found >= 0.5 * fab.length, `FAB found adversarial examples for only ${found} of ${fab.length}`);
    const tightest = Math.max(
      ...fab.map((d, s) => {
        const largest = EPS.filter((_, i) => res.certified[i]?.[s] === true).at(-1) ?? 0;
        return Number.isFinite(d) && d > 0 ? largest / d : 0;
      }),
    );
    assert.ok(tightest > 0.3, `largest certified radius / FAB distance is at most ${tightest}`);
  });

  for (const norm of ["linf", "l2"] as const) {
    it(`Lipschitz-margin radius (${norm}): radius <= FAB's minimal adversarial distance, APGD below the radius breaks nothing`, () => {
      const cert = lipschitzRadius(task.moe, x, { norm, labels: y });
      assert.ok(cert.sound);
      const fab = fabDistance(task, x, y, norm);
      const certified = cert.radius.map((r, i) => (cert.correct?.[i] ?? false) && r > 0);
      const rows = rowsOf(certified);
      assert.ok(rows.length >= 10, `only ${rows.length} samples with a positive certified radius (${norm})`);
      for (const r of rows) {
        const radius = cert.radius[r] as number;
        assert.ok(radius <= (fab[r] as number), `sample ${r}: radius ${radius} > FAB distance ${fab[r]} (${norm})`);
      }
      // APGD at just under each certified radius, samples binned by radius (one run per bin at
      // the bin's smallest radius, so no sample is attacked beyond its own).
      const order = rows.map((r) => [cert.radius[r] as number, r] as const).sort((a, b) => a[0] - b[0]);
      for (let s = 0; s < order.length; ) {
        const lo = (order[s] as readonly [number, number])[0];
        let e = s;
        while (e < order.length && (order[e] as readonly [number, number])[0] <= lo * 1.5) e++;
        const bin = order.slice(s, e).map(([, r]) => r);
        assert.deepEqual(apgdBreaks(task, x, y, bin, lo * (1 - 1e-6), norm), [], `APGD broke a certified sample (${norm})`);
        s = e;
      }
      // Teeth: the certified radius is a real fraction of FAB's distance somewhere (a radius of
      // almost 0 everywhere would pass trivially).
      const best = Math.max(...rows.map((r) => (cert.radius[r] as number) / (fab[r] as number)));
      assert.ok(best > 0.01, `largest radius / FAB distance is only ${best}`);
    });
  }
});
