// RT-ER (METHOD.md section 3): robust training that also robustifies one additional expert.
//   x_adv = PGD(F, x, y);  s(x) = the expert ranked second by the router at the clean x
//   x_s   = PGD(f_s alone, x, y) on the samples whose runner-up is s
//   L     = CE(F(x_adv), y) + beta / B * sum_samples KL(softmax f_s(x) || softmax f_s(x_s))
// Every attack runs first, on the model as it is at the start of the step (eval mode); then
// the training-mode forwards: F(x_adv), and per expert e in order its clean and attacked
// outputs. Both sides of the KL carry gradients (as TRADES), so the runner-up expert is
// trained to agree with itself under attack; the router gets no gradient from the KL term.
import type { MoE } from "../../models/moe.js";
import { crossEntropy } from "../../nn/functional.js";
import { noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import type { Tensor } from "../../tensor/tensor.js";
import {
  type BatchLoss,
  klSum,
  type MethodSettings,
  type MethodSpec,
  requireMoE,
  type TrainBatch,
  trainAttack,
  trainForward,
} from "../method.js";

/** The RT-ER loss of one batch on moe (also JTDMoE's lower level). */
export function rtErLoss(moe: MoE, { x, y }: TrainBatch, settings: MethodSettings): BatchLoss {
  return scope((): BatchLoss => {
    const n = x.size(0);
    const second = moe.secondExpert(x);
    const xAdv = trainAttack(moe, (xa) => moe.forward(xa), x, y, settings.attack);
    // The runner-up experts' own attacks, each on the samples it is second for.
    const groups: { e: number; x: Tensor; xs: Tensor }[] = [];
    const secondIds = noGrad(() => second.toFlatArray());
    for (let e = 0; e < moe.numExperts; e++) {
      if (!secondIds.includes(e)) continue;
      const rows = noGrad(() => second.eq(e).nonzero().select(1, 0));
      const xe = x.indexSelect(0, rows);
      const ye = y.indexSelect(0, rows);
      const expert = moe.experts.at(e);
      groups.push({ e, x: xe, xs: trainAttack(moe, (xa) => expert.forward(xa), xe, ye, settings.attack) });
    }
    const main = trainForward(moe, xAdv, settings.loadBalancing);
    const ce = crossEntropy(main.logits, y);
    let klTotal: Tensor | null = null;
    for (const g of groups) {
      const expert = moe.experts.at(g.e);
      const clean = expert.forward(g.x);
      const attacked = expert.forward(g.xs);
      const kl = klSum(clean, attacked);
      klTotal = klTotal === null ? kl : klTotal.add(kl);
    }
    const kl = klTotal === null ? noGrad(() => ce.mul(0)) : klTotal.div(n);
    let loss = ce.add(kl.mul(settings.beta));
    const terms: BatchLoss["terms"] = { ce, kl };
    if (main.lb !== null) {
      loss = loss.add(main.lb);
      terms.lb = main.lb;
    }
    return { loss, terms, logits: main.logits, y };
  });
}

export const rtEr: MethodSpec = {
  name: "rt-er",
  summary: "RT-ER: CE(F(x_adv), y) + beta/B * KL of the runner-up expert under its own attack",
  model: "moe",
  create(model, settings) {
    const moe = requireMoE("rt-er", model);
    return {
      name: "rt-er",
      levels: [{ name: "model", parameters: moe.parameters(), trainModules: [moe], loss: (b) => rtErLoss(moe, b, settings) }],
    };
  },
};
