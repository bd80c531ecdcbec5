// Learning-rate schedules, as torch.optim.lr_scheduler (PyTorch 1.13). Each step() computes
// the new rates with PyTorch's own (mostly recursive, "chainable") formulas in the same
// floating-point order, so the sequences agree with PyTorch's to the last bit or so, and
// writes them (and momentum or beta1, where a schedule cycles it) into the param groups.
//
// Construction performs PyTorch's initial step: right after `new StepLR(...)` the groups
// hold the epoch-0 rates. Call optimizer.step() and then scheduler.step() once per epoch
// (or per batch for OneCycleLR and CyclicLR).
import type { Optimizer, ParamGroup } from "./optimizer.js";

export type SchedulerStateValue =
  | number
  | boolean
  | string
  | null
  | readonly SchedulerStateValue[]
  | { readonly [key: string]: SchedulerStateValue };

/** A scheduler's state: plain JSON-serialisable values. */
export interface SchedulerStateDict {
  lastEpoch: number;
  stepCount: number;
  baseLrs: number[];
  lastLr: number[];
  [key: string]: SchedulerStateValue;
}

// Module-private access to another scheduler's internals (SequentialLR drives its children).
let rewindEpoch: (s: LRScheduler) => void;
let runInitialStep: (s: LRScheduler) => void;
let stepToEpoch: (s: LRScheduler, epoch: number) => void;

function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function checkNumber(
  where: string,
  name: string,
  v: unknown,
  min: number,
  options: { strict?: boolean; max?: number } = {},
): void {
  const ok = isFiniteNumber(v) && (options.strict ? v > min : v >= min) && (options.max === undefined || v <= options.max);
  if (!ok) {
    const range = `${options.strict ? ">" : ">="} ${min}${options.max === undefined ? "" : ` and <= ${options.max}`}`;
    throw new RangeError(`${where}: ${name} must be a finite number ${range}, got ${String(v)}`);
  }
}

function checkPositiveInteger(where: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new RangeError(`${where}: ${name} must be a positive integer, got ${String(v)}`);
  }
}

/** One value per param group from a number or a per-group list (PyTorch's _format_param). */
function perGroup(where: string, name: string, optimizer: Optimizer, v: number | readonly number[]): number[] {
  const n = optimizer.paramGroups.length;
  if (Array.isArray(v)) {
    if (v.length !== n) throw new RangeError(`${where}: expected ${n} values for ${name} (one per param group), got ${v.length}`);
    return [...(v as readonly number[])];
  }
  return new Array<number>(n).fill(v as number);
}

function numberList(where: string, name: string, v: unknown, length: number): number[] {
  if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === "number")) {
    throw new RangeError(`${where}: state '${name}' must be a list of ${length} numbers`);
  }
  return [...(v as number[])];
}

/** Which option a momentum-cycling schedule drives: SGD's momentum or Adam's beta1. */
type MomentumTarget = "momentum" | "beta1";

function momentumTarget(where: string, optimizer: Optimizer): MomentumTarget {
  if (optimizer.defaults.betas !== undefined) return "beta1";
  if (optimizer.defaults.momentum !== undefined) return "momentum";
  throw new TypeError(`${where}: cycleMomentum needs an optimizer with momentum or betas`);
}

function setMomentum(group: ParamGroup, target: MomentumTarget, m: number): void {
  if (target === "beta1") group.betas = [m, (group.betas as readonly [number, number])[1]];
  else group.momentum = m;
}

export abstract class LRScheduler {
  readonly optimizer: Optimizer;
  /** The rate each group started from (its initialLr). */
  protected baseLrs: number[];
  protected epoch = -1;
  /** How many times step() ran, the construction step included. */
  protected stepCount = 0;
  protected lastLrs: number[] = [];

  static {
    rewindEpoch = (s) => {
      s.epoch -= 1;
    };
    runInitialStep = (s) => s.initialStep();
    stepToEpoch = (s, epoch) => {
      s.stepCount += 1;
      s.epoch = epoch;
      s.applyLrs(s.closedFormLr() ?? s.computeLr());
    };
  }

