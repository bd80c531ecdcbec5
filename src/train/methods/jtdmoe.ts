// JTDMoE (METHOD.md section 6): joint bi-level training of the dual model
// F_D = (1 - alpha) F_S + alpha F_R, alternating per batch:
//  1. lower level: an RT-ER step on the robust MoE F_R (F_S untouched);
//  2. upper level: CE(F_D(x), y) on clean x with F_R frozen (eval mode, no graph); only F_S
//     moves. Each level has its own optimizer and zeroes its own gradients (the Trainer does
//     both), unlike the reference code, which leaks level 2's gradients into level 1.
import { DualModel } from "../../models/dual.js";
import { crossEntropy } from "../../nn/functional.js";
import { noGrad } from "../../tensor/autograd.js";
import { scope } from "../../tensor/scope.js";
import { type BatchLoss, type MethodSpec, requireMoE, trainForward } from "../method.js";
import { rtErLoss } from "./rt-er.js";

export const jtdmoe: MethodSpec = {
  name: "jtdmoe",
  summary: "JTDMoE: RT-ER on F_R, then CE of the clean dual output on F_S (alpha)",
  model: "dual",
  create(model, settings) {
    if (!(model instanceof DualModel)) throw new TypeError("training method 'jtdmoe' needs a dual model");
    const robust = requireMoE("jtdmoe (robust member)", model.robust);
    const standard = model.standard;
    if (model.space !== "logits")
      throw new TypeError("training method 'jtdmoe' mixes logits; the dual model mixes probabilities");
    return {
      name: "jtdmoe",
      levels: [
        { name: "robust", parameters: robust.parameters(), trainModules: [robust], loss: (b) => rtErLoss(robust, b, settings) },
        {
          name: "standard",
          parameters: standard.parameters(),
          trainModules: [standard],
          loss: ({ x, y }) =>
            scope((): BatchLoss => {
              const r = noGrad(() => robust.forward(x));
              const s = trainForward(standard, x, settings.loadBalancing);
              const logits = s.logits.mul(1 - settings.alpha).add(r.mul(settings.alpha));
              const ce = crossEntropy(logits, y);
              if (s.lb === null) return { loss: ce, terms: { ce }, logits, y };
              return { loss: ce.add(s.lb), terms: { ce, lb: s.lb }, logits, y };
            }),
        },
      ],
    };
  },
};
