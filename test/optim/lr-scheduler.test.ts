import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  Adam,
  type AdamOptions,
  AdamW,
  CosineAnnealingLR,
  type CosineAnnealingLROptions,
  CyclicLR,
  type CyclicLROptions,
  LinearLR,
  type LRScheduler,
  MultiStepLR,
  type MultiStepLROptions,
  OneCycleLR,
  type OneCycleLROptions,
  type Optimizer,
  type ParamGroupInit,
  SequentialLR,
  SGD,
  type SGDOptions,
  StepLR,
  type StepLROptions,
  WarmupCosineLR,
  type WarmupCosineLROptions,
} from "../../src/optim/index.js";
import { memoryStats, scope, type Tensor, zeros } from "../../src/tensor/index.js";
import { assertClose } from "../helpers/close.js";
import { fixturePath } from "../helpers/paths.js";

const START_LIVE = memoryStats().liveTensors;

type Kind = "sgd" | "adam" | "adamw";
type GroupOptions = { lr: number; momentum?: number; betas?: [number, number] };

type ScheduleSpec =
  | { type: "StepLR"; options: StepLROptions }
  | { type: "MultiStepLR"; options: MultiStepLROptions }
  | { type: "CosineAnnealingLR"; options: CosineAnnealingLROptions }
  | { type: "WarmupCosineLR"; options: WarmupCosineLROptions }
  | { type: "OneCycleLR"; options: OneCycleLROptions }
  | { type: "CyclicLR"; options: CyclicLROptions };

interface ScheduleCase {
  optimizer: Kind;
  groups: GroupOptions[];
  schedule: ScheduleSpec;
  lrs: number[][];
  momentums?: number[][];
}

interface Reference {
  schedules: Record<string, ScheduleCase>;
}

const ref = JSON.parse(readFileSync(fixturePath("optim-reference.json"), "utf8")) as Reference;

/** PyTorch computes the rates in double precision; ours must agree to rounding. */
const TOL = { rtol: 1e-9, atol: 1e-15 };

interface Rig {
  params: Tensor[];
  opt: Optimizer;
  dispose(): void;
}

function makeRig(kind: Kind, groups: readonly GroupOptions[]): Rig {
  const params = groups.map(() => zeros([1]).keep().requiresGrad_());
  const init = groups.map((g, i) => ({ ...g, params: [params[i] as Tensor] }));
  const lr = (groups[0] as GroupOptions).lr;
  const opt =
    kind === "sgd"
      ? new SGD(init as ParamGroupInit<SGDOptions>[], { lr })
      : new (kind === "adam" ? Adam : AdamW)(init as ParamGroupInit<AdamOptions>[], { lr });
  return {
    params,
    opt,
    dispose() {
      opt.dispose();
      for (const p of params) p.dispose();
    },
  };
}

function makeSchedule(opt: Optimizer, spec: ScheduleSpec): LRScheduler {
  switch (spec.type) {
    case "StepLR":
      return new StepLR(opt, spec.options);
    case "MultiStepLR":
      return new MultiStepLR(opt, spec.options);
    case "CosineAnnealingLR":
      return new CosineAnnealingLR(opt, spec.options);
    case "WarmupCosineLR":
      return new WarmupCosineLR(opt, spec.options);
    case "OneCycleLR":
      return new OneCycleLR(opt, spec.options);
    case "CyclicLR":
      return new CyclicLR(opt, spec.options);
  }
}

function momentumOf(opt: Optimizer): number[] {
  return opt.paramGroups.map((g) => (g.betas !== undefined ? g.betas[0] : (g.momentum as number)));
}

/** The rates (and momenta) after construction and after each further step, n values in all. */
function record(opt: Optimizer, sched: LRScheduler, n: number, from = 0): { lrs: number[][]; moms: number[][] } {
  const lrs: number[][] = [];
  const moms: number[][] = [];
  for (let i = from; i < n; i++) {
    if (i > 0) {
      opt.step();
      sched.step();
    }
    lrs.push(sched.getLastLr());
    moms.push(momentumOf(opt));
  }
  return { lrs, moms };
}

function assertSeries(actual: number[][], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  for (const [i, a] of actual.entries()) assertClose(a, expected[i] as number[], TOL, `${what} at epoch ${i}`);
}

