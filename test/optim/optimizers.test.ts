import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { linear, mseLoss } from "../../src/nn/functional.js";
import {
  Adam,
  type AdamOptions,
  AdamW,
  clipGradNorm,
  clipGradValue,
  type LRScheduler,
  OneCycleLR,
  type OneCycleLROptions,
  type Optimizer,
  type OptimizerOptions,
  type ParamGroupInit,
  type ParamState,
  SGD,
  type SGDOptions,
} from "../../src/optim/index.js";
import { dispose, getNumThreads, memoryStats, noGrad, scope, type Tensor, tensor } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { fixturePath } from "../helpers/paths.js";
import { mulberry32 } from "../helpers/rng.js";

const START_LIVE = memoryStats().liveTensors;

type Kind = "sgd" | "adam" | "adamw";
type Options = Record<string, number | boolean | number[]>;

interface TrainingCase {
  optimizer: Kind;
  options: Options;
  groups?: ({ params: number[] } & Options)[];
  lossSign?: number;
  clipNorm?: number;
  schedule?: { type: "OneCycleLR"; options: OneCycleLROptions };
  final: number[][];
}

interface Reference {
  model: { shapes: number[][]; init: number[][]; x: number[]; y: number[] };
  training: Record<string, TrainingCase>;
  clip: {
    grads: number[][];
    norm: { maxNorm: number; normType: number | "inf"; total: number; grads: number[][] }[];
    value: { value: number; grads: number[][] }[];
  };
}

const ref = JSON.parse(readFileSync(fixturePath("optim-reference.json"), "utf8")) as Reference;
const STEPS = 20;

const X = tensor(new Float32Array(ref.model.x), { shape: [16, 4] }).keep();
const Y = tensor(new Float32Array(ref.model.y), { shape: [16, 3] }).keep();

function freshParams(): Tensor[] {
  return ref.model.init.map((d, i) =>
    tensor(new Float32Array(d), { shape: ref.model.shapes[i] as number[] })
      .keep()
      .requiresGrad_(),
  );
}

function backward(params: readonly Tensor[], sign = 1): void {
  scope(() => {
    const [w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor];
    const out = linear(linear(X, w1, b1).tanh(), w2, b2);
    const loss = mseLoss(out, Y);
    (sign < 0 ? loss.neg() : loss).backward();
  });
}

type AnyOptimizer = Optimizer;

function makeOptimizer(kind: Kind, params: readonly Tensor[], options: Options, groups?: TrainingCase["groups"]): AnyOptimizer {
  const init = groups === undefined ? params : groups.map((g) => ({ ...g, params: g.params.map((i) => params[i] as Tensor) }));
  if (kind === "sgd") {
    return new SGD(init as ParamGroupInit<SGDOptions>[], options as unknown as Partial<SGDOptions> & { lr: number });
  }
  const Cls = kind === "adam" ? Adam : AdamW;
  return new Cls(init as ParamGroupInit<AdamOptions>[], options as unknown as Partial<AdamOptions>);
}

function trainStep(opt: AnyOptimizer, params: readonly Tensor[], c: Pick<TrainingCase, "lossSign" | "clipNorm">): void {
  opt.zeroGrad();
  backward(params, c.lossSign ?? 1);
  if (c.clipNorm !== undefined) clipGradNorm(params, c.clipNorm);
  opt.step();
}

function values(params: readonly Tensor[]): number[][] {
  return params.map((p) => p.toFlatArray());
}

/** Largest |a - e| / max(|e|, 1e-3) over all parameters. */
function maxRelError(actual: number[][], expected: number[][]): number {
  let worst = 0;
  for (const [i, a] of actual.entries()) {
    for (const [j, v] of a.entries()) {
      const e = (expected[i] as number[])[j] as number;
      worst = Math.max(worst, Math.abs(v - e) / Math.max(Math.abs(e), 1e-3));
    }
  }
  return worst;
}

