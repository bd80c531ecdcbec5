// Where a process stands in a distributed run: from explicit options, else from the
// environment variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), so our processes start the way PyTorch's do.

export interface DistPlacement {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

export interface DistFlags {
  rank?: number;
  worldSize?: number;
  masterAddr?: string;
  masterPort?: number;
}

function intFrom(text: string | undefined, what: string, min: number): number | undefined {
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`dist: ${what} must be an integer >= ${min}, got '${text}'`);
  return n;
}

/**
 * This process's placement, or null when it is not part of a distributed run (no world
 * size given anywhere). Flags win over the environment.
 */
export function distPlacement(flags: DistFlags = {}, env: NodeJS.ProcessEnv = process.env): DistPlacement | null {
  const worldSize = flags.worldSize ?? intFrom(env.WORLD_SIZE, "WORLD_SIZE", 1);
  if (worldSize === undefined) {
    if (flags.rank !== undefined) throw new RangeError("dist: --rank needs --world-size (or WORLD_SIZE)");
    return null;
  }
  const rank = flags.rank ?? intFrom(env.RANK, "RANK", 0);
  if (rank === undefined) throw new RangeError(`dist: a world of ${worldSize} needs this process's rank (--rank or RANK)`);
  if (rank >= worldSize) throw new RangeError(`dist: rank ${rank} is outside a world of ${worldSize}`);
  const masterAddr = flags.masterAddr ?? (env.MASTER_ADDR !== undefined && env.MASTER_ADDR !== "" ? env.MASTER_ADDR : undefined);
  const masterPort = flags.masterPort ?? intFrom(env.MASTER_PORT, "MASTER_PORT", 1);
  if (worldSize > 1 && masterAddr === undefined)
    throw new RangeError("dist: a world of several processes needs the store's host (--master-addr or MASTER_ADDR)");
  if (worldSize > 1 && masterPort === undefined)
    throw new RangeError("dist: a world of several processes needs the store's port (--master-port or MASTER_PORT)");
  if (masterPort !== undefined && masterPort > 65535) throw new RangeError(`dist: port ${masterPort} is above 65535`);
  return {
    rank,
    worldSize,
    localRank: intFrom(env.LOCAL_RANK, "LOCAL_RANK", 0) ?? rank,
    localWorldSize: intFrom(env.LOCAL_WORLD_SIZE, "LOCAL_WORLD_SIZE", 1) ?? worldSize,
    masterAddr: masterAddr ?? "127.0.0.1",
    masterPort: masterPort ?? 29500,
  };
}
