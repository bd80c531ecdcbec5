export { buildModel, configOf, type Model, type ModelConfig } from "./config.js";
export { DualModel, type MixSpace } from "./dual.js";
export { ExpertUsage } from "./expert-usage.js";
export { type Gates, type GatingMode, MoE, type MoEOptions, type MoEOutput } from "./moe.js";
export { CIFAR10_MEAN, CIFAR10_STD, Normalize } from "./normalize.js";
export { loadTimmViT, resamplePosEmbed, type TimmLoadReport } from "./pretrained.js";
export { BasicBlock, ResNet18, type ResNet18Options } from "./resnet18.js";
export { ConvRouter, LinearRouter, type RouterKind } from "./router.js";
export { ViT, type ViTOptions, VitBlock, vitSmall } from "./vit.js";
