// Per-batch facts about an analysed MoE that several metrics read (its clean correctness
// and clean top-1 routes), computed once per batch through the batch's memo.
import { noGrad } from "../tensor/autograd.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { EvalBatchContext } from "./batch-context.js";
import type { MoEMember } from "./model-summary.js";
import type { MemberHeader } from "./record.js";

export function memberOf(batch: EvalBatchContext, member: MemberHeader["member"]): MoEMember {
  const m = batch.target.members.find((c) => c.member === member);
  if (m === undefined) throw new Error(`evaluation: the model has no MoE member '${member}'`);
  return m;
}

/** Top-1 expert per sample of moe at x. */
export function routesAt(m: MoEMember, x: Tensor): number[] {
  return noGrad(() => scope(() => m.moe.routerLogits(x).argmax(1).toFlatArray()));
}

/** Per sample: the MoE on its own is correct at x (the evaluated model's flags when it is the model). */
export function memberCleanCorrect(batch: EvalBatchContext, m: MoEMember): readonly boolean[] {
  if (!m.attackedAlone) return batch.cleanCorrect;
  return batch.memo(`member-clean:${m.member}`, () =>
    noGrad(() =>
      scope(() =>
        m.moe
          .forward(batch.x)
          .argmax(1)
          .eq(batch.y)
          .toFlatArray()
          .map((v) => v !== 0),
      ),
    ),
  );
}

export function memberCleanRoutes(batch: EvalBatchContext, m: MoEMember): readonly number[] {
  return batch.memo(`member-routes:${m.member}`, () => routesAt(m, batch.x));
}
