import { checkNorm, isChannelScaling, type LipschitzNorm, type LipschitzOptions, outputShapeOf } from "../certify/lipschitz.js";
import { scope } from "../tensor/scope.js";
import type { Tensor } from "../tensor/tensor.js";
import { Conv2d } from "./conv2d.js";
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

  /** The product of the children's bounds, with BatchNorm/Normalize folded into adjacent convolutions (see chainLipschitz). */
  override lipschitz(norm: LipschitzNorm, options: LipschitzOptions = {}): number {
    return chainLipschitz([...this], norm, options);
  }
}

/**
 * An upper bound on the Lipschitz constant of the composition modules[n-1] o ... o modules[0]:
 * the product of the layers' bounds (Lip(f o g) <= Lip(f) Lip(g)). With options.fuseBatchNorm
 * (default) every convolution absorbs the per-channel scalings (BatchNorm in eval, Normalize)
 * directly before and after it, which is exact algebra and can only tighten the product.
 * Each layer gets the shape its input really has when options.inputShape is given (one forward
 * of zeros per layer, without gradient).
 */
export function chainLipschitz(modules: readonly UnaryModule[], norm: LipschitzNorm, options: LipschitzOptions = {}): number {
  checkNorm(norm, "chainLipschitz");
  const fuse = options.fuseBatchNorm ?? true;
  // Nested Sequentials are spliced in, so that a scaling at the end of one can fold into a conv at
  // the start of the next (a router's Normalize into its first conv).
  const flat = (ms: readonly UnaryModule[]): UnaryModule[] => ms.flatMap((m) => (m instanceof Sequential ? flat([...m]) : [m]));
  modules = flat(modules);
  return scope(() => {
    let shape = options.inputShape;
    const at = (s: readonly number[] | undefined): LipschitzOptions =>
      s === undefined ? { ...options, inputShape: undefined } : { ...options, inputShape: s };
    let product = 1;
    // Scalings seen since the last other layer, waiting to be folded into a convolution.
    let pending: Tensor | null = null;
    const flush = () => {
      if (pending !== null) product *= pending.max().item();
      pending = null;
    };
    for (let i = 0; i < modules.length; i++) {
      const m = modules[i] as UnaryModule;
      if (fuse && isChannelScaling(m) && !(m instanceof Conv2d)) {
        const s = m.channelScale();
        pending = pending === null ? s : pending.mul(s);
        continue; // a per-channel scaling keeps the shape
      }
      if (fuse && m instanceof Conv2d) {
        let output: Tensor | null = null;
        while (i + 1 < modules.length && isChannelScaling(modules[i + 1] as UnaryModule)) {
          const s = (modules[i + 1] as UnaryModule & { channelScale(): Tensor }).channelScale();
          output = output === null ? s : output.mul(s);
          i += 1;
        }
        product *= m.scaledLipschitz(norm, at(shape), { input: pending, output });
        pending = null;
        if (shape !== undefined) shape = outputShapeOf(m, shape);
        continue;
      }
      flush();
      product *= m.lipschitz(norm, at(shape));
      if (shape !== undefined) shape = outputShapeOf(m, shape);
    }
    flush();
    return product;
  });
}