function disposeAll(opt: { dispose(): void } | null, params: readonly Tensor[]): void {
  opt?.dispose();
  for (const p of params) p.dispose();
}

describe("optimizers match PyTorch 1.13 after 20 steps", () => {
  const worst: string[] = [];
  for (const [name, c] of Object.entries(ref.training)) {
    it(name, () => {
      const params = freshParams();
      const opt = makeOptimizer(c.optimizer, params, c.options, c.groups);
      const sched: LRScheduler | null = c.schedule ? new OneCycleLR(opt, c.schedule.options) : null;
      for (let s = 0; s < STEPS; s++) {
        trainStep(opt, params, c);
        sched?.step();
      }
      const got = values(params);
      for (const [i, g] of got.entries())
        assertClose(g, c.final[i] as number[], { rtol: 1e-4, atol: 1e-6 }, `${name} param ${i}`);
      worst.push(`${name} ${maxRelError(got, c.final).toExponential(2)}`);
      disposeAll(opt, params);
    });
  }
  it("reports the largest deviations", (t) => {
    t.diagnostic(`max relative deviation from PyTorch: ${worst.join(", ")}`);
  });
});

describe("gradient clipping matches PyTorch", () => {
  it("computes the same gradients at the initial weights", () => {
    const params = freshParams();
    backward(params);
    for (const [i, p] of params.entries()) {
      const g = p.grad as Tensor;
      assertClose(g.toFlatArray(), ref.clip.grads[i] as number[], { rtol: 1e-5, atol: 1e-7 }, `grad ${i}`);
      g.dispose();
    }
    disposeAll(null, params);
  });

  for (const c of ref.clip.norm) {
    it(`clipGradNorm(maxNorm ${c.maxNorm}, normType ${c.normType})`, () => {
      const params = freshParams();
      backward(params);
      const total = clipGradNorm(params, c.maxNorm, c.normType === "inf" ? Infinity : c.normType);
      assertClose([total], [c.total], { rtol: 1e-6, atol: 0 }, "total norm");
      for (const [i, p] of params.entries()) {
        const g = p.grad as Tensor;
        assertClose(g.toFlatArray(), c.grads[i] as number[], { rtol: 1e-5, atol: 1e-8 }, `clipped grad ${i}`);
        g.dispose();
      }
      disposeAll(null, params);
    });
  }

  for (const c of ref.clip.value) {
    it(`clipGradValue(${c.value})`, () => {
      const params = freshParams();
      backward(params);
      clipGradValue(params, c.value);
      for (const [i, p] of params.entries()) {
        const g = p.grad as Tensor;
        assertClose(g.toFlatArray(), c.grads[i] as number[], { rtol: 1e-5, atol: 1e-8 }, `clipped grad ${i}`);
        g.dispose();
      }
      disposeAll(null, params);
    });
  }

  it("returns 0 without gradients and rejects bad arguments", () => {
    const params = freshParams();
    assert.equal(clipGradNorm(params, 1), 0);
    assert.throws(() => clipGradNorm(params, -1), /maxNorm must be a non-negative number/);
    assert.throws(() => clipGradNorm(params, 1, 0), /normType must be a positive number/);
    assert.throws(() => clipGradValue(params, Number.NaN), /clipValue must be a non-negative number/);
    disposeAll(null, params);
  });

  it("errorIfNonfinite throws on an infinite norm", () => {
    const params = freshParams();
    backward(params);
    const g = params[0]?.grad as Tensor;
    noGrad(() => g.fill_(Infinity));
    g.dispose();
    assert.throws(() => clipGradNorm(params, 1, 2, { errorIfNonfinite: true }), /non-?finite|Infinity/);
    disposeAll(null, params);
  });
});