  /**
   * Attaches to the optimizer; the first schedule on it records each group's lr as
   * initialLr. Subclasses end their constructor with this.initialStep().
   */
  protected constructor(optimizer: Optimizer) {
    this.optimizer = optimizer;
    for (const g of optimizer.paramGroups) g.initialLr ??= g.lr;
    this.baseLrs = optimizer.paramGroups.map((g) => g.initialLr as number);
  }

  /** The rates for this.epoch from the groups' current rates (PyTorch's get_lr). */
  protected abstract computeLr(): number[];

  /** The rates for this.epoch from the base rates alone, where PyTorch has a closed form. */
  protected closedFormLr(): number[] | null {
    return null;
  }

  /** PyTorch's _initial_step: the epoch-0 rates, written at construction. */
  protected initialStep(): void {
    this.stepCount = 0;
    this.step();
  }

  /** Advances one epoch (or batch) and writes the new rates into the optimizer. */
  step(): void {
    this.stepCount += 1;
    this.epoch += 1;
    this.applyLrs(this.computeLr());
  }

  protected applyLrs(lrs: readonly number[]): void {
    const groups = this.optimizer.paramGroups;
    for (const [i, g] of groups.entries()) g.lr = lrs[i] as number;
    this.lastLrs = groups.map((g) => g.lr);
  }

  /** The rates the last step() wrote, one per param group. */
  getLastLr(): number[] {
    return [...this.lastLrs];
  }

  /** The index of the current epoch (0 right after construction). */
  get lastEpoch(): number {
    return this.epoch;
  }

  stateDict(): SchedulerStateDict {
    return {
      lastEpoch: this.epoch,
      stepCount: this.stepCount,
      baseLrs: [...this.baseLrs],
      lastLr: [...this.lastLrs],
      ...this.extraState(),
    };
  }

  /**
   * Restores a stateDict() snapshot. Options come from the constructor; the rates the
   * optimizer holds come from the optimizer's own loadStateDict.
   */
  loadStateDict(sd: SchedulerStateDict): void {
    const where = `${this.constructor.name}.loadStateDict`;
    const n = this.optimizer.paramGroups.length;
    if (typeof sd.lastEpoch !== "number" || !Number.isInteger(sd.lastEpoch) || sd.lastEpoch < -1) {
      throw new RangeError(`${where}: lastEpoch must be an integer >= -1, got ${String(sd.lastEpoch)}`);
    }
    if (typeof sd.stepCount !== "number" || !Number.isInteger(sd.stepCount) || sd.stepCount < 0) {
      throw new RangeError(`${where}: stepCount must be a non-negative integer, got ${String(sd.stepCount)}`);
    }
    const baseLrs = numberList(where, "baseLrs", sd.baseLrs, n);
    const lastLr = numberList(where, "lastLr", sd.lastLr, n);
    this.loadExtraState(sd, where);
    this.epoch = sd.lastEpoch;
    this.stepCount = sd.stepCount;
    this.baseLrs = baseLrs;
    this.lastLrs = lastLr;
  }

  /** Schedule-specific state beyond epoch, step count and rates. */
  protected extraState(): { [key: string]: SchedulerStateValue } {
    return {};
  }

  /** Validates and restores extraState(); must not change anything when it throws. */
  protected loadExtraState(_sd: SchedulerStateDict, _where: string): void {}

  protected currentLrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }
}

// ---- StepLR ------------------------------------------------------------------------------

export interface StepLROptions {
  /** Epochs between decays (a positive integer). */
  stepSize: number;
  /** Multiplicative decay (default 0.1). */
  gamma?: number;
}

/** Multiplies the rate by gamma every stepSize epochs. */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Optimizer, options: StepLROptions) {
    super(optimizer);
    checkPositiveInteger("StepLR", "stepSize", options.stepSize);
    checkNumber("StepLR", "gamma", options.gamma ?? 0.1, 0, { strict: true });
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    if (this.epoch === 0 || this.epoch % this.stepSize !== 0) return lrs;
    return lrs.map((lr) => lr * this.gamma);
  }

  protected override closedFormLr(): number[] {
    return this.baseLrs.map((b) => b * this.gamma ** Math.floor(this.epoch / this.stepSize));
  }
}

// ---- MultiStepLR ---------------------------------------------------------------------------

