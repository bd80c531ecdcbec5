import type { Tensor } from "../tensor/tensor.js";
import { Module, type UnaryModule } from "./module.js";

/** Children named "0", "1", ... as in PyTorch, so state-dict keys match. */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }

  get length(): number {
    return this.#items.length;
  }

  at(i: number): M {
    const m = this.#items.at(i);
    if (m === undefined) throw new RangeError(`ModuleList index ${i} out of range for length ${this.#items.length}`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

export class Sequential extends ModuleList<UnaryModule> implements UnaryModule {
  constructor(...modules: UnaryModule[]) {
    super(modules);
  }

  /** Intermediate outputs are freed as soon as the next layer has consumed them. */
  forward(input: Tensor): Tensor {
    let x = input;
    for (const m of this) {
      const next = m.forward(x);
      if (x !== input) x.dispose();
      x = next;
    }
    return x === input ? input.view(...input.shape) : x;
  }
}
