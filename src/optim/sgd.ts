// Stochastic gradient descent with momentum, as torch.optim.SGD (PyTorch 1.13,
// foreach=False). The usual configuration (momentum, no dampening, no Nesterov) runs a
// fused update with fewer passes over memory; every other one runs PyTorch's operations in
// PyTorch's order, so results agree to the bit wherever the kernels do.
import { addInto } from "../tensor/combine.js";
import { Tensor } from "../tensor/tensor.js";
import {
  checkBoolean,
  checkOption,
  Optimizer,
  type OptimizerOptions,
  type ParamGroup,
  type ParamGroupInit,
} from "./optimizer.js";

export interface SGDOptions extends OptimizerOptions {
  lr: number;
  /** Momentum factor (default 0: plain SGD, no state). */
  momentum: number;
  /** Dampening of the gradient's contribution to the momentum buffer (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Nesterov momentum; needs momentum > 0 and dampening 0. */
  nesterov: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

export type SGDState = { momentumBuffer?: Tensor };

const SGD_DEFAULTS: Omit<SGDOptions, "lr"> = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

export class SGD extends Optimizer<SGDOptions, SGDState> {
  constructor(params: readonly Tensor[] | readonly ParamGroupInit<SGDOptions>[], options: Partial<SGDOptions> & { lr: number }) {
    super(params, { ...SGD_DEFAULTS, ...options });
  }

  protected validateOptions(o: SGDOptions, where: string): void {
    checkOption(where, "learning rate", o.lr, 0);
    checkOption(where, "momentum", o.momentum, 0);
    if (typeof o.dampening !== "number" || !Number.isFinite(o.dampening)) {
      throw new RangeError(`${where}: invalid dampening ${String(o.dampening)} (must be a finite number)`);
    }
    checkOption(where, "weightDecay", o.weightDecay, 0);
    checkBoolean(where, "nesterov", o.nesterov);
    checkBoolean(where, "maximize", o.maximize);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
      throw new RangeError(`${where}: Nesterov momentum requires momentum > 0 and dampening 0`);
    }
  }

  protected checkState(s: SGDState, _group: ParamGroup<SGDOptions>, where: string): void {
    for (const k of Object.keys(s)) if (k !== "momentumBuffer") throw new RangeError(`${where}: unexpected SGD state '${k}'`);
    if (s.momentumBuffer !== undefined && !(s.momentumBuffer instanceof Tensor)) {
      throw new RangeError(`${where}: SGD state 'momentumBuffer' must be a tensor`);
    }
  }

  protected updateGroup(group: ParamGroup<SGDOptions>): void {
    const { lr, momentum, dampening, weightDecay, nesterov, maximize } = group;
    this.forEachGrad(group, (p, grad) => {
      if (momentum !== 0 && dampening === 0 && !nesterov && !maximize) {
        const state = this.stateFor(p, () => ({}));
        const buf = state.momentumBuffer;
        if (buf !== undefined) {
          // The common case, fused: buf <- grad + momentum * buf + wd * p in two operations
          // where PyTorch 1.13's single-tensor path makes three (the decayed gradient into a
          // temporary, mul_, add_): 6 array reads and writes instead of 8, and no temporary.
          // The update is bandwidth-bound; the result differs from PyTorch's only by rounding
          // (fused multiply-add, summation order).
          addInto(buf, grad, buf, momentum);
          if (weightDecay !== 0) buf.add_(p, weightDecay);
          p.add_(buf, -lr);
          return;
        }
      }
      // PyTorch's operations in PyTorch's order. d_p starts as the gradient itself; it moves
      // to the scratch buffer only when PyTorch would create a new tensor from it, so the
      // gradient is never modified.
      let dp = grad;
      const scratch = (): Tensor => (dp === grad ? this.scratchLike(p).copy_(grad) : dp);
      if (maximize) dp = scratch().mul_(-1);
      if (weightDecay !== 0) {
        // grad + wd * p straight into the scratch buffer: one pass, like PyTorch's out-of-place add.
        dp = dp === grad ? addInto(this.scratchLike(p), grad, p, weightDecay) : dp.add_(p, weightDecay);
      }
      if (momentum !== 0) {
        const state = this.stateFor(p, () => ({}));
        let buf = state.momentumBuffer;
        if (buf === undefined) {
          buf = dp.clone().keep();
          state.momentumBuffer = buf;
        } else {
          buf.mul_(momentum).add_(dp, 1 - dampening);
        }
        dp = nesterov ? scratch().add_(buf, momentum) : buf;
      }
      p.add_(dp, -lr);
    });
  }
}
