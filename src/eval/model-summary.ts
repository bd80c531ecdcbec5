// What kind of model an evaluation sees, and where its MoEs are: the model itself, or the
// members of a dual model (RA-E and RA-R are defined for a MoE, so a dual model's MoE
// analysis attacks each MoE member alone).
import type { Classifier } from "../attacks/attack.js";
import { DualModel } from "../models/dual.js";
import { MoE } from "../models/moe.js";
import type { ModelSummary } from "./report.js";

/** A MoE to analyse and which part of the evaluated model it is. */
export interface MoEMember {
  member: "model" | "standard" | "robust";
  moe: MoE;
  /** True when the MoE is a dual-model member, attacked alone. */
  attackedAlone: boolean;
}

export function summarizeModel(model: Classifier): ModelSummary {
  if (model instanceof DualModel) {
    return {
      kind: "dual",
      type: model.constructor.name,
      alpha: model.alpha,
      space: model.space,
      members: { standard: model.standard.constructor.name, robust: model.robust.constructor.name },
    };
  }
  return { kind: model instanceof MoE ? "moe" : "plain", type: model.constructor.name, alpha: null, space: null, members: null };
}

/** The MoEs whose routing is analysed: the model when it is one, else the MoE members of a dual model. */
export function moeMembers(model: Classifier): MoEMember[] {
  if (model instanceof MoE) return [{ member: "model", moe: model, attackedAlone: false }];
  if (model instanceof DualModel) {
    const out: MoEMember[] = [];
    if (model.standard instanceof MoE) out.push({ member: "standard", moe: model.standard, attackedAlone: true });
    if (model.robust instanceof MoE) out.push({ member: "robust", moe: model.robust, attackedAlone: true });
    return out;
  }
  return [];
}
