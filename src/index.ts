// robust-moe: the public API.
export * as nn from "./nn/index.js";
export * as F from "./nn/functional.js";
export * from "./tensor/index.js";
