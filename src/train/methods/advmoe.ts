// AdvMoE (Zhang et al., ICCV 2023), the paper's baseline: router and experts are updated
// alternately on every batch, each level against its own fresh adversarial examples. What we
// matched from the released code (OPTML-Group/Robust-MoE-CNN, train_moe.py), and where we
// differ, is in docs/TRAINING.md. In short, per batch:
//  1. attack: maximise KL(F(x_adv) || F(x)) + KL(r(x_adv) || r(x)) from x + 0.001 N(0, I)
//     (TRADES-style, model in eval mode);
//     expert level: CE(F(x), y) + beta * KL(F(x_adv) || F(x)) / B on the experts' parameters;
//  2. a fresh attack against the updated experts; router level: the same TRADES loss of the
//     whole MoE plus beta * KL(r(x_adv) || r(x)) / B, on the router's parameters only.
// The released code trains its router on y mod E instead of the classification loss (its
// router never learns which expert is right); we train it on the MoE's own TRADES loss
// through the softmax gate, the bi-level formulation the paper describes.
import type { MoE } from "../../models/moe.js";
import { crossEntropy, klDiv, logSoftmax } from "../../nn/functional.js";
import { cat } from "../../tensor/combine.js";
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
import { TRADES_START_STD } from "./trades.js";

/** KL(softmax p || softmax q) per sample, summed over classes, [N] (the attack's objective). */
function klRows(q: Tensor, p: Tensor): Tensor {
  return scope(() => klDiv(logSoftmax(q, 1), logSoftmax(p, 1), { reduction: "none", logTarget: true }).sum(1));
}

/** The attack's x_adv: output and routing consistency, both maximised (see the header). */
function advMoEAttack(moe: MoE, { x, y }: TrainBatch, settings: MethodSettings): Tensor {
  const classes = scope(() => moe.forward(x.narrow(0, 0, 1)).size(1));
  // One forward returning [F(x) | r(x)] lets the generic PGD kernel drive a two-part objective.
  const both = (xa: Tensor) => scope(() => cat([moe.forward(xa), moe.routerLogits(xa)], 1));
  const objective = (z: Tensor, _y: Tensor, ctx: { cleanLogits: Tensor | null }) =>
    scope(() => {
      const c = ctx.cleanLogits as Tensor;
      const e = z.size(1) - classes;
      return klRows(z.narrow(1, 0, classes), c.narrow(1, 0, classes)).add(
        klRows(z.narrow(1, classes, e), c.narrow(1, classes, e)),
      );
    });
  return trainAttack(moe, both, x, y, settings.attack, { loss: objective, gaussianStart: TRADES_START_STD });
}

/** TRADES on the whole MoE at x_adv (the loss both levels share). */
function tradesTerms(moe: MoE, x: Tensor, xAdv: Tensor, y: Tensor, settings: MethodSettings) {
  const clean = trainForward(moe, x, settings.loadBalancing);
  const adv = moe.forward(xAdv);
  const ce = crossEntropy(clean.logits, y);
  const kl = klSum(clean.logits, adv).div(x.size(0));
  return { clean, ce, kl };
}

export const advmoe: MethodSpec = {
  name: "advmoe",
  summary: "AdvMoE baseline: alternating TRADES updates of the experts and of the router",
  model: "moe",
  create(model, settings) {
    const moe = requireMoE("advmoe", model);
    const routerParams = new Set(moe.router.parameters());
    return {
      name: "advmoe",
      levels: [
        {
          name: "experts",
          parameters: moe.parameters().filter((p) => !routerParams.has(p)),
          trainModules: [moe],
          loss: (b) =>
            scope((): BatchLoss => {
              const xAdv = advMoEAttack(moe, b, settings);
              const { clean, ce, kl } = tradesTerms(moe, b.x, xAdv, b.y, settings);
              return { loss: ce.add(kl.mul(settings.beta)), terms: { ce, kl }, logits: clean.logits, y: b.y };
            }),
        },
        {
          name: "router",
          parameters: [...routerParams],
          trainModules: [moe],
          loss: (b) =>
            scope((): BatchLoss => {
              const xAdv = advMoEAttack(moe, b, settings);
              const { clean, ce, kl } = tradesTerms(moe, b.x, xAdv, b.y, settings);
              const route = klSum(moe.routerLogits(b.x), moe.routerLogits(xAdv)).div(b.x.size(0));
              let loss = ce.add(kl.mul(settings.beta)).add(route.mul(settings.beta));
              const terms: BatchLoss["terms"] = { ce, kl, route };
              if (clean.lb !== null) {
                loss = loss.add(clean.lb);
                terms.lb = clean.lb;
              }
              return { loss, terms, logits: clean.logits, y: b.y };
            }),
        },
      ],
    };
  },
};
