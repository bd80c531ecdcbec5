// Tensor element types, with the numeric codes of c10::ScalarType.

export type DType = "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const BY_CODE = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

export function dtypeCode(d: DType): number {
  const c = CODES[d];
  if (c === undefined) throw new TypeError(`unknown dtype '${String(d)}'; expected one of ${Object.keys(CODES).join(", ")}`);
  return c;
}

export function dtypeFromCode(code: number): DType {
  const d = BY_CODE.get(code);
  if (d === undefined) throw new TypeError(`tensor has a dtype robust-moe does not expose (c10::ScalarType ${code})`);
  return d;
}

export function isFloatingPoint(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16" || d === "bfloat16";
}

export type TypedArrayFor<D extends DType> = D extends "float32" | "float16" | "bfloat16"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "int64"
      ? BigInt64Array
      : D extends "int32"
        ? Int32Array
        : D extends "int16"
          ? Int16Array
          : D extends "int8"
            ? Int8Array
            : Uint8Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

const SIZES: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  int16: 2,
  float16: 2,
  bfloat16: 2,
  int32: 4,
  float32: 4,
  int64: 8,
  float64: 8,
};

/** Bytes per element. */
export function elementSize(d: DType): number {
  return SIZES[d];
}
