// Loading timm ViT weights (e.g. vit_small_patch16_224 from a safetensors file the user
// supplies) into our ViT: same tensor names; the classification head is replaced when the
// class count differs and position embeddings are resampled when the image size does.
import { interpolate } from "../nn/functional.js";
import { noGrad } from "../tensor/autograd.js";
import { cat } from "../tensor/combine.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import type { ViT } from "./vit.js";

export interface TimmLoadReport {
  loaded: string[];
  /** Keys kept at their fresh initialisation (the head when the class count differs, our normalize buffers). */
  keptInitial: string[];
  /** Keys of the file that the model has no place for. */
  ignored: string[];
  /** Set when pos_embed was resampled: [from grid, to grid]. */
  resampledPosEmbed: [number, number] | null;
}

/**
 * Resamples [1, 1 + g*g, D] position embeddings (CLS first) to a new grid with bicubic
 * interpolation, as timm's resample_abs_pos_embed does.
 */
export function resamplePosEmbed(posEmbed: Tensor, newGrid: number): Tensor {
  return scope(() => {
    const [one, tokens, dim] = posEmbed.shape as [number, number, number];
    const grid = Math.round(Math.sqrt(tokens - 1));
    if (one !== 1 || grid * grid !== tokens - 1) {
      throw new TypeError(`pos_embed of shape [${posEmbed.shape}] is not [1, 1 + g*g, D] with a CLS token`);
    }
    const cls = posEmbed.narrow(1, 0, 1);
    const patches = posEmbed
      .narrow(1, 1, tokens - 1)
      .reshape(1, grid, grid, dim)
      .permute(0, 3, 1, 2);
    const resized = interpolate(patches, { size: newGrid, mode: "bicubic", antialias: newGrid < grid });
    return cat([cls, resized.permute(0, 2, 3, 1).reshape(1, newGrid * newGrid, dim)], 1);
  });
}

export function loadTimmViT(model: ViT, weights: ReadonlyMap<string, Tensor>): TimmLoadReport {
  const own = model.stateDict();
  const report: TimmLoadReport = { loaded: [], keptInitial: [], ignored: [], resampledPosEmbed: null };
  const problems: string[] = [];
  const plan: [Tensor, Tensor][] = [];
  const temporaries: Tensor[] = [];
  for (const [k, src] of weights) {
    const dst = own.get(k);
    if (dst === undefined) {
      report.ignored.push(k);
      continue;
    }
    let value = src;
    if (k === "pos_embed" && src.shape[1] !== dst.shape[1]) {
      const grid = Math.round(Math.sqrt((dst.shape[1] as number) - 1));
      value = resamplePosEmbed(src, grid);
      temporaries.push(value);
      report.resampledPosEmbed = [Math.round(Math.sqrt((src.shape[1] as number) - 1)), grid];
    }
    const same = value.shape.length === dst.shape.length && value.shape.every((v, i) => v === dst.shape[i]);
    if (!same) {
      if (k.startsWith("head.")) {
        report.keptInitial.push(k);
        continue;
      }
      problems.push(`${k}: file [${value.shape}] vs model [${dst.shape}]`);
      continue;
    }
    plan.push([dst, value]);
    report.loaded.push(k);
  }
  for (const k of own.keys()) if (!weights.has(k) && !report.keptInitial.includes(k)) report.keptInitial.push(k);
  const missingWeights = report.keptInitial.filter((k) => !k.startsWith("head.") && !k.startsWith("normalize."));
  if (missingWeights.length > 0) problems.push(`missing in the file: ${missingWeights.join(", ")}`);
  if (problems.length > 0) {
    for (const t of temporaries) t.dispose();
    throw new Error(`loadTimmViT: the weights do not fit this ViT (${problems.join("; ")})`);
  }
  noGrad(() => {
    for (const [dst, src] of plan) dst.copy_(src);
  });
  for (const t of temporaries) t.dispose();
  return report;
}
