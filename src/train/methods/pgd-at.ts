// PGD adversarial training (Madry et al. 2018): minimise CE on the PGD point of each batch.
import { scope } from "../../tensor/scope.js";
import { ceWithBalance, type MethodSpec, trainAttack } from "../method.js";

export const pgdAt: MethodSpec = {
  name: "pgd-at",
  summary: "Madry PGD adversarial training: CE(F(x_adv), y)",
  model: "classifier",
  create(model, settings) {
    return {
      name: "pgd-at",
      levels: [
        {
          name: "model",
          parameters: model.parameters(),
          trainModules: [model],
          loss: ({ x, y }) =>
            scope(() => {
              const xAdv = trainAttack(model, (xa) => model.forward(xa), x, y, settings.attack);
              return ceWithBalance(model, xAdv, y, settings.loadBalancing);
            }),
        },
      ],
    };
  },
};
