// Small seeded generators for shuffling and augmentation. They are plain JS (no LibTorch
// state), so worker threads draw exactly what the main thread would: a batch's randomness
// depends only on (seed, epoch, batch index), never on which thread computes it.

/** Mixes 32-bit words into one well-spread 32-bit seed (murmur3 finaliser over a running hash). */
export function mixSeed(...parts: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Fold values up to 2^53 into two 32-bit words so large seeds still matter.
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    for (const w of [lo, hi]) {
      h = Math.imul(h ^ w, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}

/** sfc32 (Chris Doty-Humphrey's small fast counter), seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform on [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer on [0, n), n <= 2^32. */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

/** Fisher-Yates shuffle in place with the given generator. */
export function shuffleInPlace(a: Int32Array, rng: Rng): Int32Array {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i] as number;
    a[i] = a[j] as number;
    a[j] = t;
  }
  return a;
}

/** Checks a user seed: a non-negative safe integer. */
export function checkSeed(seed: number, what: string): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`${what}: seed must be a non-negative integer, got ${seed}`);
  return seed;
}
