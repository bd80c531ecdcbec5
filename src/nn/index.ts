export { Attention } from "./attention.js";
export { BatchNorm2d, type BatchNormOptions } from "./batch-norm.js";
export {
  type ChannelsLastCase,
  type ChannelsLastDecision,
  type ChannelsLastModel,
  type ChannelsLastQuery,
  type ChannelsLastTable,
  channelsLastSupport,
  resolveMemoryFormat,
} from "./channels-last.js";
export { CHANNELS_LAST_TABLE } from "./channels-last-table.js";
export { ModuleList, Sequential } from "./containers.js";
export { Conv2d, type Conv2dOptions } from "./conv2d.js";
export * as functional from "./functional.js";
export * as init from "./init.js";
export { LayerNorm } from "./layer-norm.js";
export { Linear } from "./linear.js";
export { type LoadResult, Module, type ModuleToOptions, type StateDict, StateDictError, type UnaryModule } from "./module.js";
export { AdaptiveAvgPool2d, Dropout, Flatten, GELU, Identity, ReLU } from "./simple-layers.js";