function maxRel(actual: number[][], expected: number[][]): number {
  let worst = 0;
  for (const [i, a] of actual.entries()) {
    for (const [j, v] of a.entries()) {
      const e = (expected[i] as number[])[j] as number;
      if (e !== 0) worst = Math.max(worst, Math.abs(v - e) / Math.abs(e));
      else worst = Math.max(worst, Math.abs(v));
    }
  }
  return worst;
}

describe("schedules match PyTorch 1.13 for 60 epochs", () => {
  const worst: string[] = [];
  for (const [name, c] of Object.entries(ref.schedules)) {
    it(name, () => {
      const rig = makeRig(c.optimizer, c.groups);
      const sched = makeSchedule(rig.opt, c.schedule);
      const { lrs, moms } = record(rig.opt, sched, c.lrs.length);
      assertSeries(lrs, c.lrs, `${name} lr`);
      // The scheduler writes the rates into the optimizer.
      assert.deepEqual(
        rig.opt.paramGroups.map((g) => g.lr),
        lrs[lrs.length - 1],
      );
      let w = maxRel(lrs, c.lrs);
      if (c.momentums !== undefined) {
        assertSeries(moms, c.momentums, `${name} momentum`);
        w = Math.max(w, maxRel(moms, c.momentums));
      }
      worst.push(`${name} ${w.toExponential(1)}`);
      rig.dispose();
    });
  }
  it("reports the largest deviations", (t) => {
    t.diagnostic(`max relative deviation from PyTorch: ${worst.join(", ")}`);
  });
});

describe("momentum cycling", () => {
  it("CyclicLR cycles Adam's beta1 like SGD's momentum and leaves beta2 alone", () => {
    const c = ref.schedules.cyclic_triangular as ScheduleCase;
    const rig = makeRig(
      "adam",
      c.groups.map((g) => ({ lr: g.lr, betas: [0.5, 0.99] })),
    );
    const sched = makeSchedule(rig.opt, c.schedule);
    const { lrs, moms } = record(rig.opt, sched, c.lrs.length);
    assertSeries(lrs, c.lrs, "lr");
    assertSeries(moms, c.momentums as number[][], "beta1");
    for (const g of rig.opt.paramGroups) assert.equal(g.betas?.[1], 0.99);
    rig.dispose();
  });

  it("OneCycleLR writes momentum into SGD groups and beta1 into Adam groups", () => {
    const sgd = makeRig("sgd", [{ lr: 0.1, momentum: 0.9 }]);
    new OneCycleLR(sgd.opt, { maxLr: 1, totalSteps: 10, maxMomentum: 0.97 });
    assert.equal(sgd.opt.paramGroups[0]?.momentum, 0.97);
    assert.equal(sgd.opt.paramGroups[0]?.betas, undefined);
    sgd.dispose();
    const adam = makeRig("adamw", [{ lr: 0.1, betas: [0.9, 0.95] }]);
    new OneCycleLR(adam.opt, { maxLr: 1, totalSteps: 10, maxMomentum: 0.97 });
    assert.deepEqual(adam.opt.paramGroups[0]?.betas, [0.97, 0.95]);
    assert.equal(adam.opt.paramGroups[0]?.momentum, undefined);
    adam.dispose();
  });
});

