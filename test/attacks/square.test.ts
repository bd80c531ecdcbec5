// The Square attack as AutoAttack runs it (src/attacks/square.ts):
// - its schedule and window sizes are square.py's, value for value (the expected numbers are
//   transcribed from p_selection and attack_single_run, not computed with our functions);
// - L-inf outputs sit at vertices of the ball (or on the box), L2 outputs inside the ball;
// - acceptance is monotone: a run of q + 1 iterations continues the run of q (same seed,
//   schedule independent of the budget), so the margin per sample can only fall with q;
// - on a linear model it finds adversarial examples that exist at a generous eps and never
//   beats the analytic optimum where none exists;
// - on the reference CNN it agrees, sample for sample, with the official square.py run on
//   the same weights, images and seed (test/fixtures/square-reference.json, written by
//   square_reference.py), and is weaker than PGD-20 but not harmless;
// - the attack contract: threat model, eval mode, modes restored, no .grad, no leaks, no
//   change to the global generator, reproducible seeds.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { accuracy } from "../../src/attacks/index.js";
import { maxOtherLogit, trueLogit } from "../../src/attacks/losses.js";
import { SQUARE_P_BREAKPOINTS, Square, squareEta, squareP, squareWindowSide } from "../../src/attacks/square.js";
import { Flatten, Linear, Module, Sequential } from "../../src/nn/index.js";
import { defaultGenerator, manualSeed, noGrad, rand, randn, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { fixturePath } from "../helpers/paths.js";
import {
  assertInThreatModel,
  assertNoParamGrads,
  guardLeaks,
  loadReference,
  MOE_SHAPE,
  metaNumber,
  modes,
  type ReferenceFixture,
  referenceCnn,
  tinyMoE,
} from "./helpers.js";

/** z_y - max_{j != y} z_j of model at x, per sample (negative: misclassified). */
function margins(model: Module & { forward(x: Tensor): Tensor }, x: Tensor, y: Tensor): number[] {
  return noGrad(() =>
    scope(() => {
      const z = model.forward(x);
      return trueLogit(z, y).sub(maxOtherLogit(z, y)).double().toFlatArray();
    }),
  );
}

/** Records the training flag the model had at each forward. */
class ModeProbe extends Module {
  seen: boolean[] = [];
  constructor(readonly inner: Sequential) {
    super();
    this.registerModule("inner", inner);
  }
  forward(x: Tensor): Tensor {
    this.seen.push(this.training);
    return this.inner.forward(x);
  }
}

describe("Square: schedule and windows are square.py's", () => {
  it("p_selection at every breakpoint (p_init 0.8, 10000-iteration scale)", () => {
    // [iteration, p] on both sides of each breakpoint 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000.
    const expected: [number, number][] = [
      [0, 0.8],
      [10, 0.8],
      [11, 0.4],
      [50, 0.4],
      [51, 0.2],
      [200, 0.2],
      [201, 0.1],
      [500, 0.1],
      [501, 0.05],
      [1000, 0.05],
      [1001, 0.025],
      [2000, 0.025],
      [2001, 0.0125],
      [4000, 0.0125],
      [4001, 0.00625],
      [6000, 0.00625],
      [6001, 0.003125],
      [8000, 0.003125],
      [8001, 0.0015625],
      [9999, 0.0015625],
    ];
    for (const [it, p] of expected) assert.equal(squareP(0.8, it, 10000), p, `iteration ${it}`);
    assert.deepEqual(SQUARE_P_BREAKPOINTS, [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]);
  });

  it("AutoAttack's 5000 queries use the breakpoints unscaled; resc_schedule stretches them", () => {
    // Without rescaling the last iteration (4999) is in (4000, 6000]: p_init / 128.
    assert.equal(squareP(0.8, 4999, 5000), 0.00625);
    assert.equal(squareP(0.8, 11, 5000), 0.4);
    // With rescaling: int(it / 5000 * 10000).
    assert.equal(squareP(0.8, 5, 5000, true), 0.8); // 10
    assert.equal(squareP(0.8, 6, 5000, true), 0.4); // 12
    assert.equal(squareP(0.8, 25, 5000, true), 0.4); // 50
    assert.equal(squareP(0.8, 26, 5000, true), 0.2); // 52
    assert.equal(squareP(0.8, 2500, 5000, true), 0.00625); // 5000
    assert.equal(squareP(0.8, 4999, 5000, true), 0.0015625); // 9998
    assert.equal(squareP(0.8, 1, 300, true), 0.4); // int(33.33) = 33
    assert.equal(squareP(0.3, 0, 100), 0.3);
  });

  it("window sides: round(sqrt(p * n_features / c)), >= 1 (L-inf) or odd >= 3 (L2), <= min(h, w)", () => {
    const ps = [0.8, 0.4, 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125, 0.0015625];
    // 1x8x8 (the reference CNN): sqrt(51.2) = 7.16, sqrt(25.6) = 5.06, sqrt(12.8) = 3.58, sqrt(6.4) = 2.53, ...
    assert.deepEqual(
      ps.map((p) => squareWindowSide(p, 1, 8, 8, "linf")),
      [7, 5, 4, 3, 2, 1, 1, 1, 1, 1],
    );
    assert.deepEqual(
      ps.map((p) => squareWindowSide(p, 1, 8, 8, "l2")),
      [7, 5, 5, 3, 3, 3, 3, 3, 3, 3],
    );
    // 3x32x32 (CIFAR-10): sqrt(819.2) = 28.6, sqrt(409.6) = 20.2, ..., sqrt(1.6) = 1.26.
    assert.deepEqual(
      ps.map((p) => squareWindowSide(p, 3, 32, 32, "linf")),
      [29, 20, 14, 10, 7, 5, 4, 3, 2, 1],
    );
    assert.deepEqual(
      ps.map((p) => squareWindowSide(p, 3, 32, 32, "l2")),
      [29, 21, 15, 11, 7, 5, 5, 3, 3, 3],
    );
    // Python's round() sends halves to even: sqrt(0.25 * 25) = 2.5 -> 2, sqrt(0.25 * 49) = 3.5 -> 4.
    assert.equal(squareWindowSide(0.25, 1, 5, 5, "linf"), 2);
    assert.equal(squareWindowSide(0.25, 1, 7, 7, "linf"), 4);
    // Never larger than the shorter side.
    assert.equal(squareWindowSide(0.8, 1, 4, 16, "linf"), 4);
    assert.equal(squareWindowSide(0.8, 1, 4, 4, "l2"), 4);
  });

  it("eta(7) is square.py's pattern: positive upper rectangles, negative lower ones, unit norm", () => {
    const e = squareEta(7);
    const rows = e.toArray() as number[][];
    // square.py's eta(7) (untransposed), printed by PyTorch 1.13 in float32.
    const firstRow = [0.023080110549926758, 0.06411141157150269, 0.15643185377120972, 0.15643185377120972];
    firstRow.forEach((v, j) => {
      assert.ok(Math.abs((rows[0]?.[j] ?? 0) - v) < 1e-6, `eta[0][${j}]`);
    });
    assert.ok(Math.abs((rows[1]?.[3] ?? 0) - 0.5257) < 1e-4, "upper centre");
    assert.ok(Math.abs((rows[5]?.[3] ?? 0) + 0.5147) < 1e-4, "lower centre");
    for (let i = 0; i < 7; i++) for (const v of rows[i] ?? []) assert.ok(i < 3 ? v > 0 : v < 0);
    assert.ok(Math.abs(scope(() => e.pow(2).sum().item()) - 1) < 1e-6);
    e.dispose();
  });
});

describe("Square on the reference CNN", () => {
  let ref: ReferenceFixture;
  let x: Tensor;
  let y: Tensor;
  guardLeaks(
    () => {
      ref = loadReference();
      [x, y] = scope(() => [ref.x.narrow(0, 0, 64).clone(), ref.y.narrow(0, 0, 64).clone()]);
    },
    () => {
      x.dispose();
      y.dispose();
      ref.dispose();
    },
  );

  it("L-inf outputs are vertices of the ball: |delta| = eps or clipped by the box", () => {
    const eps = 0.1;
    const adv = new Square(ref.net, { eps, queries: 30 }).run(x, y);
    assertInThreatModel(adv, x, eps, "linf", "Square linf");
    const wrong = scope(() => ref.net.forward(x).argmax(1).ne(y).toFlatArray());
    const a = adv.toArray() as number[][][][];
    const c = x.toArray() as number[][][][];
    a.forEach((img, i) => {
      const flat = img.flat(2);
      const clean = (c[i] as number[][][]).flat(2);
      flat.forEach((v, k) => {
        const d = Math.abs(v - (clean[k] as number));
        if (wrong[i] === 1) assert.equal(d, 0, `sample ${i} is misclassified at x and must stay there`);
        else assert.ok(Math.abs(d - eps) < 1e-6 || v === 0 || v === 1, `sample ${i} pixel ${k}: |delta| ${d}`);
      });
    });
    adv.dispose();
  });

  it("L2 outputs lie in the ball and the box", () => {
    const adv = new Square(ref.net, { eps: 0.6, norm: "l2", queries: 30 }).run(x, y);
    assertInThreatModel(adv, x, 0.6, "l2", "Square l2");
    adv.dispose();
  });

  for (const norm of ["linf", "l2"] as const) {
    it(`${norm}: the margin per sample never increases with the budget (monotone acceptance)`, () => {
      const eps = norm === "linf" ? 0.1 : 0.6;
      let previous: number[] | null = null;
      let improved = 0;
      for (const queries of [0, 1, 2, 4, 8, 16, 32, 64]) {
        const attack = new Square(ref.net, { eps, norm, queries });
        const adv = attack.run(x, y);
        const m = margins(ref.net, adv, y);
        adv.dispose();
        if (previous !== null) {
          const prev = previous;
          m.forEach((v, i) => {
            assert.ok(v <= (prev[i] as number) + 1e-6, `${norm} sample ${i}: margin ${prev[i]} -> ${v} at ${queries} queries`);
            if (v < (prev[i] as number) - 1e-6) improved++;
          });
        }
        previous = m;
      }
      assert.ok(improved > 10, `${norm}: only ${improved} improvements`);
    });
  }

  it("counts queries as square.py does; misclassified samples cost nothing and stay at x", () => {
    const attack = new Square(ref.net, { eps: 0.1, queries: 20 });
    const adv = attack.run(x, y);
    const counts = attack.queryCounts;
    const cleanWrong = scope(() => ref.net.forward(x).argmax(1).ne(y).toFlatArray());
    const advWrong = scope(() => ref.net.forward(adv).argmax(1).ne(y).toFlatArray());
    adv.dispose();
    assert.equal(counts.length, 64);
    counts.forEach((q, i) => {
      if (cleanWrong[i] === 1) assert.equal(q, 0, `sample ${i}`);
      else if (advWrong[i] === 0) assert.equal(q, 21, `robust sample ${i}: 1 initial + 20 iterations`);
      else assert.ok(q >= 1 && q <= 21, `fooled sample ${i}: ${q}`);
    });
    assert.ok(cleanWrong.some((v) => v === 1) || counts.every((q) => q > 0));
  });

  it("the robust accuracy is below clean accuracy and not below PGD-20's (a black-box attack is weaker)", (t) => {
    for (const norm of ["linf", "l2"] as const) {
      const eps = metaNumber(ref.metadata, `eps_${norm}`);
      const pgd20 = metaNumber(ref.metadata, `robust_accuracy_${norm}`);
      const clean = metaNumber(ref.metadata, "clean_accuracy");
      const square = scope(() => accuracy(ref.net, new Square(ref.net, { eps, norm, queries: 100 }).run(ref.x, ref.y), ref.y));
      t.diagnostic(`${norm} eps ${eps}: clean ${clean.toFixed(3)}, Square-100 ${square.toFixed(3)}, PGD-20 ${pgd20.toFixed(3)}`);
      assert.ok(square < clean - 0.05, `${norm}: Square ${square} vs clean ${clean}`);
      assert.ok(square >= pgd20 - 0.02, `${norm}: Square ${square} vs PGD-20 ${pgd20}`);
    }
  });
});

interface OfficialRun {
  name: string;
  norm: "linf" | "l2";
  eps: number;
  images: number;
  queries: number;
  loss: "margin" | "ce";
  restarts: number;
  rescaleSchedule: boolean;
  cleanAccuracy: number;
  robustAccuracy: number;
  robust: string;
  queryCounts: number[] | null;
}

interface OfficialReference {
  source: string;
  aten_cpu_capability: string;
  seed: number;
  p_init: number;
  runs: OfficialRun[];
}

/** 1000-image, 5000-query runs of both norms: minutes on two cores, so only on request. */
const FULL = process.env.RMOE_SQUARE_FULL === "1";

describe("Square agrees with the official square.py (same weights, images, seed)", () => {
  const official = JSON.parse(readFileSync(fixturePath("square-reference.json"), "utf8")) as OfficialReference;
  let ref: ReferenceFixture;
  guardLeaks(
    () => {
      ref = loadReference();
    },
    () => ref.dispose(),
  );

  for (const run of official.runs) {
    const full = run.images >= 1000;
    const skip = full && !FULL ? "1000 x 5000 runs only with RMOE_SQUARE_FULL=1" : false;
    it(`${run.name}: robust flags and query counts match square.py's`, { skip }, (t) => {
      const { x, y } = scope(() => ({ x: ref.x.narrow(0, 0, run.images).clone(), y: ref.y.narrow(0, 0, run.images).clone() }));
      const attack = new Square(ref.net, {
        eps: run.eps,
        norm: run.norm,
        queries: run.queries,
        loss: run.loss,
        restarts: run.restarts,
        rescaleSchedule: run.rescaleSchedule,
        pInit: official.p_init,
        seed: official.seed,
      });
      const start = performance.now();
      const adv = attack.run(x, y);
      const seconds = (performance.now() - start) / 1000;
      const robust = scope(() => ref.net.forward(adv).argmax(1).eq(y).toFlatArray());
      const ours = robust.reduce((s, v) => s + v, 0) / run.images;
      const sameFlags = robust.filter((v, i) => String(v) === run.robust[i]).length / run.images;
      const counts = attack.queryCounts;
      const sameCounts = run.queryCounts === null ? 1 : counts.filter((q, i) => q === run.queryCounts?.[i]).length / run.images;
      t.diagnostic(
        `${run.name}: robust accuracy ours ${ours.toFixed(3)}, square.py ${run.robustAccuracy.toFixed(3)}; ` +
          `same flags ${(100 * sameFlags).toFixed(1)}%, same query counts ${(100 * sameCounts).toFixed(1)}% (${seconds.toFixed(1)} s)`,
      );
      assertInThreatModel(adv, x, run.eps, run.norm, run.name);
      for (const t of [adv, x, y]) t.dispose();
      // The random streams are the official ones, so on the CPU the runs agree sample for
      // sample; the tolerance allows a few float-rounding flips on other CPUs (see the fixture).
      assert.ok(Math.abs(ours - run.robustAccuracy) <= 0.01, `${run.name}: ours ${ours} vs square.py ${run.robustAccuracy}`);
      assert.ok(sameFlags >= 0.98, `${run.name}: only ${sameFlags} of the robust flags agree`);
      assert.ok(sameCounts >= 0.98, `${run.name}: only ${sameCounts} of the query counts agree`);
    });
  }
});

describe("Square on a linear model", () => {
  guardLeaks();

  /** 2 classes on 1x8x8 images in float64; every sample of class 0 with margin 0.05 |w0 - w1|_1 (L-inf) or 0.5 |w0 - w1|_2 (L2). */
  function linear(norm: "linf" | "l2"): { model: Sequential; x: Tensor; y: Tensor; wd: number[] } {
    manualSeed(21);
    const layer = new Linear(64, 2);
    const model = new Sequential(new Flatten(), layer).to("float64");
    const x = scope(() => rand([16, 1, 8, 8], { dtype: "float64" }).sub(0.5).mul(0.04).add(0.5));
    const wd = noGrad(() =>
      scope(() => {
        layer.weight.copy_(randn([2, 64], { dtype: "float64" }));
        const d = layer.weight.select(0, 0).sub(layer.weight.select(0, 1));
        const size = norm === "linf" ? d.abs().sum().item() : d.pow(2).sum().sqrt().item();
        // Margin at x = 0.5 of 0.05 |wd|_1 (so eps* = 0.05) or 0.5 |wd|_2 (eps* = 0.5).
        const target = norm === "linf" ? 0.05 * size : 0.5 * size;
        layer.bias?.copy_(tensor([target - 0.5 * d.sum().item(), 0], { dtype: "float64" }));
        return d.toFlatArray();
      }),
    );
    const y = scope(() => noGrad(() => model.forward(x).argmax(1)));
    return { model, x, y, wd };
  }

  for (const norm of ["linf", "l2"] as const) {
    it(`${norm}: finds the adversarial example at 3x the needed eps, never beats the optimum below it`, (t) => {
      const { model, x, y, wd } = linear(norm);
      assert.ok(scope(() => y.eq(0).all().item()) === 1, "every sample starts in class 0");
      const size = norm === "linf" ? wd.reduce((s, v) => s + Math.abs(v), 0) : Math.sqrt(wd.reduce((s, v) => s + v * v, 0));
      const clean = margins(model, x, y);
      const needed = Math.max(...clean.map((m) => m / size));
      const least = Math.min(...clean.map((m) => m / size));
      // Generous: twice the largest eps any sample needs. Square needs small windows (one pixel
      // after 1000 iterations on 8x8 images) to fit a linear model's sign pattern, and its
      // windows never reach the last row and column (square.py's random_int(0, h - s)).
      const attack = new Square(model, { eps: 2 * needed, norm, queries: 2000 });
      const generous = attack.run(x, y);
      assertInThreatModel(generous, x, 2 * needed, norm, `${norm} generous`);
      const fooled = margins(model, generous, y);
      generous.dispose();
      const used = Math.max(...attack.queryCounts);
      t.diagnostic(`${norm}: eps* in [${least.toFixed(4)}, ${needed.toFixed(4)}]; at 2 eps* all fooled within ${used} queries`);
      assert.ok(
        fooled.every((m) => m < 0),
        `${norm}: not every sample fooled at eps ${2 * needed}`,
      );
      // Below the needed eps nothing exists: every sample stays robust and no margin falls
      // below the closed-form minimum m - eps |wd|.
      const eps = 0.9 * least;
      const tight = scope(() => new Square(model, { eps, norm, queries: 100 }).run(x, y));
      const robust = margins(model, tight, y);
      tight.dispose();
      robust.forEach((m, i) => {
        const optimum = (clean[i] as number) - eps * size;
        assert.ok(m > 0, `${norm} sample ${i} fooled below the needed eps`);
        assert.ok(m >= optimum - 1e-9, `${norm} sample ${i}: margin ${m} below the optimum ${optimum}`);
      });
      for (const t of [x, y]) t.dispose();
      model.dispose();
    });
  }
});

describe("Square: the attack contract", () => {
  let ref: ReferenceFixture;
  let x: Tensor;
  let y: Tensor;
  guardLeaks(
    () => {
      ref = loadReference();
      [x, y] = scope(() => [ref.x.narrow(0, 0, 24).clone(), ref.y.narrow(0, 0, 24).clone()]);
    },
    () => {
      x.dispose();
      y.dispose();
      ref.dispose();
    },
  );

  for (const norm of ["linf", "l2"] as const) {
    it(`${norm}: eval mode during the run, mixed modes restored, no .grad, a fresh tensor, also under noGrad`, () => {
      const eps = norm === "linf" ? 0.1 : 0.6;
      const probe = new ModeProbe(ref.net);
      probe.train();
      ref.net.at(1).training = false;
      const before = modes(probe);
      const attack = new Square(probe, { eps, norm, queries: 10 });
      const adv = attack.run(x, y);
      assert.ok(probe.seen.length > 2 && probe.seen.every((m) => m === false), "the model ran in training mode");
      assert.deepEqual(modes(probe), before);
      assertNoParamGrads(probe, "Square");
      assertInThreatModel(adv, x, eps, norm, `Square ${norm}`);
      const x0 = scope(() => x.sum().item());
      noGrad(() => adv.add_(1));
      assert.equal(
        scope(() => x.sum().item()),
        x0,
      );
      adv.dispose();
      const adv2 = noGrad(() => attack.run(x, y));
      assertInThreatModel(adv2, x, eps, norm, `Square ${norm} under noGrad`);
      adv2.dispose();
      ref.net.eval();
    });
  }

  it("restores modes and frees everything when the model throws mid-attack", () => {
    const probe = new ModeProbe(ref.net);
    const inner = probe.forward.bind(probe);
    let calls = 0;
    probe.forward = (xa: Tensor) => {
      if (++calls > 3) throw new Error("boom");
      return inner(xa);
    };
    probe.train();
    const before = modes(probe);
    assert.throws(() => new Square(probe, { eps: 0.6, norm: "l2", queries: 10 }).run(x, y), /boom/);
    assert.deepEqual(modes(probe), before);
    assertNoParamGrads(probe, "throwing model");
    ref.net.eval();
  });

  it("the same seed gives the same images and leaves the global generator alone; seed null uses it", () => {
    const state = defaultGenerator.getState();
    const a = new Square(ref.net, { eps: 0.1, queries: 15 }).run(x, y);
    const b = new Square(ref.net, { eps: 0.1, queries: 15, seed: 0 }).run(x, y);
    const c = new Square(ref.net, { eps: 0.1, queries: 15, seed: 1 }).run(x, y);
    assert.deepEqual(defaultGenerator.getState(), state, "the global generator moved");
    assert.equal(
      scope(() => a.sub(b).abs().max().item()),
      0,
    );
    assert.ok(scope(() => a.sub(c).abs().max().item()) > 0, "seed 1 gave seed 0's images");
    manualSeed(0);
    const d = new Square(ref.net, { eps: 0.1, queries: 15, seed: null }).run(x, y);
    // The global generator after manualSeed(0) is the stream Generator({seed: 0}) gives.
    assert.equal(
      scope(() => a.sub(d).abs().max().item()),
      0,
    );
    for (const t of [a, b, c, d]) t.dispose();
  });

  it("restarts attack only what is still robust and never make the result weaker", () => {
    const one = new Square(ref.net, { eps: 0.6, norm: "l2", queries: 10 });
    const two = new Square(ref.net, { eps: 0.6, norm: "l2", queries: 10, restarts: 2 });
    const acc1 = scope(() => accuracy(ref.net, one.run(x, y), y));
    const acc2 = scope(() => accuracy(ref.net, two.run(x, y), y));
    assert.ok(acc2 <= acc1, `2 restarts ${acc2} vs 1 ${acc1}`);
    const c1 = one.queryCounts;
    const c2 = two.queryCounts;
    c2.forEach((q, i) => {
      assert.ok(q >= (c1[i] as number), `sample ${i}`);
    });
  });

  it("runs on images smaller than square.py supports (4x4 MoE inputs), float64, and empty batches", () => {
    manualSeed(5);
    const moe = tinyMoE({ k: 1 });
    const xs = rand([8, ...MOE_SHAPE]);
    const ys = noGrad(() => scope(() => moe.forward(xs).argmax(1)));
    for (const norm of ["linf", "l2"] as const) {
      const eps = norm === "linf" ? 0.05 : 0.3;
      const adv = new Square(moe, { eps, norm, queries: 12 }).run(xs, ys);
      assertInThreatModel(adv, xs, eps, norm, `MoE ${norm}`);
      adv.dispose();
    }
    const x64 = scope(() => x.to("float64"));
    const net64 = referenceCopy64(ref);
    for (const norm of ["linf", "l2"] as const) {
      const eps = norm === "linf" ? 0.1 : 0.6;
      const adv = new Square(net64, { eps, norm, queries: 12 }).run(x64, y);
      assertInThreatModel(adv, x64, eps, norm, `float64 ${norm}`);
      adv.dispose();
    }
    const empty = scope(() => new Square(ref.net).run(x.narrow(0, 0, 0), y.narrow(0, 0, 0)));
    assert.deepEqual(empty.shape, [0, 1, 8, 8]);
    for (const t of [xs, ys, x64, empty]) t.dispose();
    net64.dispose();
    moe.dispose();
  });

  it("rejects bad options and inputs that are not images", () => {
    const net = ref.net;
    assert.throws(() => new Square(net, { eps: -1 }), /eps must be/);
    assert.throws(() => new Square(net, { queries: 1.5 }), /queries must be an integer/);
    assert.throws(() => new Square(net, { pInit: 0 }), /pInit must be in/);
    assert.throws(() => new Square(net, { restarts: 0 }), /restarts must be an integer/);
    assert.throws(() => new Square(net, { loss: "dlr" as "ce" }), /loss must be 'margin' or 'ce'/);
    assert.throws(() => new Square(net, { seed: -1 }), /seed must be an integer/);
    const flat = new Sequential(new Flatten(), new Linear(64, 10));
    const xf = scope(() => x.flatten(1));
    assert.throws(() => new Square(flat).run(xf, y), /x must be images \[N, C, H, W\]/);
    xf.dispose();
    flat.dispose();
    assert.equal(new Square(net).name, "Square (linf, 5000 queries)");
    const d = new Square(net, { norm: "l2" });
    assert.deepEqual(
      [d.eps, d.queries, d.pInit, d.restarts, d.loss, d.seed, d.rescaleSchedule],
      [0.5, 5000, 0.8, 1, "margin", 0, false],
    );
  });
});

/** A float64 copy of the reference CNN (same weights; the shared float32 one is left alone). */
function referenceCopy64(ref: ReferenceFixture): Sequential {
  const net = referenceCnn();
  net.loadStateDict(ref.net.stateDict());
  return net.to("float64").eval();
}
