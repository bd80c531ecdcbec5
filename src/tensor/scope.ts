// Explicit native memory management: tensors created inside scope(fn) are freed when
// fn returns, except the ones it returns (like tf.tidy). GC finalizers are only a
// last resort: they run when the event loop turns, which a training loop may not do.

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];
const kept = new WeakSet<Disposable>();

export function track<T extends Disposable>(t: T): T {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.add(t);
  return t;
}

/** Exempts t from every enclosing and future scope: it lives until dispose(). */
export function keep<T extends Disposable>(t: T): T {
  kept.add(t);
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, into: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable).dispose === "function" && "isDisposed" in (value as object)) {
    into.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, seen);
  }
}

/**
 * Runs fn and frees every tensor created during it that is not reachable from its
 * result (a tensor, or arrays/plain objects/Maps of them) and not kept.
 * fn must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Disposable>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new TypeError("scope(fn): fn returned a Promise; scope only works with synchronous functions");
  }
  const survivors = new Set<Disposable>();
  collect(result, survivors, new Set());
  for (const t of mine) {
    if (survivors.has(t) || kept.has(t)) continue;
    t.dispose();
  }
  const parent = stack[stack.length - 1];
  if (parent !== undefined) for (const t of survivors) if (mine.has(t)) parent.add(t);
  return result;
}

/** Disposes every tensor found in value (a tensor, or arrays/objects of them). */
export function dispose(value: unknown): void {
  const found = new Set<Disposable>();
  collect(value, found, new Set());
  for (const t of found) t.dispose();
}