describe("param groups", () => {
  it("fill missing options from the defaults and keep their own", () => {
    const params = freshParams();
    const opt = new SGD(
      [
        { params: params.slice(0, 2), lr: 0.5, momentum: 0.9 },
        { params: params.slice(2), weightDecay: 0.1 },
      ],
      { lr: 0.01, nesterov: false },
    );
    assert.equal(opt.paramGroups.length, 2);
    assert.equal(opt.paramGroups[0]?.lr, 0.5);
    assert.equal(opt.paramGroups[0]?.momentum, 0.9);
    assert.equal(opt.paramGroups[0]?.weightDecay, 0);
    assert.equal(opt.paramGroups[1]?.lr, 0.01);
    assert.equal(opt.paramGroups[1]?.momentum, 0);
    assert.equal(opt.paramGroups[1]?.weightDecay, 0.1);
    disposeAll(opt, params);
  });

  it("apply each group's lr (one step of plain SGD moves each group by its own lr * grad)", () => {
    const params = freshParams();
    backward(params);
    const before = values(params);
    const grads = params.map((p) => {
      const g = p.grad as Tensor;
      const v = g.toFlatArray();
      g.dispose();
      return v;
    });
    const opt = new SGD(
      [
        { params: params.slice(0, 2), lr: 0.1 },
        { params: params.slice(2), lr: 0.001 },
      ],
      { lr: 0.5 },
    );
    opt.step();
    const after = values(params);
    for (const [i, a] of after.entries()) {
      const lr = i < 2 ? 0.1 : 0.001;
      const expected = (before[i] as number[]).map((b, j) => Math.fround(b - lr * ((grads[i] as number[])[j] as number)));
      assertClose(a, expected, { rtol: 1e-6, atol: 1e-7 }, `param ${i}`);
    }
    disposeAll(opt, params);
  });

  it("addParamGroup adds parameters and rejects duplicates", () => {
    const params = freshParams();
    const opt = new Adam(params.slice(0, 2), { lr: 0.01 });
    opt.addParamGroup({ params: params.slice(2), lr: 0.001, betas: [0.5, 0.9] });
    assert.equal(opt.paramGroups[1]?.lr, 0.001);
    assert.deepEqual(opt.paramGroups[1]?.betas, [0.5, 0.9]);
    assert.deepEqual(opt.paramGroups[0]?.betas, [0.9, 0.999]);
    assert.throws(() => opt.addParamGroup({ params: [params[0] as Tensor] }), /more than once/);
    disposeAll(opt, params);
  });

  it("reject bad options and parameters with clear errors", () => {
    const params = freshParams();
    assert.throws(() => new SGD(params, { lr: -0.1 }), /SGD: param group 0: invalid learning rate -0.1/);
    assert.throws(() => new SGD(params, { lr: 0.1, momentum: -1 }), /invalid momentum/);
    assert.throws(() => new SGD(params, { lr: 0.1, nesterov: true }), /Nesterov momentum requires momentum > 0/);
    assert.throws(() => new SGD(params, { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }), /dampening 0/);
    assert.throws(() => new SGD([{ params, lr: Number.NaN }], { lr: 0.1 }), /invalid learning rate NaN/);
    assert.throws(() => new Adam(params, { lr: -1 }), /Adam: param group 0: invalid learning rate -1/);
    assert.throws(() => new Adam(params, { betas: [1, 0.999] }), /invalid beta1/);
    assert.throws(() => new AdamW(params, { betas: [0.9, -0.1] }), /AdamW: param group 0: invalid beta2/);
    assert.throws(() => new Adam(params, { eps: -1e-8 }), /invalid eps/);
    assert.throws(() => new AdamW(params, { weightDecay: -0.01 }), /invalid weightDecay/);
    assert.throws(() => new SGD([], { lr: 0.1 }), /empty parameter list/);
    assert.throws(() => new SGD([params[0] as Tensor, params[0] as Tensor], { lr: 0.1 }), /more than once/);
    const nonLeaf = scope(() => (params[0] as Tensor).mul(2));
    assert.throws(() => new SGD([nonLeaf], { lr: 0.1 }), /not a leaf tensor/);
    nonLeaf.dispose();
    disposeAll(null, params);
  });
});

