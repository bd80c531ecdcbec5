// Image classification datasets held in memory as uint8 CHW images plus integer labels,
// with index-mapped subsets (take, stratified) that share the parent's storage.
import { checkSeed, mixSeed, Rng, shuffleInPlace } from "./rng.js";

/** One example: a copy of the image (uint8, channels x height x width) and its class index. */
export interface Sample {
  image: Uint8Array;
  label: number;
}

/** [channels, height, width]. */
export type ImageShape = readonly [number, number, number];

/**
 * The storage behind a dataset: count images of shape [C, H, W] back to back (NCHW uint8)
 * and one label per image. images is usually backed by a SharedArrayBuffer so that loader
 * workers read it without copies.
 */
export interface ImageStorage {
  readonly images: Uint8Array;
  readonly labels: Int32Array;
  readonly shape: ImageShape;
}

/** A storage plus the positions (into it) that a dataset or subset covers, or null for all. */
export interface StorageView {
  readonly storage: ImageStorage;
  readonly indices: Int32Array | null;
}

export abstract class ImageDataset {
  abstract readonly classes: readonly string[];
  abstract readonly length: number;
  /** [C, H, W] of every image. */
  abstract readonly imageShape: ImageShape;
  /** Label of example i without copying its image. */
  abstract label(i: number): number;
  /** The storage and index map, for loaders that read images in place. */
  abstract view(): StorageView;

  /** Example i: a fresh copy of its image (CHW uint8) and its label. */
  get(i: number): Sample {
    const { storage, indices } = this.view();
    this.check(i);
    const j = indices === null ? i : (indices[i] as number);
    const size = storage.shape[0] * storage.shape[1] * storage.shape[2];
    return { image: storage.images.slice(j * size, (j + 1) * size), label: storage.labels[j] as number };
  }

  /** The first n examples (n is clamped to length). */
  take(n: number): Subset {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`take: n must be a non-negative integer, got ${n}`);
    const m = Math.min(n, this.length);
    const idx = new Int32Array(m);
    for (let i = 0; i < m; i++) idx[i] = i;
    return new Subset(this, idx);
  }

  /** The examples at the given positions, in that order. */
  subset(positions: ArrayLike<number>): Subset {
    return new Subset(this, Int32Array.from(positions));
  }

  /**
   * perClass examples of every class, chosen uniformly at random with the seed (same seed,
   * same subset) and kept in dataset order. Throws if a class has fewer than perClass.
   */
  stratified(perClass: number, seed = 0): Subset {
    if (!Number.isInteger(perClass) || perClass < 0) {
      throw new RangeError(`stratified: perClass must be a non-negative integer, got ${perClass}`);
    }
    checkSeed(seed, "stratified");
    const byClass: number[][] = this.classes.map(() => []);
    for (let i = 0; i < this.length; i++) {
      const c = this.label(i);
      const list = byClass[c];
      if (list === undefined)
        throw new RangeError(`stratified: example ${i} has label ${c}, outside 0..${this.classes.length - 1}`);
      list.push(i);
    }
    const chosen: number[] = [];
    for (const [c, list] of byClass.entries()) {
      if (list.length < perClass) {
        throw new RangeError(`stratified: class ${c} (${this.classes[c]}) has ${list.length} examples, fewer than ${perClass}`);
      }
      const shuffled = shuffleInPlace(Int32Array.from(list), new Rng(mixSeed(seed, 0x5354, c)));
      for (let k = 0; k < perClass; k++) chosen.push(shuffled[k] as number);
    }
    chosen.sort((a, b) => a - b);
    return new Subset(this, Int32Array.from(chosen));
  }

  /** Number of examples of each class. */
  classCounts(): number[] {
    const counts = this.classes.map(() => 0);
    for (let i = 0; i < this.length; i++) {
      const c = this.label(i);
      counts[c] = (counts[c] ?? 0) + 1;
    }
    return counts;
  }

  protected check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new RangeError(`dataset index ${i} out of range 0..${this.length - 1}`);
    }
  }
}

/** A dataset over an ImageStorage held in memory (also how tests build hand-made datasets). */
export class ArrayDataset extends ImageDataset {
  readonly classes: readonly string[];
  readonly length: number;
  readonly imageShape: ImageShape;
  protected readonly storage: ImageStorage;

  constructor(storage: ImageStorage, classes: readonly string[]) {
    super();
    const [c, h, w] = storage.shape;
    for (const d of storage.shape) {
      if (!Number.isInteger(d) || d <= 0) throw new TypeError(`ArrayDataset: bad image shape [${storage.shape.join(", ")}]`);
    }
    const n = storage.labels.length;
    if (storage.images.length !== n * c * h * w) {
      throw new TypeError(
        `ArrayDataset: ${storage.images.length} image bytes for ${n} labels of shape [${c}, ${h}, ${w}] (need ${n * c * h * w})`,
      );
    }
    for (let i = 0; i < n; i++) {
      const l = storage.labels[i] as number;
      if (l < 0 || l >= classes.length)
        throw new RangeError(`ArrayDataset: label ${l} of example ${i} outside 0..${classes.length - 1}`);
    }
    this.storage = storage;
    this.classes = classes;
    this.length = n;
    this.imageShape = storage.shape;
  }

  /** A dataset from plain arrays; images are copied into shared memory. */
  static fromArrays(images: Uint8Array, labels: ArrayLike<number>, shape: ImageShape, classes: readonly string[]): ArrayDataset {
    const shared = sharedBytes(images.length);
    shared.set(images);
    return new ArrayDataset({ images: shared, labels: Int32Array.from(labels), shape }, classes);
  }

  label(i: number): number {
    this.check(i);
    return this.storage.labels[i] as number;
  }

  view(): StorageView {
    return { storage: this.storage, indices: null };
  }
}

/** Selected examples of a parent dataset; shares its storage. */
export class Subset extends ImageDataset {
  readonly classes: readonly string[];
  readonly length: number;
  readonly imageShape: ImageShape;
  readonly parent: ImageDataset;
  private readonly mapped: StorageView;

  constructor(parent: ImageDataset, positions: Int32Array) {
    super();
    for (let k = 0; k < positions.length; k++) {
      const p = positions[k] as number;
      if (p < 0 || p >= parent.length) throw new RangeError(`Subset: position ${p} out of range 0..${parent.length - 1}`);
    }
    const pv = parent.view();
    const indices = pv.indices === null ? positions : positions.map((p) => (pv.indices as Int32Array)[p] as number);
    this.mapped = { storage: pv.storage, indices };
    this.parent = parent;
    this.classes = parent.classes;
    this.length = positions.length;
    this.imageShape = parent.imageShape;
  }

  label(i: number): number {
    this.check(i);
    const { storage, indices } = this.mapped;
    return storage.labels[(indices as Int32Array)[i] as number] as number;
  }

  view(): StorageView {
    return this.mapped;
  }
}

/** A zeroed Uint8Array over a new SharedArrayBuffer. */
export function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}
