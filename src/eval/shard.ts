// Splitting one evaluation over processes or machines: shard i of n (1-based, as
// `--shard 2/3` reads) takes the batches whose index b satisfies b mod n = i - 1. Whole
// batches move, never single images, so every batch holds the same images and gets the
// same seeds as in a single run, and the merged shards give exactly that run's report.

export interface Shard {
  /** 1-based: 1..count. */
  index: number;
  count: number;
}

export class ShardError extends Error {
  override name = "ShardError";
}

export function checkShard(what: string, s: Shard): void {
  if (!(Number.isInteger(s.count) && s.count >= 1))
    throw new ShardError(`${what}: shard count must be an integer >= 1, got ${s.count}`);
  if (!(Number.isInteger(s.index) && s.index >= 1 && s.index <= s.count)) {
    throw new ShardError(`${what}: shard index must be an integer in 1..${s.count}, got ${s.index}`);
  }
}

/** Parses 'i/n' (1 <= i <= n); throws ShardError naming the text. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (m === null) throw new ShardError(`shard must be 'i/n' with 1 <= i <= n (e.g. 2/3), got '${text}'`);
  const s = { index: Number(m[1]), count: Number(m[2]) };
  checkShard("shard", s);
  return s;
}

/** Whether global batch b (0-based) belongs to the shard (every batch when there is none). */
export function inShard(shard: Shard | null, batch: number): boolean {
  return shard === null || batch % shard.count === shard.index - 1;
}

export function formatShard(s: Shard): string {
  return `${s.index}/${s.count}`;
}
