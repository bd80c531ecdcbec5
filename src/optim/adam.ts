// Adam and AdamW as torch.optim.Adam / AdamW (PyTorch 1.13, foreach=False): the same
// operations in the same order, with the bias corrections computed in double precision
// on the host exactly as PyTorch's Python code does.

import { zerosLike } from "../tensor/creation.js";
import { Tensor } from "../tensor/tensor.js";
import {
  checkBoolean,
  checkOption,
  Optimizer,
  type OptimizerOptions,
  type ParamGroup,
  type ParamGroupInit,
} from "./optimizer.js";

export interface AdamOptions extends OptimizerOptions {
  /** Default 1e-3. */
  lr: number;
  /** Decay rates of the first and second moment averages (default [0.9, 0.999]). */
  betas: readonly [number, number];
  /** Added to the denominator (default 1e-8). */
  eps: number;
  /** Adam: L2 penalty added to the gradient (default 0). AdamW: decoupled decay (default 1e-2). */
  weightDecay: number;
  /** Normalise by the running maximum of the second moment (AMSGrad). */
  amsgrad: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

export type AdamState = { step: number; expAvg: Tensor; expAvgSq: Tensor; maxExpAvgSq?: Tensor };

type AdamInit = readonly Tensor[] | readonly ParamGroupInit<AdamOptions>[];

const ADAM_DEFAULTS: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false };

export class Adam extends Optimizer<AdamOptions, AdamState> {
  /** AdamW: decay the weights directly instead of adding an L2 term to the gradient. */
  protected readonly decoupledWeightDecay: boolean = false;

  constructor(params: AdamInit, options: Partial<AdamOptions> = {}) {
    super(params, { ...ADAM_DEFAULTS, ...options });
  }

  protected validateOptions(o: AdamOptions, where: string): void {
    checkOption(where, "learning rate", o.lr, 0);
    checkOption(where, "eps", o.eps, 0);
    if (!Array.isArray(o.betas) || o.betas.length !== 2) {
      throw new RangeError(`${where}: betas must be a pair [beta1, beta2], got ${JSON.stringify(o.betas)}`);
    }
    checkOption(where, "beta1 (betas[0])", o.betas[0], 0, 1);
    checkOption(where, "beta2 (betas[1])", o.betas[1], 0, 1);
    checkOption(where, "weightDecay", o.weightDecay, 0);
    checkBoolean(where, "amsgrad", o.amsgrad);
    checkBoolean(where, "maximize", o.maximize);
  }

  protected checkState(s: AdamState, group: ParamGroup<AdamOptions>, where: string): void {
    if (typeof s.step !== "number" || !Number.isInteger(s.step) || s.step < 0) {
      throw new RangeError(`${where}: Adam state needs a non-negative integer 'step'`);
    }
    if (!(s.expAvg instanceof Tensor) || !(s.expAvgSq instanceof Tensor)) {
      throw new RangeError(`${where}: Adam state needs the tensors 'expAvg' and 'expAvgSq'`);
    }
    if (group.amsgrad && !(s.maxExpAvgSq instanceof Tensor))
      throw new RangeError(`${where}: amsgrad needs 'maxExpAvgSq' in the state`);
  }

  protected updateGroup(group: ParamGroup<AdamOptions>): void {
    const { lr, eps, weightDecay, amsgrad, maximize } = group;
    const [beta1, beta2] = group.betas;
    const decoupled = this.decoupledWeightDecay;
    this.forEachGrad(group, (p, g) => {
      const state = this.stateFor(p, () => ({
        step: 0,
        expAvg: zerosLike(p).keep(),
        expAvgSq: zerosLike(p).keep(),
        ...(amsgrad ? { maxExpAvgSq: zerosLike(p).keep() } : {}),
      }));
      const scratch = this.scratchLike(p);
      let grad = g;
      if (maximize) grad = scratch.copy_(g).mul_(-1);
      state.step += 1;
      if (decoupled) {
        p.mul_(1 - lr * weightDecay);
      } else if (weightDecay !== 0) {
        if (grad === g) grad = scratch.copy_(g);
        grad.add_(p, weightDecay);
      }
      const { expAvg, expAvgSq, step } = state;
      expAvg.mul_(beta1).add_(grad, 1 - beta1);
      expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

      const biasCorrection1 = 1 - beta1 ** step;
      const biasCorrection2 = 1 - beta2 ** step;
      const stepSize = lr / biasCorrection1;
      const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);

      let second = expAvgSq;
      if (amsgrad) {
        const max = state.maxExpAvgSq;
        if (max === undefined) throw new Error(`${this.constructor.name}: amsgrad was switched on after the state was created`);
        max.maximum_(expAvgSq);
        second = max;
      }
      // The gradient is no longer needed, so the scratch buffer now holds the denominator.
      const denom = scratch.copy_(second).sqrt_().div_(biasCorrection2Sqrt).add_(eps);
      p.addcdiv_(expAvg, denom, -stepSize);
    });
  }
}

/** Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW. */
export class AdamW extends Adam {
  protected override readonly decoupledWeightDecay: boolean = true;

  constructor(params: AdamInit, options: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 1e-2, ...options });
  }
}