describe("stateDict / loadStateDict", () => {
  for (const [name, c] of Object.entries(ref.schedules)) {
    it(`resumes identically: ${name}`, () => {
      const cut = 25;
      const first = makeRig(c.optimizer, c.groups);
      const s1 = makeSchedule(first.opt, c.schedule);
      const before = record(first.opt, s1, cut);
      // Through JSON: the state must be plain data.
      const schedState = JSON.parse(JSON.stringify(s1.stateDict()));
      const optState = first.opt.stateDict();
      first.dispose();

      const second = makeRig(c.optimizer, c.groups);
      const s2 = makeSchedule(second.opt, c.schedule);
      second.opt.loadStateDict(optState);
      s2.loadStateDict(schedState);
      assert.equal(s2.lastEpoch, cut - 1);
      assert.deepEqual(s2.getLastLr(), before.lrs[cut - 1]);
      const afterwards = record(second.opt, s2, c.lrs.length, cut);
      const straight = makeRig(c.optimizer, c.groups);
      const s3 = makeSchedule(straight.opt, c.schedule);
      const all = record(straight.opt, s3, c.lrs.length);
      assert.deepEqual([...before.lrs, ...afterwards.lrs], all.lrs);
      assert.deepEqual([...before.moms, ...afterwards.moms], all.moms);
      second.dispose();
      straight.dispose();
    });
  }

  it("rejects state of the wrong shape", () => {
    const rig = makeRig("sgd", [{ lr: 0.1 }, { lr: 0.2 }]);
    const sched = new StepLR(rig.opt, { stepSize: 2 });
    const sd = sched.stateDict();
    assert.throws(() => sched.loadStateDict({ ...sd, baseLrs: [0.1] }), /baseLrs' must be a list of 2 numbers/);
    assert.throws(() => sched.loadStateDict({ ...sd, lastEpoch: 1.5 }), /lastEpoch must be an integer/);
    const cyc = new CyclicLR(rig.opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 4 });
    assert.throws(() => cyc.loadStateDict(sd), /maxLrs' must be a list of 2 numbers/);
    rig.dispose();
  });
});

describe("schedule behaviour", () => {
  it("getLastLr returns a copy and lastEpoch counts steps", () => {
    const rig = makeRig("sgd", [{ lr: 0.1 }]);
    const sched = new StepLR(rig.opt, { stepSize: 1, gamma: 0.5 });
    assert.equal(sched.lastEpoch, 0);
    sched.getLastLr()[0] = 42;
    assert.deepEqual(sched.getLastLr(), [0.1]);
    sched.step();
    assert.equal(sched.lastEpoch, 1);
    assert.deepEqual(sched.getLastLr(), [0.05]);
    assert.equal(rig.opt.paramGroups[0]?.initialLr, 0.1);
    rig.dispose();
  });

  it("chainable schedules follow outside changes to the rate, as PyTorch's", () => {
    const rig = makeRig("sgd", [{ lr: 0.1 }]);
    const sched = new StepLR(rig.opt, { stepSize: 2, gamma: 0.5 });
    rig.opt.paramGroups[0]!.lr = 1;
    sched.step();
    assert.deepEqual(sched.getLastLr(), [1]);
    sched.step();
    assert.deepEqual(sched.getLastLr(), [0.5]);
    rig.dispose();
  });

  it("SequentialLR of LinearLR and CosineAnnealingLR equals WarmupCosineLR", () => {
    const a = makeRig("sgd", [{ lr: 0.2 }, { lr: 0.05 }]);
    const seq = new SequentialLR(
      a.opt,
      [new LinearLR(a.opt, { startFactor: 0.1, totalIters: 5 }), new CosineAnnealingLR(a.opt, { tMax: 55, etaMin: 1e-4 })],
      [5],
    );
    const b = makeRig("sgd", [{ lr: 0.2 }, { lr: 0.05 }]);
    const warm = new WarmupCosineLR(b.opt, { warmupSteps: 5, cosineSteps: 55, startFactor: 0.1, etaMin: 1e-4 });
    assert.deepEqual(record(a.opt, seq, 60).lrs, record(b.opt, warm, 60).lrs);
    a.dispose();
    b.dispose();
  });

  it("OneCycleLR refuses to step past the end of the cycle", () => {
    const rig = makeRig("sgd", [{ lr: 0.1, momentum: 0.9 }]);
    const sched = new OneCycleLR(rig.opt, { maxLr: 0.1, epochs: 2, stepsPerEpoch: 5 });
    for (let i = 0; i < 10; i++) sched.step();
    assert.throws(() => sched.step(), /tried to step 12 times; the cycle has 10 steps/);
    rig.dispose();
  });

  it("CyclicLR accepts a custom scale function", () => {
    const rig = makeRig("sgd", [{ lr: 0.1 }]);
    const sched = new CyclicLR(rig.opt, {
      baseLr: 0,
      maxLr: 1,
      stepSizeUp: 2,
      scaleFn: (x) => 1 / x,
      scaleMode: "cycle",
      cycleMomentum: false,
    });
    const { lrs } = record(rig.opt, sched, 9);
    assert.deepEqual(
      lrs.map((l) => l[0]),
      [0, 0.5, 1, 0.5, 0, 0.25, 0.5, 0.25, 0],
    );
    rig.dispose();
  });
});

describe("bad options give clear errors", () => {
  const rig = makeRig("sgd", [{ lr: 0.1, momentum: 0.9 }]);
  const opt = rig.opt;
  const cases: [string, () => unknown, RegExp][] = [
    ["negative lr in the optimizer", () => scope(() => new SGD([zeros([1])], { lr: -0.1 })), /invalid learning rate -0.1/],
    ["StepLR stepSize 0", () => new StepLR(opt, { stepSize: 0 }), /StepLR: stepSize must be a positive integer, got 0/],
    ["StepLR fractional stepSize", () => new StepLR(opt, { stepSize: 2.5 }), /stepSize must be a positive integer/],
    ["StepLR gamma 0", () => new StepLR(opt, { stepSize: 2, gamma: 0 }), /StepLR: gamma must be a finite number > 0/],
    [
      "MultiStepLR negative milestone",
      () => new MultiStepLR(opt, { milestones: [5, -1] }),
      /milestones must be non-negative integers/,
    ],
    ["CosineAnnealingLR tMax 0", () => new CosineAnnealingLR(opt, { tMax: 0 }), /tMax must be a positive integer/],
    [
      "CosineAnnealingLR negative etaMin",
      () => new CosineAnnealingLR(opt, { tMax: 5, etaMin: -1 }),
      /etaMin must be a finite number >= 0/,
    ],
    ["LinearLR startFactor 0", () => new LinearLR(opt, { startFactor: 0 }), /startFactor must be a finite number > 0 and <= 1/],
    [
      "WarmupCosineLR warmupSteps 0",
      () => new WarmupCosineLR(opt, { warmupSteps: 0, cosineSteps: 10 }),
      /warmupSteps must be a positive integer/,
    ],
    [
      "OneCycleLR negative maxLr",
      () => new OneCycleLR(opt, { maxLr: -0.1, totalSteps: 10 }),
      /OneCycleLR: maxLr must be a finite number > 0/,
    ],
    ["OneCycleLR without a length", () => new OneCycleLR(opt, { maxLr: 0.1 }), /give totalSteps, or epochs and stepsPerEpoch/],
    ["OneCycleLR empty phase", () => new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 3 }), /phase 1 of the cycle is empty/],
    ["OneCycleLR pctStart > 1", () => new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 10, pctStart: 1.5 }), /pctStart must be/],
    [
      "OneCycleLR per-group list of the wrong length",
      () => new OneCycleLR(opt, { maxLr: [0.1, 0.2], totalSteps: 10 }),
      /expected 1 values for maxLr \(one per param group\), got 2/,
    ],
    [
      "OneCycleLR maxMomentum < baseMomentum",
      () => new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 10, baseMomentum: 0.9, maxMomentum: 0.8 }),
      /maxMomentum \(0.8\) must be >= baseMomentum \(0.9\)/,
    ],
    [
      "CyclicLR maxLr < baseLr",
      () => new CyclicLR(opt, { baseLr: 0.1, maxLr: 0.01 }),
      /CyclicLR: maxLr \(0.01\) must be >= baseLr \(0.1\) for param group 0/,
    ],
    ["CyclicLR negative baseLr", () => new CyclicLR(opt, { baseLr: -0.1, maxLr: 0.1 }), /baseLr must be a finite number >= 0/],
    [
      "CyclicLR stepSizeUp 0",
      () => new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 0 }),
      /stepSizeUp must be a finite number > 0/,
    ],
    [
      "CyclicLR unknown mode",
      () => new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, mode: "sawtooth" as "triangular" }),
      /mode must be 'triangular', 'triangular2' or 'exp_range'/,
    ],
    [
      "CyclicLR beta1 above 1",
      () =>
        scope(() => {
          const adam = new Adam([zeros([1])]);
          try {
            return new CyclicLR(adam, { baseLr: 0.01, maxLr: 0.1, maxMomentum: 1.5 });
          } finally {
            adam.dispose();
          }
        }),
      /maxMomentum must be a finite number >= 0 and <= 1/,
    ],
    [
      "SequentialLR milestone count",
      () => new SequentialLR(opt, [new StepLR(opt, { stepSize: 1 }), new StepLR(opt, { stepSize: 1 })], []),
      /expected 1 milestones for 2 schedulers, got 0/,
    ],
  ];
  for (const [name, fn, pattern] of cases) {
    it(name, () => {
      assert.throws(fn, pattern);
    });
  }
  it("(cleanup)", () => rig.dispose());
});

describe("cleanup", () => {
  it("leaves no tensors behind", () => {
    assert.equal(memoryStats().liveTensors, START_LIVE);
  });
});
