// Whether a model config fits a dataset: the classes it predicts and the images it takes,
// read from the config alone (before any weights are loaded), with errors that name the
// mismatch.
import type { ImageShape } from "../data/dataset.js";
import type { ModelConfig } from "../models/config.js";

/** What a model config takes and predicts. size null: any height and width (ResNet18 with a conv router). */
export interface ModelInput {
  numClasses: number;
  channels: number;
  /** [height, width] the model requires, or null when it takes any size. */
  size: [number, number] | null;
}

export class ModelFitError extends Error {
  override name = "ModelFitError";
}

function merge(a: ModelInput, b: ModelInput, what: string): ModelInput {
  if (a.numClasses !== b.numClasses)
    throw new ModelFitError(`${what}: parts predict ${a.numClasses} and ${b.numClasses} classes`);
  if (a.channels !== b.channels) throw new ModelFitError(`${what}: parts take ${a.channels} and ${b.channels} channels`);
  if (a.size !== null && b.size !== null && (a.size[0] !== b.size[0] || a.size[1] !== b.size[1])) {
    throw new ModelFitError(`${what}: parts take ${a.size.join("x")} and ${b.size.join("x")} images`);
  }
  return { numClasses: a.numClasses, channels: a.channels, size: a.size ?? b.size };
}

/** The classes and image shape a config's model works with (throws when its own parts disagree). */
export function modelInput(config: ModelConfig): ModelInput {
  switch (config.kind) {
    case "resnet18":
      return { numClasses: config.numClasses, channels: 3, size: null };
    case "vit":
      return { numClasses: config.numClasses, channels: config.channels, size: [config.imageSize, config.imageSize] };
    case "moe": {
      const [c, h, w] = config.imageShape;
      let acc: ModelInput = {
        numClasses: modelInput(config.experts[0] as ModelConfig).numClasses,
        channels: c,
        // A linear router reads the flattened image: it fixes the size.
        size: config.router === "linear" ? [h, w] : null,
      };
      for (const [i, e] of config.experts.entries()) acc = merge(acc, modelInput(e), `MoE expert ${i}`);
      return acc;
    }
    case "dual":
      return merge(modelInput(config.standard), modelInput(config.robust), "dual model");
  }
}

/**
 * Throws ModelFitError naming the problem when a model of this config cannot be evaluated
 * on images of imageShape ([C, H, W]) labelled with classes.length classes. `what` names
 * the model (e.g. the checkpoint path) and `data` the dataset in messages.
 */
export function checkModelFitsData(
  config: ModelConfig,
  data: { classes: readonly string[]; imageShape: ImageShape },
  what: string,
  dataName: string,
): ModelInput {
  let input: ModelInput;
  try {
    input = modelInput(config);
  } catch (e) {
    throw new ModelFitError(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const [c, h, w] = data.imageShape;
  if (input.numClasses !== data.classes.length) {
    throw new ModelFitError(
      `${what} predicts ${input.numClasses} classes but ${dataName} has ${data.classes.length}: the checkpoint was not made for this dataset`,
    );
  }
  if (input.channels !== c) {
    throw new ModelFitError(`${what} takes ${input.channels}-channel images but ${dataName} images have ${c} channels`);
  }
  if (input.size !== null && (input.size[0] !== h || input.size[1] !== w)) {
    throw new ModelFitError(
      `${what} takes ${input.size[0]}x${input.size[1]} images but ${dataName} images are ${h}x${w}` +
        (input.size[0] === input.size[1] ? ` (resize them with --resize ${input.size[0]}, as for training)` : ""),
    );
  }
  return input;
}
