// The attack contract (torchattacks-shaped): an attack is built with a model and options,
// and run(x, y) returns adversarial images that the caller owns. Every attack runs the
// model in eval mode, restores each module's mode afterwards (even on error), never
// writes parameters' .grad (input gradients come from autograd.grad) and frees every
// intermediate tensor.
import type { Module, UnaryModule } from "../nn/module.js";
import { autograd, enableGrad, noGrad } from "../tensor/autograd.js";
import { zerosLike } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Device, Tensor } from "../tensor/tensor.js";

/** A model mapping [0,1] images [N, ...] to logits [N, K]. */
export type Classifier = UnaryModule;

export type Norm = "linf" | "l2";

/**
 * The mode the model runs in during an attack: 'eval' (the default: BatchNorm uses its running
 * statistics, dropout is off), 'train' (torchattacks' set_model_training_mode), or 'keep'
 * (whatever mode each module has, e.g. a training loop that set the modes itself).
 */
export type AttackMode = "eval" | "train" | "keep";

/**
 * Runs fn with every module of model in the given mode and puts back the mode each module had
 * (a model may have mixed modes, e.g. a frozen BatchNorm inside a training model), even when fn
 * throws. Models have no other state a forward writes (MoE.forward has no side effects), so
 * the modes are all there is to restore.
 */
export function withModelMode<T>(model: Module, mode: AttackMode, fn: () => T): T {
  if (mode === "keep") return fn();
  if (mode !== "eval" && mode !== "train")
    throw new TypeError(`attack mode must be 'eval', 'train' or 'keep', got '${String(mode)}'`);
  const modes = new Map<Module, boolean>();
  for (const m of model.modules()) modes.set(m, m.training);
  model.train(mode === "train");
  try {
    return fn();
  } finally {
    for (const [m, training] of modes) m.training = training;
  }
}

/** withModelMode(model, 'eval', fn): what every attack and evaluation does by default. */
export function withEvalMode<T>(model: Module, fn: () => T): T {
  return withModelMode(model, "eval", fn);
}

/** Checks the batch shapes the attacks rely on, with a message naming the attack. */
export function checkBatch(what: string, x: Tensor, y: Tensor): void {
  const n = x.shape[0];
  if (x.ndim < 2) throw new TypeError(`${what}: x must be a batch [N, ...], got shape [${x.shape.join(", ")}]`);
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new TypeError(`${what}: x must be float32 or float64, got ${x.dtype}`);
  if (y.ndim !== 1 || y.shape[0] !== n) {
    throw new TypeError(`${what}: y must be [${n}] class indices, got shape [${y.shape.join(", ")}]`);
  }
  if (y.dtype !== "int64") throw new TypeError(`${what}: y must be int64 class indices, got ${y.dtype}`);
}

export function checkEps(what: string, eps: number, norm: Norm): void {
  if (!(Number.isFinite(eps) && eps >= 0)) throw new RangeError(`${what}: eps must be a finite number >= 0, got ${eps}`);
  if (norm !== "linf" && norm !== "l2") throw new TypeError(`${what}: norm must be 'linf' or 'l2', got '${String(norm)}'`);
}

export function checkCount(what: string, name: string, v: number, min: number): void {
  if (!(Number.isInteger(v) && v >= min)) throw new RangeError(`${what}: ${name} must be an integer >= ${min}, got ${v}`);
}

/**
 * d(sum of loss)/d(x). A loss that does not depend on x differentiably (a hard-argmax router,
 * a model that detaches its input) has a zero gradient: attacks must keep going, and the
 * gradient-masking checks must see the zeros rather than an exception.
 */
export function inputGradient(loss: Tensor, x: Tensor): Tensor {
  if (!loss.requiresGrad) return noGrad(() => zerosLike(x));
  const [g] = autograd.grad(loss.sum(), [x], { allowUnused: true });
  return g ?? noGrad(() => zerosLike(x));
}

/** Where x lives, for tensors an attack creates beside it (CPU or CUDA alike). */
export function deviceOf(x: Tensor): Device {
  return x.device as Device;
}

/** Predicted classes [N] (int64), without autograd history, in eval mode (as the attacks run the model). */
export function predict(model: Classifier, x: Tensor): Tensor {
  return withEvalMode(model, () => noGrad(() => scope(() => model.forward(x).argmax(1))));
}

/** Fraction of samples whose prediction equals y. */
export function accuracy(model: Classifier, x: Tensor, y: Tensor): number {
  return withEvalMode(model, () => scope(() => (x.size(0) === 0 ? 1 : predict(model, x).eq(y).double().mean().item())));
}

export abstract class Attack<M extends Classifier = Classifier> {
  readonly model: M;
  /** The model's mode during run() (default 'eval'); see AttackMode. */
  mode: AttackMode = "eval";

  constructor(model: M) {
    this.model = model;
  }

  /** Sets the mode the model runs in during attacks and returns this (chainable). */
  setMode(mode: AttackMode): this {
    if (mode !== "eval" && mode !== "train" && mode !== "keep")
      throw new TypeError(`${this.name}: mode must be 'eval', 'train' or 'keep', got '${String(mode)}'`);
    this.mode = mode;
    return this;
  }

  /** A short name for reports, e.g. "PGD-20 (linf)". */
  abstract get name(): string;

  /**
   * Adversarial versions of x [N, ...] for labels y [N] (int64): a new tensor without
   * autograd history that the caller owns, in the innermost enclosing scope.
   */
  run(x: Tensor, y: Tensor): Tensor {
    checkBatch(this.name, x, y);
    return withModelMode(this.model, this.mode, () =>
      scope(() =>
        enableGrad(() => {
          if (x.size(0) === 0) return x.clone();
          const xd = x.detach();
          const out = this.perturb(xd, y);
          // Never hand back an alias of the caller's tensor or one carrying a graph.
          return noGrad(() => (out.requiresGrad || out === xd ? out.detach().clone() : out));
        }),
      ),
    );
  }

  /** Called by run() in the attack's mode, inside a scope, with grad mode on and x detached. */
  protected abstract perturb(x: Tensor, y: Tensor): Tensor;
}
