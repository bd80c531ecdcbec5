// Every rank's bytes on every rank (an evaluation shard's flags, say): two allgathers, of
// the lengths and then of the bytes padded to the longest.
import { fromBytes, tensor, zeros } from "../tensor/creation.js";
import type { ProcessGroup } from "./process-group.js";

export async function allgatherBytes(group: ProcessGroup, bytes: Uint8Array, timeoutMs?: number): Promise<Uint8Array[]> {
  const world = group.worldSize;
  const opts = timeoutMs === undefined ? {} : { timeoutMs };
  const lengthIn = tensor(BigInt64Array.from([BigInt(bytes.length)]));
  const lengthOut = Array.from({ length: world }, () => zeros([1], { dtype: "int64" }));
  try {
    await group.allgather(lengthOut, lengthIn, opts).wait();
    const lengths = lengthOut.map((t) => t.item());
    const longest = Math.max(1, ...lengths);
    const padded = new Uint8Array(longest);
    padded.set(bytes);
    const input = fromBytes(padded, [longest], "uint8");
    const outputs = Array.from({ length: world }, () => zeros([longest], { dtype: "uint8" }));
    try {
      await group.allgather(outputs, input, opts).wait();
      return outputs.map((t, r) => t.toBytes().slice(0, lengths[r] as number));
    } finally {
      input.dispose();
      for (const t of outputs) t.dispose();
    }
  } finally {
    lengthIn.dispose();
    for (const t of lengthOut) t.dispose();
  }
}