describe("zeroGrad", () => {
  it("drops gradients by default and zeroes them in place with setToNone = false", () => {
    const params = freshParams();
    const opt = new SGD(params, { lr: 0.1 });
    backward(params);
    opt.zeroGrad(false);
    for (const p of params) {
      const g = p.grad;
      assert.ok(g !== null);
      assert.ok(g.toFlatArray().every((v) => v === 0));
      g.dispose();
    }
    opt.zeroGrad();
    for (const p of params) assert.equal(p.grad, null);
    // A step without gradients leaves the parameters alone.
    const before = values(params);
    opt.step();
    assert.deepEqual(values(params), before);
    disposeAll(opt, params);
  });
});

interface ResumeCase {
  name: string;
  make: (params: readonly Tensor[]) => AnyOptimizer;
  schedule?: OneCycleLROptions;
}

const RESUME: ResumeCase[] = [
  {
    name: "SGD nesterov + weight decay",
    make: (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 }),
  },
  {
    name: "SGD dampening, two groups",
    make: (p) =>
      makeOptimizer("sgd", p, { lr: 0.05, momentum: 0.8, dampening: 0.3 }, [{ params: [0, 1] }, { params: [2, 3], lr: 0.01 }]),
  },
  { name: "Adam amsgrad + maximize", make: (p) => new Adam(p, { lr: 0.01, amsgrad: true, weightDecay: 0.01, maximize: true }) },
  { name: "AdamW", make: (p) => new AdamW(p, { lr: 0.01, weightDecay: 0.05 }) },
  { name: "SGD + OneCycleLR", make: (p) => new SGD(p, { lr: 0.1, momentum: 0.9 }), schedule: { maxLr: 0.2, totalSteps: 20 } },
  {
    name: "Adam + OneCycleLR (beta1)",
    make: (p) => new Adam(p),
    schedule: { maxLr: 0.03, totalSteps: 20, threePhase: true, pctStart: 0.25 },
  },
];

