// nn.Module: named parameters, buffers and children, with PyTorch's dotted state-dict
// names so checkpoints move between robust-moe and PyTorch unchanged.
import { LipschitzError, type LipschitzNorm, type LipschitzOptions } from "../certify/lipschitz.js";
import { noGrad } from "../tensor/autograd.js";
import type { DType } from "../tensor/dtype.js";
import { keep } from "../tensor/scope.js";
import type { Device, MemoryFormat, Tensor } from "../tensor/tensor.js";

export type StateDict = Map<string, Tensor>;

/** What Module.to changes: any of device, floating-point dtype and the memory format of 4-d tensors. */
export interface ModuleToOptions {
  device?: Device;
  dtype?: DType;
  memoryFormat?: MemoryFormat;
}

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly shapeMismatches: string[],
  ) {
    super(message);
    this.name = "StateDictError";
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export abstract class Module {
  training = true;
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #modules = new Map<string, Module | null>();

  /** Registers a trainable tensor; it is kept alive across scopes and requires grad. */
  protected registerParameter<T extends Tensor | null>(name: string, t: T): T {
    this.#checkName(name);
    if (t !== null) {
      keep(t);
      if (!t.requiresGrad) t.requiresGrad = true;
    }
    this.#parameters.set(name, t);
    return t;
  }

  /** Registers state that is saved but not trained (BatchNorm running stats, normalisation constants). */
  protected registerBuffer<T extends Tensor | null>(name: string, t: T, persistent = true): T {
    this.#checkName(name);
    if (t !== null) keep(t);
    this.#buffers.set(name, t);
    if (!persistent) this.#nonPersistent.add(name);
    return t;
  }

  protected registerModule<M extends Module | null>(name: string, m: M): M {
    this.#checkName(name);
    this.#modules.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (name === "" || name.includes("."))
      throw new TypeError(`module member name '${name}' must be non-empty and contain no '.'`);
    if (this.#parameters.has(name) || this.#buffers.has(name) || this.#modules.has(name)) {
      throw new TypeError(`'${name}' is already registered on ${this.constructor.name}`);
    }
  }

  *namedChildren(): Generator<[string, Module]> {
    for (const [n, m] of this.#modules) if (m !== null) yield [n, m];
  }

  *children(): Generator<Module> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module and all descendants, depth first, with dotted names ("" for this one). */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.namedChildren()) yield* m.namedModules(prefix === "" ? n : `${prefix}.${n}`);
  }

  *modules(): Generator<Module> {
    for (const [, m] of this.namedModules()) yield m;
  }

  *namedParameters(prefix = ""): Generator<[string, Tensor]> {
    const seen = new Set<Tensor>();
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, p] of m.#parameters) {
        if (p === null || seen.has(p)) continue;
        seen.add(p);
        yield [mp === "" ? n : `${mp}.${n}`, p];
      }
    }
  }

  parameters(): Tensor[] {
    return Array.from(this.namedParameters(), ([, p]) => p);
  }

  *namedBuffers(prefix = ""): Generator<[string, Tensor]> {
    for (const [mp, m] of this.namedModules(prefix)) {
      for (const [n, b] of m.#buffers) if (b !== null) yield [mp === "" ? n : `${mp}.${n}`, b];
    }
  }

  buffers(): Tensor[] {
    return Array.from(this.namedBuffers(), ([, b]) => b);
  }

  /** Sets training mode here and in every descendant. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  apply(fn: (m: Module) => void): this {
    for (const [, child] of this.namedChildren()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Drops (default) or zeroes every parameter's gradient. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (setToNone) {
        p.grad = null;
      } else {
        const g = p.grad;
        if (g !== null) {
          g.zero_();
          g.dispose();
        }
      }
    }
  }

  /**
   * Moves or casts parameters and buffers in place (same tensor objects, as PyTorch's
   * Module.to): a dtype applies to floating-point tensors only; a memory format to 4-d
   * tensors only (convolution weights), as `module.to(memory_format=torch.channels_last)`.
   * Channels-last is only worth it (and only safe, see nn/channels-last.ts) where the
   * table of tested configurations allows it: `channelsLastSupport` says where.
   */
  to(target: Device | DType | ModuleToOptions): this {
    const o: ModuleToOptions =
      typeof target === "object"
        ? target
        : target === "cpu" || target.startsWith("cuda")
          ? { device: target as Device }
          : { dtype: target as DType };
    noGrad(() => {
      const floating = new Set(["float32", "float64", "float16", "bfloat16"]);
      for (const t of [...this.parameters(), ...this.buffers()]) {
        // Each change makes a new tensor; the intermediate ones are freed, the last one
        // becomes the data of the same parameter object.
        let moved: Tensor = t;
        const apply = (f: (x: Tensor) => Tensor) => {
          const next = f(moved);
          if (moved !== t) moved.dispose();
          moved = next;
        };
        if (o.device !== undefined) apply((x) => x.to(o.device as Device));
        if (o.dtype !== undefined && floating.has(t.dtype)) apply((x) => x.to(o.dtype as DType));
        if (o.memoryFormat !== undefined && t.ndim === 4) apply((x) => x.contiguous(o.memoryFormat));
        if (moved === t) continue;
        t.setData(moved);
        moved.dispose();
      }
    });
    return this;
  }

  /** Parameters and persistent buffers by dotted name, in PyTorch's order (shared storage, not copies). */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [mp, m] of this.namedModules()) {
      const name = (n: string) => (mp === "" ? n : `${mp}.${n}`);
      for (const [n, p] of m.#parameters) if (p !== null) out.set(name(n), p);
      for (const [n, b] of m.#buffers) if (b !== null && !m.#nonPersistent.has(n)) out.set(name(n), b);
    }
    return out;
  }

  /**
   * Copies values from dict into this module's tensors (which keep their identity).
   * strict (default): every key must match and every shape agree, or nothing is loaded
   * and the error lists every offending key.
   */
  loadStateDict(
    dict: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    const strict = options.strict ?? true;
    const source = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = this.stateDict();
    const missingKeys = [...own.keys()].filter((k) => !source.has(k));
    const unexpectedKeys = [...source.keys()].filter((k) => !own.has(k));
    const shapeMismatches: string[] = [];
    for (const [k, t] of own) {
      const src = source.get(k);
      if (src !== undefined && !sameShape(src.shape, t.shape)) {
        shapeMismatches.push(`${k}: checkpoint [${src.shape.join(", ")}] vs model [${t.shape.join(", ")}]`);
      }
    }
    if (shapeMismatches.length > 0 || (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0))) {
      const parts: string[] = [];
      if (missingKeys.length > 0) parts.push(`missing keys: ${missingKeys.join(", ")}`);
      if (unexpectedKeys.length > 0) parts.push(`unexpected keys: ${unexpectedKeys.join(", ")}`);
      if (shapeMismatches.length > 0) parts.push(`shape mismatches: ${shapeMismatches.join("; ")}`);
      throw new StateDictError(
        `loadStateDict into ${this.constructor.name}: ${parts.join(" | ")}`,
        missingKeys,
        unexpectedKeys,
        shapeMismatches,
      );
    }
    noGrad(() => {
      for (const [k, t] of own) {
        const src = source.get(k);
        if (src !== undefined) t.copy_(src);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  /**
   * An upper bound on this module's Lipschitz constant as a map of its input, in the given norm
   * on input and output (L-inf -> L-inf or L2 -> L2; docs/CERTIFY.md). Layers that have one
   * override this; the default refuses, so a network with a layer that states no bound never
   * gets a made-up constant.
   */
  lipschitz(_norm: LipschitzNorm, _options?: LipschitzOptions): number {
    throw new LipschitzError(`no Lipschitz bound for ${this.constructor.name}: it does not implement lipschitz(norm)`);
  }

  /** Frees every parameter and buffer of this module tree. */
  dispose(): void {
    for (const t of [...this.parameters(), ...this.buffers()]) t.dispose();
  }
}

/** A module with one tensor in and one tensor out: what Sequential chains. */
export interface UnaryModule extends Module {
  forward(input: Tensor): Tensor;
}
