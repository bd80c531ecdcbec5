// Opt-in expert-usage counting: how many samples each expert received as top-1. The counts
// accumulate in a native int64 tensor, so counting costs no host copy per forward; counts()
// copies them out once, when someone wants to read them.
import { noGrad } from "../tensor/autograd.js";
import { zeros } from "../tensor/creation.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Gates } from "./moe.js";

export class ExpertUsage {
  readonly numExperts: number;
  readonly #counts: Tensor;

  constructor(numExperts: number) {
    if (!Number.isInteger(numExperts) || numExperts < 1)
      throw new RangeError(`ExpertUsage: numExperts must be a positive integer, got ${numExperts}`);
    this.numExperts = numExperts;
    // Kept: an enclosing scope must not free the running counts.
    this.#counts = zeros([numExperts], { dtype: "int64" }).keep();
  }

  /** Adds the top-1 routes of a batch's gates (from MoE.forwardDetailed or MoE.gates). */
  add(gates: Gates): void {
    noGrad(() =>
      scope(() => {
        const top1 = gates.indices.select(1, 0);
        this.#counts.add_(top1.to(this.#counts.device as "cpu").bincount(this.numExperts));
      }),
    );
  }

  /** The counts so far, one per expert (one host copy). */
  counts(): number[] {
    return this.#counts.toFlatArray();
  }

  reset(): void {
    noGrad(() => this.#counts.zero_());
  }

  dispose(): void {
    this.#counts.dispose();
  }
}