export interface MultiStepLROptions {
  /** Epochs at which to decay; a milestone listed k times decays by gamma^k. */
  milestones: readonly number[];
  /** Multiplicative decay (default 0.1). */
  gamma?: number;
}

/** Multiplies the rate by gamma at each milestone epoch. */
export class MultiStepLR extends LRScheduler {
  readonly milestones: readonly number[];
  readonly gamma: number;
  readonly #counts = new Map<number, number>();

  constructor(optimizer: Optimizer, options: MultiStepLROptions) {
    super(optimizer);
    if (!Array.isArray(options.milestones)) throw new TypeError("MultiStepLR: milestones must be an array of epochs");
    for (const m of options.milestones) {
      if (typeof m !== "number" || !Number.isInteger(m) || m < 0) {
        throw new RangeError(`MultiStepLR: milestones must be non-negative integers, got ${String(m)}`);
      }
    }
    checkNumber("MultiStepLR", "gamma", options.gamma ?? 0.1, 0, { strict: true });
    this.milestones = [...options.milestones].sort((a, b) => a - b);
    for (const m of this.milestones) this.#counts.set(m, (this.#counts.get(m) ?? 0) + 1);
    this.gamma = options.gamma ?? 0.1;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    const k = this.#counts.get(this.epoch);
    if (k === undefined) return lrs;
    return lrs.map((lr) => lr * this.gamma ** k);
  }

  protected override closedFormLr(): number[] {
    const passed = this.milestones.filter((m) => m <= this.epoch).length;
    return this.baseLrs.map((b) => b * this.gamma ** passed);
  }
}

// ---- LinearLR ------------------------------------------------------------------------------

export interface LinearLROptions {
  /** Factor on the base rate at epoch 0, in (0, 1] (default 1/3). */
  startFactor?: number;
  /** Factor reached after totalIters epochs, in [0, 1] (default 1). */
  endFactor?: number;
  /** Epochs of the linear ramp (default 5). */
  totalIters?: number;
}

/** Scales the rate by a factor moving linearly from startFactor to endFactor. */
export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;

  constructor(optimizer: Optimizer, options: LinearLROptions = {}) {
    super(optimizer);
    const startFactor = options.startFactor ?? 1 / 3;
    const endFactor = options.endFactor ?? 1;
    const totalIters = options.totalIters ?? 5;
    checkNumber("LinearLR", "startFactor", startFactor, 0, { strict: true, max: 1 });
    checkNumber("LinearLR", "endFactor", endFactor, 0, { max: 1 });
    checkPositiveInteger("LinearLR", "totalIters", totalIters);
    this.startFactor = startFactor;
    this.endFactor = endFactor;
    this.totalIters = totalIters;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const lrs = this.currentLrs();
    const { startFactor: s, endFactor: e, totalIters: n } = this;
    if (this.epoch === 0) return lrs.map((lr) => lr * s);
    if (this.epoch > n) return lrs;
    return lrs.map((lr) => lr * (1 + (e - s) / (n * s + (this.epoch - 1) * (e - s))));
  }

  protected override closedFormLr(): number[] {
    const { startFactor: s, endFactor: e, totalIters: n } = this;
    return this.baseLrs.map((b) => b * (s + ((e - s) * Math.min(n, this.epoch)) / n));
  }
}

// ---- CosineAnnealingLR ---------------------------------------------------------------------

export interface CosineAnnealingLROptions {
  /** Epochs from the base rate down to etaMin (half a cosine period). */
  tMax: number;
  /** The lowest rate (default 0). */
  etaMin?: number;
}