describe("stateDict / loadStateDict", () => {
  for (const c of RESUME) {
    it(`resumes bit-identically: ${c.name}`, () => {
      const straight = freshParams();
      const opt = c.make(straight);
      const sched = c.schedule ? new OneCycleLR(opt, c.schedule) : null;
      for (let s = 0; s < STEPS; s++) {
        trainStep(opt, straight, {});
        sched?.step();
      }
      const expected = values(straight);
      disposeAll(opt, straight);

      const params = freshParams();
      const first = c.make(params);
      const firstSched = c.schedule ? new OneCycleLR(first, c.schedule) : null;
      for (let s = 0; s < STEPS / 2; s++) {
        trainStep(first, params, {});
        firstSched?.step();
      }
      const saved = scope(() => first.stateDict());
      const savedSched = firstSched?.stateDict() ?? null;
      first.dispose();

      const second = c.make(params);
      const secondSched = c.schedule ? new OneCycleLR(second, c.schedule) : null;
      second.loadStateDict(saved);
      if (secondSched !== null && savedSched !== null) secondSched.loadStateDict(JSON.parse(JSON.stringify(savedSched)));
      dispose(saved);
      for (let s = 0; s < STEPS / 2; s++) {
        trainStep(second, params, {});
        secondSched?.step();
      }
      assert.deepEqual(values(params), expected);
      disposeAll(second, params);
    });
  }

  it("is a plain structure: state per parameter index and group options with parameter indices", () => {
    const params = freshParams();
    const opt = new Adam(
      [
        { params: [params[0] as Tensor, params[1] as Tensor], lr: 0.02 },
        { params: [params[2] as Tensor, params[3] as Tensor], amsgrad: true },
      ],
      { lr: 0.01 },
    );
    trainStep(opt, params, {});
    scope(() => {
      const sd = opt.stateDict();
      assert.deepEqual(
        sd.paramGroups.map((g) => g.params),
        [
          [0, 1],
          [2, 3],
        ],
      );
      assert.equal(sd.paramGroups[0]?.lr, 0.02);
      assert.deepEqual(sd.paramGroups[1]?.betas, [0.9, 0.999]);
      assert.deepEqual(Object.keys(sd.state).sort(), ["0", "1", "2", "3"]);
      assert.deepEqual(Object.keys(sd.state[0] ?? {}).sort(), ["expAvg", "expAvgSq", "step"]);
      assert.deepEqual(Object.keys(sd.state[3] ?? {}).sort(), ["expAvg", "expAvgSq", "maxExpAvgSq", "step"]);
      assert.equal(sd.state[0]?.step, 1);
      assert.deepEqual((sd.state[2]!.expAvg as Tensor).shape, [3, 8]);
      // The snapshot is a copy: stepping on does not change it.
      const snap = (sd.state[0]!.expAvg as Tensor).toFlatArray();
      trainStep(opt, params, {});
      assert.deepEqual((sd.state[0]!.expAvg as Tensor).toFlatArray(), snap);
    });
    disposeAll(opt, params);
  });

  it("restores group options, including ones changed after construction", () => {
    const params = freshParams();
    const a = new SGD(params, { lr: 0.1, momentum: 0.9 });
    a.paramGroups[0]!.lr = 0.0123;
    const sd = a.stateDict();
    const b = new SGD(params, { lr: 0.5 });
    b.loadStateDict(sd);
    assert.equal(b.paramGroups[0]?.lr, 0.0123);
    assert.equal(b.paramGroups[0]?.momentum, 0.9);
    assert.equal(b.paramGroups[0]?.params[0], params[0]);
    dispose(sd);
    a.dispose();
    disposeAll(b, params);
  });

  it("rejects snapshots that do not fit, leaving the optimizer as it was", () => {
    const params = freshParams();
    const opt = new Adam(params, { lr: 0.01 });
    trainStep(opt, params, {});
    const live = memoryStats().liveTensors;
    scope(() => {
      const sd = opt.stateDict();
      const other = new Adam([params[0] as Tensor], { lr: 0.01 });
      assert.throws(() => other.loadStateDict(sd), /param group 0 has 4 parameters saved, 1 here/);
      other.dispose();
      const twoGroups = new Adam([{ params: params.slice(0, 2) }, { params: params.slice(2) }]);
      assert.throws(() => twoGroups.loadStateDict(sd), /got 1 param groups, optimizer has 2/);
      twoGroups.dispose();
      const amsgrad = new Adam(params, { lr: 0.01 });
      const bad = { ...sd, paramGroups: sd.paramGroups.map((g) => ({ ...g, amsgrad: true })) };
      assert.throws(() => amsgrad.loadStateDict(bad), /amsgrad needs 'maxExpAvgSq'/);
      assert.equal(amsgrad.paramGroups[0]?.amsgrad, false);
      amsgrad.dispose();
      const swapped = { ...sd, state: { ...sd.state, 0: sd.state[2] ?? {} } };
      assert.throws(() => opt.loadStateDict(swapped), /state 'expAvg' of parameter 0 has shape \[3,8\], the parameter \[8,4\]/);
    });
    assert.equal(memoryStats().liveTensors, live);
    disposeAll(opt, params);
  });
});

