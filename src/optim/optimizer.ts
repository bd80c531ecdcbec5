// The optimizer base: PyTorch-style param groups, per-parameter state and state dicts.
// Subclasses implement one group's update; the base runs it under noGrad, owns the
// state tensors (kept, so enclosing scopes never free them) and lends out scratch
// buffers so that a step allocates nothing once the state exists.
import { noGrad } from "../tensor/autograd.js";
import { emptyLike } from "../tensor/creation.js";
import { Tensor } from "../tensor/tensor.js";

/** Options every optimizer has, plus the ones learning-rate schedules read and write. */
export interface OptimizerOptions {
  lr: number;
  /** SGD-style momentum; schedules that cycle momentum write it. */
  momentum?: number;
  /** Adam-style (beta1, beta2); schedules that cycle momentum write beta1. */
  betas?: readonly [number, number];
}

/** One parameter group: its tensors and its own copy of every option. */
export type ParamGroup<O extends OptimizerOptions = OptimizerOptions> = O & {
  params: readonly Tensor[];
  /** The lr a schedule started from (PyTorch's `initial_lr`), set by the first schedule attached. */
  initialLr?: number;
};

/** A group as given to a constructor or addParamGroup: options it omits come from the defaults. */
export type ParamGroupInit<O extends OptimizerOptions> = Partial<O> & { params: readonly Tensor[] };

/** Per-parameter state: tensors (moments, buffers) and numbers (step counts). */
export type ParamState = { [key: string]: Tensor | number | undefined };

/**
 * A snapshot in PyTorch's layout: state per parameter index (indices count through the
 * groups in order) and each group's options with `params` as those indices. Its tensors
 * are copies owned by the caller (they belong to the current scope, or dispose them).
 */
export interface OptimizerStateDict<O extends OptimizerOptions = OptimizerOptions> {
  state: { [index: number]: { [key: string]: Tensor | number } };
  paramGroups: (O & { params: number[]; initialLr?: number })[];
}

type OptionValue = number | boolean | readonly number[] | undefined;

