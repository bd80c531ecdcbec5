// Standard training: clean cross-entropy (plus the load-balancing term for a MoE).
import { ceWithBalance, type MethodSpec } from "../method.js";

export const standard: MethodSpec = {
  name: "standard",
  summary: "clean cross-entropy (the standard MoE F_S of the dual model)",
  model: "classifier",
  create(model, settings) {
    return {
      name: "standard",
      levels: [
        {
          name: "model",
          parameters: model.parameters(),
          trainModules: [model],
          loss: ({ x, y }) => ceWithBalance(model, x, y, settings.loadBalancing),
        },
      ],
    };
  },
};