describe("memory", () => {
  const cases: [string, (p: readonly Tensor[]) => AnyOptimizer][] = [
    ["SGD", (p) => new SGD(p, { lr: 0.05 })],
    ["SGD momentum", (p) => new SGD(p, { lr: 0.05, momentum: 0.9 })],
    [
      "SGD nesterov + wd + maximize",
      (p) => new SGD(p, { lr: 0.01, momentum: 0.9, nesterov: true, weightDecay: 0.01, maximize: true }),
    ],
    ["Adam wd + maximize", (p) => new Adam(p, { lr: 0.01, weightDecay: 0.01, maximize: true })],
    ["Adam amsgrad", (p) => new Adam(p, { lr: 0.01, amsgrad: true })],
    ["AdamW amsgrad", (p) => new AdamW(p, { lr: 0.01, amsgrad: true })],
  ];
  for (const [name, make] of cases) {
    it(`a step allocates nothing once the state exists: ${name}`, () => {
      const params = freshParams();
      const opt = make(params);
      let afterStep3 = -1;
      for (let s = 1; s <= 30; s++) {
        trainStep(opt, params, {});
        if (s === 3) afterStep3 = memoryStats().liveTensors;
      }
      assert.equal(memoryStats().liveTensors, afterStep3);
      disposeAll(opt, params);
    });
  }

  it("state survives an enclosing scope and dispose() frees it", () => {
    const params = freshParams();
    const live = memoryStats().liveTensors;
    const opt = new Adam(params, { lr: 0.01, amsgrad: true });
    scope(() => trainStep(opt, params, {}));
    // 4 params x (expAvg, expAvgSq, maxExpAvgSq) + one scratch buffer per distinct shape.
    assert.equal(memoryStats().liveTensors, live + 4 * 3 + 4);
    trainStep(opt, params, {});
    opt.zeroGrad();
    opt.dispose();
    assert.equal(memoryStats().liveTensors, live);
    assert.throws(() => opt.step(), /the optimizer was disposed/);
    disposeAll(null, params);
  });

  it("updates parameters in place without recording autograd history", () => {
    const params = freshParams();
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9 });
    trainStep(opt, params, {});
    for (const p of params) {
      assert.equal(p.isLeaf, true);
      assert.equal(p.gradFn, null);
      assert.equal(p.requiresGrad, true);
    }
    disposeAll(opt, params);
  });
});

describe("large and small parameters", () => {
  it("updates both by the fused SGD formula and leaves the thread count as it was", () => {
    const threads = getNumThreads();
    // One parameter big enough for ATen to split its update over threads, one too small for that.
    const sizes = [600_000, 1_000];
    const rng = mulberry32(5);
    const init = sizes.map((n) => Float64Array.from({ length: n }, () => rng() - 0.5));
    const grads = sizes.map((n) => Float64Array.from({ length: n }, () => rng() - 0.5));
    const params = init.map((d) => tensor(d).keep().requiresGrad_());
    const opt = new SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    for (let step = 0; step < 2; step++) {
      noGrad(() =>
        params.forEach((p, i) => {
          const g = tensor(grads[i] as Float64Array);
          p.grad = g;
          g.dispose();
        }),
      );
      opt.step();
      assert.equal(getNumThreads(), threads);
    }
    params.forEach((p, i) => {
      const p0 = init[i] as Float64Array;
      const g = grads[i] as Float64Array;
      const actual = p.toFlatArray();
      // step 1: buf = g + wd p0, p1 = p0 - lr buf; step 2: buf = m buf + g + wd p1, p2 = p1 - lr buf.
      const expected = Array.from(p0, (x0, j) => {
        const b1 = (g[j] as number) + 0.01 * x0;
        const x1 = x0 - 0.1 * b1;
        const b2 = 0.9 * b1 + (g[j] as number) + 0.01 * x1;
        return x1 - 0.1 * b2;
      });
      assertClose(actual, expected, { atol: 1e-12, rtol: 1e-12 }, `parameter of ${sizes[i]} elements`);
    });
    disposeAll(opt, params);
  });
});

describe("optimizer typing", () => {
  it("any optimizer is usable where the base type is expected", () => {
    const params = freshParams();
    const opts: Optimizer<OptimizerOptions, ParamState>[] = [new SGD(params, { lr: 0.1 }), new AdamW(params)];
    assert.deepEqual(
      opts.map((o) => o.paramGroups[0]?.lr),
      [0.1, 0.001],
    );
    for (const o of opts) o.dispose();
    disposeAll(null, params);
  });
});

describe("cleanup", () => {
  it("leaves no tensors behind", () => {
    X.dispose();
    Y.dispose();
    assert.equal(memoryStats().liveTensors, START_LIVE);
  });
});
