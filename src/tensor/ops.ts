// Calling table ops: Tensor objects in, Tensor objects out.
import { Generator } from "./generator.js";
import { type NativeValue, native, type TensorHandle } from "./native.js";
import { OP_TABLE, type OpName } from "./op-table.js";
import { Tensor } from "./tensor.js";

const ids = new Map<OpName, number>();

function opId(name: OpName): number {
  let id = ids.get(name);
  if (id === undefined) {
    const full = OP_TABLE[name];
    const dot = full.indexOf(".");
    id = native.op(dot < 0 ? full : full.slice(0, dot), dot < 0 ? "" : full.slice(dot + 1)).id;
    ids.set(name, id);
  }
  return id;
}

/** The schema LibTorch reports for a table op (for docs, tests and error messages). */
export function opSchema(name: OpName): string {
  const full = OP_TABLE[name];
  const dot = full.indexOf(".");
  return native.op(dot < 0 ? full : full.slice(0, dot), dot < 0 ? "" : full.slice(dot + 1)).schema;
}

export type OpArg = Tensor | Generator | number | boolean | string | null | undefined | readonly OpArg[];

function lower(v: OpArg): NativeValue {
  if (v instanceof Tensor) return v.handle;
  // For the `Generator? generator` argument of the random ops.
  if (v instanceof Generator) return v.handle;
  if (Array.isArray(v)) return v.map(lower);
  return v as NativeValue;
}

function lowerNamed(named: Record<string, OpArg> | undefined): Record<string, NativeValue> | undefined {
  if (named === undefined) return undefined;
  const out: Record<string, NativeValue> = {};
  for (const k in named) {
    const v = named[k];
    if (v !== undefined) out[k] = lower(v);
  }
  return out;
}

export type OpResult = Tensor | number | boolean | null | OpResult[];

function lift(v: NativeValue): OpResult {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.map(lift);
  if (typeof v === "object") return Tensor.fromHandle(v as TensorHandle);
  return v as number | boolean;
}

export function callOp(name: OpName, args: readonly OpArg[], named?: Record<string, OpArg>): OpResult {
  return lift(native.call(opId(name), args.map(lower), lowerNamed(named)));
}

export function callTensor(name: OpName, args: readonly OpArg[], named?: Record<string, OpArg>): Tensor {
  return callOp(name, args, named) as Tensor;
}

export function callTensors(name: OpName, args: readonly OpArg[], named?: Record<string, OpArg>): Tensor[] {
  return callOp(name, args, named) as Tensor[];
}

/** For ops that write into their first argument and return it. */
export function callInPlace(name: OpName, args: readonly OpArg[], named?: Record<string, OpArg>): void {
  native.call(opId(name), args.map(lower), lowerNamed(named));
}
