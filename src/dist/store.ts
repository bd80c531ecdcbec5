// c10d key-value stores, the rendezvous of a process group: TCPStore (one rank serves, the
// others connect), FileStore (a file every rank can open) and PrefixStore (a namespace in
// another store). They are LibTorch's own classes, so a PyTorch process can share them.
import { nativeDist, type StoreHandle } from "./binding.js";

/** PyTorch's default store and process-group timeout (torch.distributed.default_pg_timeout). */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

export interface TcpStoreOptions {
  host: string;
  port: number;
  /** This process serves the store (PyTorch: rank 0). */
  isServer: boolean;
  /** How many processes connect, the server included; the server waits for all of them. */
  worldSize?: number;
  /** Wait until worldSize processes have connected (default true, as PyTorch). */
  waitWorkers?: boolean;
  /** Connecting and every store operation (default 30 min). */
  timeoutMs?: number;
}

export class Store {
  #handle: StoreHandle | null;
  /** For messages: "tcp store 127.0.0.1:29500" and the like. */
  readonly description: string;

  private constructor(handle: StoreHandle, description: string) {
    this.#handle = handle;
    this.description = description;
  }

  /** Connects to (or, with isServer, starts) a TCPStore; resolves once every worker has connected. */
  static async tcp(o: TcpStoreOptions): Promise<Store> {
    checkPort(o.port);
    if (o.host === "") throw new TypeError("dist.Store.tcp: host must not be empty");
    const h = await nativeDist().storeTcp(
      o.host,
      o.port,
      o.isServer,
      o.worldSize ?? null,
      o.waitWorkers ?? true,
      o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      // As PyTorch's _create_c10d_store: other groups in this process may share the server.
      true,
    );
    return new Store(h, `tcp store ${o.host}:${o.port}`);
  }

  /** A FileStore on `path` shared by worldSize processes (the file is removed when all are done). */
  static async file(path: string, worldSize: number): Promise<Store> {
    if (path === "") throw new TypeError("dist.Store.file: path must not be empty");
    return new Store(await nativeDist().storeFile(path, worldSize), `file store ${path}`);
  }

  /** The same store with every key under `prefix/` (PyTorch's PrefixStore). */
  prefixed(prefix: string): Store {
    return new Store(nativeDist().storePrefix(this.handle, prefix), `${this.description} prefix ${prefix}`);
  }

  get handle(): StoreHandle {
    if (this.#handle === null) throw new Error(`${this.description}: used after dispose()`);
    return this.#handle;
  }

  set(key: string, value: Uint8Array | string): Promise<void> {
    return nativeDist().storeSet(this.handle, key, typeof value === "string" ? new TextEncoder().encode(value) : value);
  }

  /** The value of key, waiting for it up to the store's timeout. */
  get(key: string): Promise<Uint8Array> {
    return nativeDist().storeGet(this.handle, key);
  }

  /** Adds to an integer key (created at 0) and returns the new value. */
  add(key: string, amount: number): Promise<number> {
    if (!Number.isSafeInteger(amount)) throw new TypeError(`${this.description}: add: amount must be an integer, got ${amount}`);
    return nativeDist().storeAdd(this.handle, key, amount);
  }

  wait(keys: readonly string[], timeoutMs: number): Promise<void> {
    return nativeDist().storeWait(this.handle, [...keys], timeoutMs);
  }

  setTimeout(timeoutMs: number): void {
    nativeDist().storeSetTimeout(this.handle, timeoutMs);
  }

  /** Drops this reference; a TCPStore server stops once nothing uses it any more. */
  dispose(): void {
    if (this.#handle === null) return;
    nativeDist().storeDispose(this.#handle);
    this.#handle = null;
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`dist: port must be an integer in [0, 65535], got ${port}`);
}
