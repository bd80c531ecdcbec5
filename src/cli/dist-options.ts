// The data-parallel flags `rmoe eval` shares with `rmoe train` (docs/DISTRIBUTED.md):
// --nproc starts local processes as torchrun does; --rank, --world-size, --master-addr,
// --master-port (or torchrun's environment variables) make this process one rank.
import { distPlacement } from "../dist/env.js";
import { launch } from "../dist/launch.js";
import { initProcessGroup, type ProcessGroup } from "../dist/process-group.js";
import { DEFAULT_TIMEOUT_MS } from "../dist/store.js";
import type { OptionSpec, ParsedOptions } from "./args.js";

export const DIST_OPTIONS: Record<string, OptionSpec> = {
  nproc: { type: "int", min: 1 },
  rank: { type: "int", min: 0 },
  "world-size": { type: "int", min: 1 },
  "master-addr": { type: "string" },
  "master-port": { type: "int", min: 1 },
  "dist-timeout": { type: "float" },
  backend: { type: "string" },
};

export const DIST_HELP = `  --nproc N            start N local processes, one shard each; rank 0 merges and reports
  --rank R, --world-size W, --master-addr HOST, --master-port PORT
                       join a group of W processes (or RANK, WORLD_SIZE, MASTER_ADDR,
                       MASTER_PORT from the environment, as torchrun sets them)
  --backend gloo|nccl  c10d backend (default gloo; nccl needs a CUDA build with NCCL)
  --dist-timeout S     seconds a collective may wait for a peer (default 1800)`;

const LAUNCH_FLAGS = new Set(["--nproc", "--rank", "--world-size", "--master-addr", "--master-port"]);

/** argv without the flags the launcher turns into environment variables. */
export function withoutLaunchFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (LAUNCH_FLAGS.has(a)) i++;
    else out.push(a);
  }
  return out;
}

export type DistStart = { launched: number } | { group: ProcessGroup | null };

/**
 * --nproc: starts the processes (`node <this script> <command> ...argv without launch flags`)
 * and resolves with their exit code; otherwise joins the process group this process's flags
 * or environment place it in (null: not distributed).
 */
export async function startDistributed(command: string, o: ParsedOptions, argv: readonly string[]): Promise<DistStart> {
  const num = (k: string) => (typeof o[k] === "number" ? (o[k] as number) : undefined);
  const addr = typeof o["master-addr"] === "string" ? (o["master-addr"] as string) : undefined;
  const timeoutS = num("dist-timeout");
  if (timeoutS !== undefined && !(timeoutS > 0)) throw new RangeError(`--dist-timeout must be positive, got ${timeoutS}`);
  const backend = o.backend ?? "gloo";
  if (backend !== "gloo" && backend !== "nccl")
    throw new RangeError(`--backend must be 'gloo' or 'nccl', got '${String(backend)}'`);
  const nproc = num("nproc");
  if (nproc !== undefined) {
    const script = process.argv[1];
    if (script === undefined) throw new Error(`rmoe ${command} --nproc: cannot tell which script to start`);
    const rank = num("rank");
    const worldSize = num("world-size");
    const port = num("master-port");
    const r = await launch({
      args: [script, command, ...withoutLaunchFlags(argv)],
      nproc,
      ...(worldSize !== undefined ? { worldSize } : {}),
      ...(rank !== undefined ? { firstRank: rank } : {}),
      ...(addr !== undefined ? { masterAddr: addr } : {}),
      ...(port !== undefined ? { masterPort: port } : {}),
    });
    if (r.code !== 0) {
      const failed = r.exits
        .filter((e) => e.code !== 0)
        .map((e) => `rank ${e.rank} ${e.signal !== null ? `killed by ${e.signal}` : `exit ${e.code}`}`);
      process.stderr.write(`rmoe ${command}: ${failed.join(", ")}\n`);
    }
    return { launched: r.code };
  }
  const rank = num("rank");
  const worldSize = num("world-size");
  const port = num("master-port");
  const p = distPlacement({
    ...(rank !== undefined ? { rank } : {}),
    ...(worldSize !== undefined ? { worldSize } : {}),
    ...(addr !== undefined ? { masterAddr: addr } : {}),
    ...(port !== undefined ? { masterPort: port } : {}),
  });
  if (p === null || p.worldSize === 1) return { group: null };
  const group = await initProcessGroup({
    backend,
    store: { tcp: `${p.masterAddr}:${p.masterPort}` },
    rank: p.rank,
    worldSize: p.worldSize,
    timeoutMs: timeoutS === undefined ? DEFAULT_TIMEOUT_MS : timeoutS * 1000,
  });
  return { group };
}
