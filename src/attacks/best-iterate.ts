// Per-sample bookkeeping of the strongest point an attack has found: a misclassified
// point beats any correctly classified one, and among points of the same kind the higher
// loss wins. Robust accuracy is then read off the kept points, never off the last iterate.
import { noGrad } from "../tensor/autograd.js";
import { where } from "../tensor/combine.js";
import { full, zeros } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { deviceOf } from "./attack.js";
import { perSample } from "./projections.js";

/** What a search returns per sample: the kept point, its loss and whether it fools the model. */
export interface SearchResult {
  x: Tensor;
  loss: Tensor;
  fooled: Tensor;
}

/** Row indices [n] (int64) where the bool mask [N] is true. */
export function rowsWhere(mask: Tensor): Tensor {
  return scope(() => mask.nonzero().select(1, 0));
}

/** base with rows idx replaced by rows (a new tensor; exact, unlike an add of differences). */
export function scatterRows(base: Tensor, idx: Tensor, rows: Tensor): Tensor {
  return noGrad(() =>
    scope(() => {
      const index = perSample(idx, rows).expand(...rows.shape);
      return base.scatter(0, index, rows);
    }),
  );
}

/** Whether candidate beats incumbent, per sample: fooling first, then higher loss. */
function beats(candLoss: Tensor, candFooled: Tensor, loss: Tensor, fooled: Tensor): Tensor {
  return scope(() => candFooled.logicalAnd(fooled.logicalNot()).logicalOr(candFooled.eq(fooled).logicalAnd(candLoss.gt(loss))));
}

/** The strongest point per sample so far, updated in place (the tensors live in the creator's scope). */
export class BestIterate implements SearchResult {
  readonly x: Tensor;
  readonly loss: Tensor;
  readonly fooled: Tensor;

  /**
   * Starts at x itself with loss -inf and not fooled, so that the first candidate always
   * wins unless its loss is NaN (then x, which is in every threat model, is kept).
   */
  constructor(x: Tensor) {
    const n = x.size(0);
    [this.x, this.loss, this.fooled] = noGrad(() => [
      x.detach().clone(),
      full([n], Number.NEGATIVE_INFINITY, { dtype: x.dtype, device: deviceOf(x) }),
      zeros([n], { dtype: "bool", device: deviceOf(x) }),
    ]);
  }

  /** Offers candidates for every sample. */
  update(x: Tensor, loss: Tensor, fooled: Tensor): void {
    noGrad(() =>
      scope(() => {
        const better = beats(loss, fooled, this.loss, this.fooled);
        this.x.copy_(where(perSample(better, x), x, this.x));
        this.loss.copy_(where(better, loss, this.loss));
        this.fooled.copy_(this.fooled.logicalOr(fooled));
      }),
    );
  }

  /** Offers candidates for the samples idx only (a search run on a subset of the batch). */
  updateRows(idx: Tensor, cand: SearchResult): void {
    noGrad(() =>
      scope(() => {
        const oldX = this.x.indexSelect(0, idx);
        const oldLoss = this.loss.indexSelect(0, idx);
        const oldFooled = this.fooled.indexSelect(0, idx);
        const better = beats(cand.loss, cand.fooled, oldLoss, oldFooled);
        this.x.copy_(scatterRows(this.x, idx, where(perSample(better, oldX), cand.x, oldX)));
        this.loss.copy_(scatterRows(this.loss, idx, where(better, cand.loss, oldLoss)));
        this.fooled.copy_(scatterRows(this.fooled, idx, oldFooled.logicalOr(cand.fooled)));
      }),
    );
  }
}