/**
 * Cosine annealing from the base rate to etaMin over tMax epochs, then back up (SGDR
 * without restarts). PyTorch's recursive form, not the closed form: the two differ in
 * the last bits, and the recursive one follows any outside change to the rate.
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: Optimizer, options: CosineAnnealingLROptions) {
    super(optimizer);
    checkPositiveInteger("CosineAnnealingLR", "tMax", options.tMax);
    checkNumber("CosineAnnealingLR", "etaMin", options.etaMin ?? 0, 0);
    this.tMax = options.tMax;
    this.etaMin = options.etaMin ?? 0;
    this.initialStep();
  }

  protected computeLr(): number[] {
    const { tMax: T, etaMin: eta, epoch: e } = this;
    const lrs = this.currentLrs();
    if (e === 0) return lrs;
    if (this.stepCount === 1 && e > 0) {
      return this.baseLrs.map((b) => eta + ((b - eta) * (1 + Math.cos((e * Math.PI) / T))) / 2);
    }
    if ((e - 1 - T) % (2 * T) === 0) {
      return lrs.map((lr, i) => lr + (((this.baseLrs[i] as number) - eta) * (1 - Math.cos(Math.PI / T))) / 2);
    }
    return lrs.map((lr) => ((1 + Math.cos((Math.PI * e) / T)) / (1 + Math.cos((Math.PI * (e - 1)) / T))) * (lr - eta) + eta);
  }

  protected override closedFormLr(): number[] {
    const { tMax: T, etaMin: eta, epoch: e } = this;
    return this.baseLrs.map((b) => eta + ((b - eta) * (1 + Math.cos((Math.PI * e) / T))) / 2);
  }
}

// ---- SequentialLR and linear warmup + cosine -----------------------------------------------

/** Runs schedulers one after another, switching at the milestone epochs. */
export class SequentialLR extends LRScheduler {
  readonly schedulers: readonly LRScheduler[];
  readonly milestones: readonly number[];

  /** The schedulers must already be attached to optimizer; milestones has one fewer entry. */
  constructor(optimizer: Optimizer, schedulers: readonly LRScheduler[], milestones: readonly number[]) {
    if (schedulers.length === 0) throw new RangeError("SequentialLR: needs at least one scheduler");
    for (const [i, s] of schedulers.entries()) {
      if (s.optimizer !== optimizer) throw new RangeError(`SequentialLR: scheduler ${i} belongs to a different optimizer`);
    }
    if (milestones.length !== schedulers.length - 1) {
      throw new RangeError(
        `SequentialLR: expected ${schedulers.length - 1} milestones for ${schedulers.length} schedulers, got ${milestones.length}`,
      );
    }
    for (const [i, m] of milestones.entries()) {
      if (!Number.isInteger(m) || m <= 0 || (i > 0 && m < (milestones[i - 1] as number))) {
        throw new RangeError(`SequentialLR: milestones must be increasing positive integers, got [${milestones.join(", ")}]`);
      }
    }
    super(optimizer);
    this.schedulers = [...schedulers];
    this.milestones = [...milestones];
    this.epoch = 0;
    // As PyTorch: undo the construction steps of the children and start over with the first.
    for (const g of optimizer.paramGroups) g.lr = g.initialLr as number;
    for (const s of this.schedulers) rewindEpoch(s);
    runInitialStep(this.schedulers[0] as LRScheduler);
    this.lastLrs = (this.schedulers[0] as LRScheduler).getLastLr();
  }

  protected computeLr(): number[] {
    return this.currentLrs();
  }

  override step(): void {
    this.epoch += 1;
    let idx = 0;
    while (idx < this.milestones.length && (this.milestones[idx] as number) <= this.epoch) idx++;
    const s = this.schedulers[idx] as LRScheduler;
    if (idx > 0 && this.milestones[idx - 1] === this.epoch) stepToEpoch(s, 0);
    else s.step();
    this.lastLrs = s.getLastLr();
  }

  protected override extraState(): { [key: string]: SchedulerStateValue } {
    return { schedulers: this.schedulers.map((s) => s.stateDict()) };
  }

  protected override loadExtraState(sd: SchedulerStateDict, where: string): void {
    const states = sd.schedulers;
    if (!Array.isArray(states) || states.length !== this.schedulers.length) {
      throw new RangeError(`${where}: expected states for ${this.schedulers.length} schedulers`);
    }
    for (const [i, s] of this.schedulers.entries()) s.loadStateDict(states[i] as SchedulerStateDict);
  }
}

export interface WarmupCosineLROptions {
  /** Epochs of linear warmup from startFactor * lr up to lr (a positive integer). */
  warmupSteps: number;
  /** Length of the cosine part (its tMax), usually total epochs - warmupSteps. */
  cosineSteps: number;
  /** Warmup start factor in (0, 1] (default 1/3, as LinearLR). */
  startFactor?: number;
  /** The rate the cosine ends at (default 0). */
  etaMin?: number;
}

