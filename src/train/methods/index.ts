// The training methods by name: the one place a method is registered.
import type { MethodSpec } from "../method.js";
import { advmoe } from "./advmoe.js";
import { jtdmoe } from "./jtdmoe.js";
import { pgdAt } from "./pgd-at.js";
import { rtEr } from "./rt-er.js";
import { standard } from "./standard.js";
import { trades } from "./trades.js";

export const METHODS: readonly MethodSpec[] = [standard, pgdAt, trades, rtEr, advmoe, jtdmoe];

export const METHOD_NAMES = METHODS.map((m) => m.name);

export function methodSpec(name: string): MethodSpec {
  const m = METHODS.find((s) => s.name === name);
  if (m === undefined) throw new TypeError(`unknown training method '${name}' (methods: ${METHOD_NAMES.join(", ")})`);
  return m;
}
