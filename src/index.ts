// robust-moe: the public API.
export * as attacks from "./attacks/index.js";
export * as certify from "./certify/index.js";
export * as data from "./data/index.js";
export * as dist from "./dist/index.js";
export * as evaluation from "./eval/index.js";

export * from "./io/checkpoint.js";
export * from "./io/safetensors.js";
export * as models from "./models/index.js";
export * as F from "./nn/functional.js";
export * as nn from "./nn/index.js";
export * as optim from "./optim/index.js";
export * from "./tensor/index.js";
export * as train from "./train/index.js";