/**
 * Linear warmup then cosine annealing: exactly
 * SequentialLR([LinearLR(startFactor, 1, warmupSteps), CosineAnnealingLR(cosineSteps, etaMin)], [warmupSteps]).
 */
export class WarmupCosineLR extends SequentialLR {
  constructor(optimizer: Optimizer, options: WarmupCosineLROptions) {
    checkPositiveInteger("WarmupCosineLR", "warmupSteps", options.warmupSteps);
    checkPositiveInteger("WarmupCosineLR", "cosineSteps", options.cosineSteps);
    const warmup = new LinearLR(optimizer, {
      startFactor: options.startFactor ?? 1 / 3,
      endFactor: 1,
      totalIters: options.warmupSteps,
    });
    const cosine = new CosineAnnealingLR(optimizer, { tMax: options.cosineSteps, etaMin: options.etaMin ?? 0 });
    super(optimizer, [warmup, cosine], [options.warmupSteps]);
  }
}

// ---- OneCycleLR ----------------------------------------------------------------------------

export interface OneCycleLROptions {
  /** Peak rate, one for all groups or one per group. */
  maxLr: number | readonly number[];
  /** Length of the cycle; or give epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  /** Fraction of the cycle spent increasing the rate (default 0.3). */
  pctStart?: number;
  /** Default "cos". */
  annealStrategy?: "cos" | "linear";
  /** Cycle momentum (SGD) or beta1 (Adam) inversely to the rate (default true). */
  cycleMomentum?: boolean;
  /** Default 0.85. */
  baseMomentum?: number | readonly number[];
  /** Default 0.95. */
  maxMomentum?: number | readonly number[];
  /** Initial rate = maxLr / divFactor (default 25). */
  divFactor?: number;
  /** Final rate = initial rate / finalDivFactor (default 1e4). */
  finalDivFactor?: number;
  /** Three phases (up, down to the initial rate, annihilate) instead of two (default false). */
  threePhase?: boolean;
}

type LrKey = "initial" | "max" | "min";
type MomKey = "max" | "base";
interface Phase {
  endStep: number;
  startLr: LrKey;
  endLr: LrKey;
  startMomentum: MomKey;
  endMomentum: MomKey;
}

