// TRADES (Zhang et al. 2019): CE(F(x), y) + beta * KL(softmax F(x) || softmax F(x_adv)),
// x_adv maximising that KL from a 0.001 * N(0, I) start (the official code's start: at x
// itself the KL has a zero gradient). Both forwards carry gradients, as in the official code.
import { crossEntropy } from "../../nn/functional.js";
import { scope } from "../../tensor/scope.js";
import { type BatchLoss, klSum, type MethodSpec, trainAttack, trainForward } from "../method.js";

/** TRADES' start: x + 0.001 * N(0, I). */
export const TRADES_START_STD = 0.001;

export const trades: MethodSpec = {
  name: "trades",
  summary: "TRADES: CE(F(x), y) + beta * KL(F(x) || F(x_adv))",
  model: "classifier",
  create(model, settings) {
    return {
      name: "trades",
      levels: [
        {
          name: "model",
          parameters: model.parameters(),
          trainModules: [model],
          loss: ({ x, y }) =>
            scope((): BatchLoss => {
              const xAdv = trainAttack(model, (xa) => model.forward(xa), x, y, settings.attack, {
                loss: "kl",
                gaussianStart: TRADES_START_STD,
              });
              const clean = trainForward(model, x, settings.loadBalancing);
              const adv = trainForward(model, xAdv, settings.loadBalancing);
              const ce = crossEntropy(clean.logits, y);
              // batchmean: the KL summed over classes and samples, divided by N.
              const kl = klSum(clean.logits, adv.logits).div(x.size(0));
              let loss = ce.add(kl.mul(settings.beta));
              const terms: BatchLoss["terms"] = { ce, kl };
              if (clean.lb !== null && adv.lb !== null) {
                const lb = clean.lb.add(adv.lb).mul(0.5);
                loss = loss.add(lb);
                terms.lb = lb;
              }
              return { loss, terms, logits: clean.logits, y };
            }),
        },
      ],
    };
  },
};
