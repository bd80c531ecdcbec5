// Gradient buckets as PyTorch's DDP forms them: parameters in reverse order of registration
// (roughly the order backward produces their gradients), one dtype per bucket, a small
// first bucket (1 MiB) so communication starts early, then buckets of up to bucketCapBytes.

export interface BucketItem {
  /** Position in the parameter list. */
  index: number;
  numel: number;
  dtype: string;
  bytes: number;
}

export interface Bucket {
  dtype: string;
  /** Positions in the parameter list, in bucket order. */
  indices: number[];
  /** Offset of each item in the flat bucket (elements). */
  offsets: number[];
  numel: number;
}

export function assignBuckets(items: readonly BucketItem[], bucketCapBytes: number, firstBucketCapBytes: number): Bucket[] {
  if (!(bucketCapBytes > 0) || !(firstBucketCapBytes > 0)) throw new RangeError("assignBuckets: bucket caps must be positive");
  const out: Bucket[] = [];
  const open = new Map<string, { bucket: Bucket; bytes: number }>();
  for (const it of [...items].reverse()) {
    let cur = open.get(it.dtype);
    if (cur === undefined) {
      cur = { bucket: { dtype: it.dtype, indices: [], offsets: [], numel: 0 }, bytes: 0 };
      open.set(it.dtype, cur);
    }
    cur.bucket.indices.push(it.index);
    cur.bucket.offsets.push(cur.bucket.numel);
    cur.bucket.numel += it.numel;
    cur.bytes += it.bytes;
    const cap = out.length === 0 ? firstBucketCapBytes : bucketCapBytes;
    if (cur.bytes >= cap) {
      out.push(cur.bucket);
      open.delete(it.dtype);
    }
  }
  for (const { bucket } of open.values()) out.push(bucket);
  return out;
}