/** The 1cycle policy (Smith & Topin): one rate is written per batch, totalSteps times. */
export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly annealStrategy: "cos" | "linear";
  readonly cycleMomentum: boolean;
  readonly #phases: Phase[];
  #maxLrs: number[];
  #minLrs: number[];
  #maxMomentums: number[];
  #baseMomentums: number[];
  readonly #target: MomentumTarget | null;

  constructor(optimizer: Optimizer, options: OneCycleLROptions) {
    const where = "OneCycleLR";
    let totalSteps: number;
    if (options.totalSteps !== undefined) {
      checkPositiveInteger(where, "totalSteps", options.totalSteps);
      totalSteps = options.totalSteps;
    } else if (options.epochs !== undefined && options.stepsPerEpoch !== undefined) {
      checkPositiveInteger(where, "epochs", options.epochs);
      checkPositiveInteger(where, "stepsPerEpoch", options.stepsPerEpoch);
      totalSteps = options.epochs * options.stepsPerEpoch;
    } else {
      throw new TypeError(`${where}: give totalSteps, or epochs and stepsPerEpoch`);
    }
    const pctStart = options.pctStart ?? 0.3;
    checkNumber(where, "pctStart", pctStart, 0, { max: 1 });
    const annealStrategy = options.annealStrategy ?? "cos";
    if (annealStrategy !== "cos" && annealStrategy !== "linear") {
      throw new RangeError(`${where}: annealStrategy must be 'cos' or 'linear', got '${String(annealStrategy)}'`);
    }
    const divFactor = options.divFactor ?? 25;
    const finalDivFactor = options.finalDivFactor ?? 1e4;
    checkNumber(where, "divFactor", divFactor, 0, { strict: true });
    checkNumber(where, "finalDivFactor", finalDivFactor, 0, { strict: true });
    const phases: Phase[] = options.threePhase
      ? [
          { endStep: pctStart * totalSteps - 1, startLr: "initial", endLr: "max", startMomentum: "max", endMomentum: "base" },
          { endStep: 2 * pctStart * totalSteps - 2, startLr: "max", endLr: "initial", startMomentum: "base", endMomentum: "max" },
          { endStep: totalSteps - 1, startLr: "initial", endLr: "min", startMomentum: "max", endMomentum: "max" },
        ]
      : [
          { endStep: pctStart * totalSteps - 1, startLr: "initial", endLr: "max", startMomentum: "max", endMomentum: "base" },
          { endStep: totalSteps - 1, startLr: "max", endLr: "min", startMomentum: "base", endMomentum: "max" },
        ];
    let prev = 0;
    for (const [i, ph] of phases.entries()) {
      // PyTorch divides by each phase's length; an empty phase would be a division by zero.
      if (!(ph.endStep > prev)) {
        throw new RangeError(
          `${where}: phase ${i + 1} of the cycle is empty (pctStart ${pctStart} with totalSteps ${totalSteps}); ` +
            "make pctStart * totalSteps larger than 1 and leave room for the later phases",
        );
      }
      prev = ph.endStep;
    }
    const maxLrs = perGroup(where, "maxLr", optimizer, options.maxLr);
    for (const m of maxLrs) checkNumber(where, "maxLr", m, 0, { strict: true });
    const cycleMomentum = options.cycleMomentum ?? true;
    const target = cycleMomentum ? momentumTarget(where, optimizer) : null;
    const maxMomentums = perGroup(where, "maxMomentum", optimizer, options.maxMomentum ?? 0.95);
    const baseMomentums = perGroup(where, "baseMomentum", optimizer, options.baseMomentum ?? 0.85);
    if (cycleMomentum) checkMomentums(where, baseMomentums, maxMomentums, target === "beta1");
    // As PyTorch, the cycle's start rate becomes initialLr before the base class reads it.
    for (const [i, g] of optimizer.paramGroups.entries()) g.initialLr = (maxLrs[i] as number) / divFactor;
    if (target !== null) for (const [i, g] of optimizer.paramGroups.entries()) setMomentum(g, target, maxMomentums[i] as number);
    super(optimizer);
    this.totalSteps = totalSteps;
    this.annealStrategy = annealStrategy;
    this.cycleMomentum = cycleMomentum;
    this.#phases = phases;
    this.#target = target;
    this.#maxLrs = maxLrs;
    this.#minLrs = optimizer.paramGroups.map((g) => (g.initialLr as number) / finalDivFactor);
    this.#maxMomentums = maxMomentums;
    this.#baseMomentums = baseMomentums;
    this.initialStep();
  }

  #anneal(start: number, end: number, pct: number): number {
    if (this.annealStrategy === "linear") return (end - start) * pct + start;
    const cosOut = Math.cos(Math.PI * pct) + 1;
    return end + ((start - end) / 2) * cosOut;
  }

  protected computeLr(): number[] {
    const stepNum = this.epoch;
    if (stepNum > this.totalSteps) {
      throw new RangeError(`OneCycleLR: tried to step ${stepNum + 1} times; the cycle has ${this.totalSteps} steps`);
    }
    const lrs: number[] = [];
    for (const [gi, group] of this.optimizer.paramGroups.entries()) {
      const lrOf = (k: LrKey): number =>
        k === "initial" ? (group.initialLr as number) : k === "max" ? (this.#maxLrs[gi] as number) : (this.#minLrs[gi] as number);
      const momOf = (k: MomKey): number =>
        k === "max" ? (this.#maxMomentums[gi] as number) : (this.#baseMomentums[gi] as number);
      let startStep = 0;
      for (const [i, phase] of this.#phases.entries()) {
        const endStep = phase.endStep;
        if (stepNum <= endStep || i === this.#phases.length - 1) {
          const pct = (stepNum - startStep) / (endStep - startStep);
          lrs.push(this.#anneal(lrOf(phase.startLr), lrOf(phase.endLr), pct));
          if (this.#target !== null) {
            setMomentum(group, this.#target, this.#anneal(momOf(phase.startMomentum), momOf(phase.endMomentum), pct));
          }
          break;
        }
        startStep = phase.endStep;
      }
    }
    return lrs;
  }

  protected override extraState(): { [key: string]: SchedulerStateValue } {
    return {
      maxLrs: [...this.#maxLrs],
      minLrs: [...this.#minLrs],
      maxMomentums: [...this.#maxMomentums],
      baseMomentums: [...this.#baseMomentums],
    };
  }

  protected override loadExtraState(sd: SchedulerStateDict, where: string): void {
    const n = this.optimizer.paramGroups.length;
    const maxLrs = numberList(where, "maxLrs", sd.maxLrs, n);
    const minLrs = numberList(where, "minLrs", sd.minLrs, n);
    const maxMomentums = numberList(where, "maxMomentums", sd.maxMomentums, n);
    const baseMomentums = numberList(where, "baseMomentums", sd.baseMomentums, n);
    this.#maxLrs = maxLrs;
    this.#minLrs = minLrs;
    this.#maxMomentums = maxMomentums;
    this.#baseMomentums = baseMomentums;
  }
}

function checkMomentums(where: string, base: readonly number[], max: readonly number[], beta: boolean): void {
  for (const [i, b] of base.entries()) {
    const m = max[i] as number;
    checkNumber(where, "baseMomentum", b, 0, beta ? { max: 1 } : {});
    checkNumber(where, "maxMomentum", m, 0, beta ? { max: 1 } : {});
    if (m < b) throw new RangeError(`${where}: maxMomentum (${m}) must be >= baseMomentum (${b}) for param group ${i}`);
  }
}

// ---- CyclicLR ------------------------------------------------------------------------------

export type CyclicLRMode = "triangular" | "triangular2" | "exp_range";

export interface CyclicLROptions {
  /** Lower rate of the cycle, one for all groups or one per group. */
  baseLr: number | readonly number[];
  /** Upper rate of the cycle (>= baseLr). */
  maxLr: number | readonly number[];
  /** Batches from baseLr up to maxLr (default 2000). */
  stepSizeUp?: number;
  /** Batches back down (default stepSizeUp). */
  stepSizeDown?: number;
  /** Amplitude policy (default "triangular"); ignored when scaleFn is given. */
  mode?: CyclicLRMode;
  /** exp_range's amplitude decay per batch (default 1). */
  gamma?: number;
  /** Custom amplitude policy; scaleMode says whether it receives the cycle or the batch index. */
  scaleFn?: (x: number) => number;
  scaleMode?: "cycle" | "iterations";
  /** Cycle momentum (SGD) or beta1 (Adam) inversely to the rate (default true). */
  cycleMomentum?: boolean;
  /** Default 0.8. */
  baseMomentum?: number | readonly number[];
  /** Default 0.9. */
  maxMomentum?: number | readonly number[];
}

/**
 * Cyclical learning rates (Smith). With cycleMomentum, SGD's momentum or (as in PyTorch
 * 2.x; PyTorch 1.13 rejects optimizers without momentum) Adam's beta1 cycles inversely.
 */
export class CyclicLR extends LRScheduler {
  readonly totalSize: number;
  readonly stepRatio: number;
  readonly mode: CyclicLRMode;
  readonly gamma: number;
  readonly scaleMode: "cycle" | "iterations";
  readonly cycleMomentum: boolean;
  readonly #scaleFn: (x: number) => number;
  #maxLrs: number[];
  #baseMomentums: number[];
  #maxMomentums: number[];
  readonly #target: MomentumTarget | null;

  constructor(optimizer: Optimizer, options: CyclicLROptions) {
    const where = "CyclicLR";
    const baseLrs = perGroup(where, "baseLr", optimizer, options.baseLr);
    const maxLrs = perGroup(where, "maxLr", optimizer, options.maxLr);
    for (const [i, b] of baseLrs.entries()) {
      checkNumber(where, "baseLr", b, 0);
      checkNumber(where, "maxLr", maxLrs[i], 0);
      if ((maxLrs[i] as number) < b) {
        throw new RangeError(`${where}: maxLr (${maxLrs[i]}) must be >= baseLr (${b}) for param group ${i}`);
      }
    }
    const up = options.stepSizeUp ?? 2000;
    const down = options.stepSizeDown ?? up;
    checkNumber(where, "stepSizeUp", up, 0, { strict: true });
    checkNumber(where, "stepSizeDown", down, 0, { strict: true });
    const mode = options.mode ?? "triangular";
    if (options.scaleFn === undefined && mode !== "triangular" && mode !== "triangular2" && mode !== "exp_range") {
      throw new RangeError(`${where}: mode must be 'triangular', 'triangular2' or 'exp_range', got '${String(mode)}'`);
    }
    const gamma = options.gamma ?? 1;
    checkNumber(where, "gamma", gamma, 0, { strict: true });
    const cycleMomentum = options.cycleMomentum ?? true;
    const target = cycleMomentum ? momentumTarget(where, optimizer) : null;
    const baseMomentums = perGroup(where, "baseMomentum", optimizer, options.baseMomentum ?? 0.8);
    const maxMomentums = perGroup(where, "maxMomentum", optimizer, options.maxMomentum ?? 0.9);
    if (cycleMomentum) checkMomentums(where, baseMomentums, maxMomentums, target === "beta1");
    for (const [i, g] of optimizer.paramGroups.entries()) g.lr = baseLrs[i] as number;
    if (target !== null) for (const [i, g] of optimizer.paramGroups.entries()) setMomentum(g, target, baseMomentums[i] as number);
    super(optimizer);
    this.totalSize = up + down;
    this.stepRatio = up / this.totalSize;
    this.mode = mode;
    this.gamma = gamma;
    this.cycleMomentum = cycleMomentum;
    this.#target = target;
    this.#maxLrs = maxLrs;
    this.#baseMomentums = baseMomentums;
    this.#maxMomentums = maxMomentums;
    if (options.scaleFn !== undefined) {
      this.#scaleFn = options.scaleFn;
      this.scaleMode = options.scaleMode ?? "cycle";
    } else if (mode === "triangular") {
      this.#scaleFn = () => 1;
      this.scaleMode = "cycle";
    } else if (mode === "triangular2") {
      this.#scaleFn = (x) => 1 / 2 ** (x - 1);
      this.scaleMode = "cycle";
    } else {
      this.#scaleFn = (x) => gamma ** x;
      this.scaleMode = "iterations";
    }
    // PyTorch's initial step runs with the base class's base rates (the groups' initialLr);
    // only then does CyclicLR replace them with baseLr.
    this.initialStep();
    this.baseLrs = baseLrs;
  }

  protected computeLr(): number[] {
    const e = this.epoch;
    const cycle = Math.floor(1 + e / this.totalSize);
    const x = 1 + e / this.totalSize - cycle;
    const scaleFactor = x <= this.stepRatio ? x / this.stepRatio : (x - 1) / (this.stepRatio - 1);
    const scale = this.#scaleFn(this.scaleMode === "cycle" ? cycle : e);
    const lrs = this.baseLrs.map((b, i) => b + ((this.#maxLrs[i] as number) - b) * scaleFactor * scale);
    if (this.#target !== null) {
      for (const [i, g] of this.optimizer.paramGroups.entries()) {
        const base = this.#baseMomentums[i] as number;
        const max = this.#maxMomentums[i] as number;
        setMomentum(g, this.#target, max - (max - base) * scaleFactor * scale);
      }
    }
    return lrs;
  }

  protected override extraState(): { [key: string]: SchedulerStateValue } {
    return { maxLrs: [...this.#maxLrs], baseMomentums: [...this.#baseMomentums], maxMomentums: [...this.#maxMomentums] };
  }

  protected override loadExtraState(sd: SchedulerStateDict, where: string): void {
    const n = this.optimizer.paramGroups.length;
    const maxLrs = numberList(where, "maxLrs", sd.maxLrs, n);
    const baseMomentums = numberList(where, "baseMomentums", sd.baseMomentums, n);
    const maxMomentums = numberList(where, "maxMomentums", sd.maxMomentums, n);
    this.#maxLrs = maxLrs;
    this.#baseMomentums = baseMomentums;
    this.#maxMomentums = maxMomentums;
  }
}