function copyOptions<T extends object>(o: T): T {
  const out: Record<string, OptionValue> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === "params") continue;
    out[k] = Array.isArray(v) ? [...(v as number[])] : (v as OptionValue);
  }
  return out as T;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export abstract class Optimizer<O extends OptimizerOptions = OptimizerOptions, S extends ParamState = ParamState> {
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[] = [];
  readonly #state = new Map<Tensor, S>();
  readonly #scratch = new Map<string, Tensor>();
  #disposed = false;

  protected constructor(params: readonly Tensor[] | readonly ParamGroupInit<O>[], defaults: O) {
    this.defaults = copyOptions(defaults);
    if (params.length === 0) throw new TypeError(`${this.constructor.name}: got an empty parameter list`);
    const tensors = params.filter((p) => p instanceof Tensor).length;
    if (tensors !== 0 && tensors !== params.length) {
      throw new TypeError(`${this.constructor.name}: give a list of tensors or a list of param groups, not a mix`);
    }
    const groups: readonly ParamGroupInit<O>[] =
      tensors > 0 ? [{ params: params as readonly Tensor[] } as ParamGroupInit<O>] : (params as readonly ParamGroupInit<O>[]);
    for (const g of groups) this.addParamGroup(g);
  }

  /** Checks one group's resolved options; throws a RangeError naming the bad option. */
  protected abstract validateOptions(options: O, where: string): void;

  /** Updates one group's parameters in place; called under noGrad. */
  protected abstract updateGroup(group: ParamGroup<O>): void;

  /** Checks a loaded parameter state against its group's options (e.g. amsgrad needs its buffer). */
  protected abstract checkState(state: S, group: ParamGroup<O>, where: string): void;

  /** Adds a group (e.g. layers unfrozen during fine-tuning); missing options take the defaults. */
  addParamGroup(group: ParamGroupInit<O>): void {
    const where = `${this.constructor.name}: param group ${this.paramGroups.length}`;
    if (!Array.isArray(group.params)) throw new TypeError(`${where}: params must be an array of tensors`);
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    const params: Tensor[] = [];
    for (const [i, p] of group.params.entries()) {
      if (!(p instanceof Tensor)) throw new TypeError(`${where}: params[${i}] is not a Tensor`);
      if (p.isDisposed) throw new TypeError(`${where}: params[${i}] was already disposed`);
      if (!p.isLeaf) throw new TypeError(`${where}: params[${i}] is not a leaf tensor (can't optimize a non-leaf Tensor)`);
      if (seen.has(p)) throw new TypeError(`${where}: params[${i}] appears more than once across the param groups`);
      seen.add(p);
      params.push(p);
    }
    const resolved = { ...copyOptions(this.defaults), ...copyOptions(group), params } as ParamGroup<O>;
    this.validateOptions(resolved, where);
    this.paramGroups.push(resolved);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.#checkAlive("step");
    noGrad(() => {
      for (const group of this.paramGroups) this.updateGroup(group);
    });
  }

  /** Clears gradients: drops them (setToNone, the default) or zeroes them in place. */
  zeroGrad(setToNone = true): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        if (setToNone) {
          p.grad = null;
          continue;
        }
        const g = p.grad;
        if (g === null) continue;
        try {
          noGrad(() => g.zero_());
        } finally {
          g.dispose();
        }
      }
    }
  }

  /** Calls fn(param, grad) for each parameter of the group with a gradient; the grad handle is freed after. */
  protected forEachGrad(group: ParamGroup<O>, fn: (param: Tensor, grad: Tensor) => void): void {
    for (const p of group.params) {
      const g = p.grad;
      if (g === null) continue;
      try {
        fn(p, g);
      } finally {
        g.dispose();
      }
    }
  }

  /** The parameter's state, created by init (its tensors must be kept) on first use. */
  protected stateFor(param: Tensor, init: () => S): S {
    let s = this.#state.get(param);
    if (s === undefined) {
      s = init();
      this.#state.set(param, s);
    }
    return s;
  }

  /**
   * A kept buffer shaped like param, shared by every parameter of that shape, dtype and
   * device: for temporaries such as a negated or decayed gradient. Its contents are
   * undefined on entry and must not be relied on after the caller's update returns.
   */
  protected scratchLike(param: Tensor): Tensor {
    const key = `${param.dtype}|${param.device}|${param.shape.join(",")}`;
    let s = this.#scratch.get(key);
    if (s === undefined) {
      s = emptyLike(param).keep();
      this.#scratch.set(key, s);
    }
    return s;
  }

  stateDict(): OptimizerStateDict<O> {
    this.#checkAlive("stateDict");
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((g) => {
      const params = g.params.map((p) => {
        const i = index.size;
        index.set(p, i);
        return i;
      });
      return { ...copyOptions(g), params } as O & { params: number[]; initialLr?: number };
    });
    const state: OptimizerStateDict<O>["state"] = {};
    noGrad(() => {
      for (const [p, s] of this.#state) {
        const i = index.get(p);
        if (i === undefined) continue;
        const entry: { [key: string]: Tensor | number } = {};
        for (const [k, v] of Object.entries(s)) {
          if (v === undefined) continue;
          entry[k] = v instanceof Tensor ? v.clone() : v;
        }
        state[i] = entry;
      }
    });
    return { state, paramGroups };
  }

  /**
   * Restores a stateDict() snapshot (group options and per-parameter state) so training
   * resumes exactly where it was saved. The snapshot's tensors are copied, not taken over.
   */
  loadStateDict(sd: OptimizerStateDict<O>): void {
    this.#checkAlive("loadStateDict");
    const name = this.constructor.name;
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new RangeError(
        `${name}.loadStateDict: got ${sd.paramGroups.length} param groups, optimizer has ${this.paramGroups.length}`,
      );
    }
    const byIndex: Tensor[] = [];
    const resolved: ParamGroup<O>[] = [];
    for (const [gi, saved] of sd.paramGroups.entries()) {
      const group = this.paramGroups[gi] as ParamGroup<O>;
      if (saved.params.length !== group.params.length) {
        throw new RangeError(
          `${name}.loadStateDict: param group ${gi} has ${saved.params.length} parameters saved, ${group.params.length} here`,
        );
      }
      for (const [k, idx] of saved.params.entries()) byIndex[idx] = group.params[k] as Tensor;
      const r = { ...copyOptions(saved), params: group.params } as ParamGroup<O>;
      this.validateOptions(r, `${name}.loadStateDict: param group ${gi}`);
      resolved.push(r);
    }
    const groupOf = new Map<Tensor, ParamGroup<O>>();
    for (const g of resolved) for (const p of g.params) groupOf.set(p, g);

    const next = new Map<Tensor, S>();
    try {
      noGrad(() => {
        for (const [key, entry] of Object.entries(sd.state)) {
          const p = byIndex[Number(key)];
          if (p === undefined) throw new RangeError(`${name}.loadStateDict: state for parameter ${key}, which no group lists`);
          const s: ParamState = {};
          next.set(p, s as S);
          for (const [k, v] of Object.entries(entry)) {
            if (typeof v === "number") {
              s[k] = v;
            } else if (v instanceof Tensor) {
              if (!sameShape(v.shape, p.shape)) {
                throw new RangeError(
                  `${name}.loadStateDict: state '${k}' of parameter ${key} has shape [${v.shape}], the parameter [${p.shape}]`,
                );
              }
              // copy_ converts dtype and device to the parameter's, as PyTorch's load casts state.
              s[k] = emptyLike(p).keep().copy_(v);
            } else {
              throw new TypeError(`${name}.loadStateDict: state '${k}' of parameter ${key} is neither a number nor a tensor`);
            }
          }
          this.checkState(s as S, groupOf.get(p) as ParamGroup<O>, `${name}.loadStateDict: parameter ${key}`);
        }
      });
    } catch (e) {
      for (const s of next.values()) disposeState(s);
      throw e;
    }
    for (const s of this.#state.values()) disposeState(s);
    this.#state.clear();
    for (const [p, s] of next) this.#state.set(p, s);
    for (const [gi, r] of resolved.entries()) {
      const group = this.paramGroups[gi] as ParamGroup<O>;
      for (const k of Object.keys(group)) if (k !== "params") delete (group as unknown as Record<string, unknown>)[k];
      Object.assign(group, copyOptions(r));
    }
  }

  /** Frees the state and scratch tensors; the optimizer cannot be used afterwards. */
  dispose(): void {
    for (const s of this.#state.values()) disposeState(s);
    this.#state.clear();
    for (const t of this.#scratch.values()) t.dispose();
    this.#scratch.clear();
    this.#disposed = true;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  #checkAlive(what: string): void {
    if (this.#disposed) throw new Error(`${this.constructor.name}.${what}: the optimizer was disposed`);
  }
}

function disposeState(s: ParamState): void {
  for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

/** Throws a RangeError unless v is a finite number >= min (and < below, when given). */
export function checkOption(where: string, name: string, v: unknown, min: number, below?: number): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || (below !== undefined && v >= below)) {
    const range = below === undefined ? `>= ${min}` : `in [${min}, ${below})`;
    throw new RangeError(`${where}: invalid ${name} ${String(v)} (must be a finite number ${range})`);
  }
}

export function checkBoolean(where: string, name: string, v: unknown): void {
  if (typeof v !== "boolean") throw new TypeError(`${where}: ${name} must be a boolean, got ${String(v)}`);
}
