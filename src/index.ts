// robust-moe: the public API.
export * as F from "./nn/functional.js";
export * from "./tensor/index.js";
