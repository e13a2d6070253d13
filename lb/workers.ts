/**
 * `lb --workers N`: N threads (Web Workers, `worker.ts`) proxy, each on its own listener on
 * the same port (`SO_REUSEPORT`: the kernel spreads new connections over them), while the
 * main thread keeps what there is one of: the backends and their health checks, the config
 * and its reloads, and the admin endpoint. What the admin endpoint sees is one load
 * balancer: the workers report every NAT row opened and closed (in batches, and the byte
 * counters of live rows every second) into one table here, and every count that a limit or
 * a balancer reads is shared memory ({@linkcode SharedCounts}).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { LogFormat, LogLevelName } from "../cli/log.ts";
import { type Addr, formatAddr, type IoMode, type Net } from "../net/mod.ts";
import {
  type Backend,
  BackendPool,
  type BackendSnapshot,
  reconcile,
  type ReconcileResult,
  snapshotOf,
} from "./backend.ts";
import type { LbConfig } from "./config.ts";
import { formatOperating, type HealthMonitor } from "./health_probe.ts";
import {
  type LbHooks,
  type LoadBalancer,
  logReload,
  resolveBackends,
  startHealth,
  warnRestartNeeded,
} from "./mod.ts";
import { type NatRow, NatTable } from "./nat_table.ts";
import type { RefusalReason } from "./proxy.ts";
import { SharedCounts } from "./shared_counts.ts";

const log = getLogger(["l4chat", "lb"]);

/** Backend slots in shared memory: far more than a config may hold at once. */
const BACKEND_SLOTS = 4096;
/** Client IPs the shared `--max-conns-per-ip` table holds at least, and at most. */
const IP_SLOTS_MIN = 1024;
const IP_SLOTS_MAX = 1 << 20;
/** How long a worker may take to start listening, in ms. */
const START_TIMEOUT_MS = 30_000;
/** How long the admin endpoint waits for the workers' latest counts, in ms. */
const SYNC_TIMEOUT_MS = 1000;

/** A backend as a worker gets it: its snapshot and its slot in shared memory. */
export type WorkerBackend = BackendSnapshot & { slot: number };

/** A NAT row event a worker reports. */
export type WorkerEvent =
  | { kind: "open"; row: NatRow; connectMs: number }
  | {
    kind: "close";
    id: number;
    backendId: number;
    bytesUp: number;
    bytesDown: number;
    reason: string;
  }
  | {
    kind: "bytes";
    id: number;
    bytesUp: number;
    bytesDown: number;
    upDone: boolean;
    downDone: boolean;
  }
  | { kind: "refused"; client: Addr; reason: RefusalReason }
  | { kind: "connect-failed"; backendId: number };

/** What the main thread tells a worker. */
export type ToWorker =
  | {
    type: "init";
    index: number;
    count: number;
    io: IoMode;
    logLevel: LogLevelName;
    logFormat: LogFormat;
    config: LbConfig;
    backends: WorkerBackend[];
    buffer: SharedArrayBuffer;
  }
  | { type: "update"; config: LbConfig; backends: WorkerBackend[] }
  | { type: "close"; id: number; reason: string }
  | { type: "close-all"; reason: string; spreadMs: number; backendId?: number }
  | { type: "sync"; seq: number }
  | { type: "stop" };

/** What a worker tells the main thread. */
export type FromWorker =
  | { type: "ready"; addr: Addr }
  | { type: "failed"; message: string }
  | { type: "health"; backendId: number; ok: boolean }
  | { type: "events"; events: WorkerEvent[] }
  | { type: "synced"; seq: number }
  | { type: "stopped" };

/** How the workers run, besides the config. */
export interface WorkersOptions {
  /** How many. */
  count: number;
  /** The URL of `worker.ts`, the module each worker runs. */
  moduleUrl: string;
  /** The sockets each loads (`--io`). */
  io: IoMode;
  logLevel: LogLevelName;
  logFormat: LogFormat;
}

/** A worker that could not start: `lb` says so in one line and exits. */
export class WorkerStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkerStartError";
  }
}

/** One worker thread, seen from the main thread. */
interface WorkerHandle {
  worker: Worker;
  /** Resolves when it says it has stopped (or has failed). */
  stopped: Promise<void>;
}

/**
 * Starts a load balancer whose data path runs in `options.count` workers; resolves once
 * every one of them is listening. Rejects (with the workers stopped) if one cannot start.
 */
export async function runWorkers(
  net: Net,
  config: LbConfig,
  hooks: LbHooks,
  options: WorkersOptions,
): Promise<LoadBalancer> {
  const pool = new BackendPool();
  reconcile(pool, await resolveBackends(net, config.backends), undefined);
  const nat = new NatTable();
  let current = config;
  const ipSlots = config.maxConns === 0
    ? 65_536
    : Math.min(IP_SLOTS_MAX, Math.max(IP_SLOTS_MIN, 2 * config.maxConns));
  const shared = SharedCounts.create({ backendSlots: BACKEND_SLOTS, ipSlots });

  // Backend slots in shared memory: given when a backend is added, freed when it leaves.
  const slots = new Map<number, number>();
  const freeSlots = Array.from({ length: BACKEND_SLOTS }, (_, i) => BACKEND_SLOTS - 1 - i);
  const slotOf = (backend: Backend): number => {
    let slot = slots.get(backend.id);
    if (slot === undefined) {
      slot = freeSlots.pop();
      if (slot === undefined) throw new RangeError(`more than ${BACKEND_SLOTS} backends`);
      shared.resetSlot(slot);
      slots.set(backend.id, slot);
    }
    return slot;
  };
  const backendsForWorkers = (): WorkerBackend[] => {
    for (const [id, slot] of slots) {
      if (pool.get(id) === undefined) {
        slots.delete(id);
        freeSlots.push(slot);
      }
    }
    return pool.all().map((backend) => ({ ...snapshotOf(backend), slot: slotOf(backend) }));
  };

  const handles: WorkerHandle[] = [];
  const broadcast = (message: ToWorker) => {
    for (const handle of handles) handle.worker.postMessage(message);
  };
  const sendBackends = () =>
    broadcast({ type: "update", config: current, backends: backendsForWorkers() });

  const health: HealthMonitor = startHealth(net, pool, () => current, {
    ...hooks,
    health: (backend, change) => {
      hooks.health?.(backend, change);
      sendBackends();
    },
    checked: (backend, ok) => {
      hooks.checked?.(backend, ok);
      noteHealth(backend);
    },
  });
  /** Tells the workers whether a success of theirs would reset a failure streak. */
  const noteHealth = (backend: Backend) => {
    const slot = slots.get(backend.id);
    if (slot !== undefined) shared.setFailing(slot, health.state(backend).lastOk === false);
  };

  const onEvents = (events: WorkerEvent[]) => {
    for (const event of events) {
      if (event.kind === "open") {
        const backend = pool.get(event.row.backendId);
        nat.adopt(event.row);
        if (backend === undefined) continue;
        pool.opened(backend);
        hooks.opened?.(event.row, backend, event.connectMs);
      } else if (event.kind === "close") {
        const row = nat.get(event.id);
        const backend = pool.get(event.backendId);
        if (row !== undefined) {
          row.bytesUp = event.bytesUp;
          row.bytesDown = event.bytesDown;
          nat.remove(event.id);
        }
        if (backend === undefined) continue;
        pool.closed(backend, event.bytesUp, event.bytesDown);
        if (row !== undefined) hooks.closed?.(row, backend, event.reason);
        if (backend.removing && pool.get(backend.id) === undefined) {
          log.info("server {backend} drained: removed", {
            event: "removed",
            backend: formatAddr(backend.addr),
            backendId: backend.id,
          });
          sendBackends();
        }
      } else if (event.kind === "bytes") {
        const row = nat.get(event.id);
        if (row === undefined) continue;
        row.bytesUp = event.bytesUp;
        row.bytesDown = event.bytesDown;
        row.upDone = event.upDone;
        row.downDone = event.downDone;
      } else if (event.kind === "refused") {
        hooks.refused?.(event.client, event.reason);
      } else {
        const backend = pool.get(event.backendId);
        if (backend === undefined) continue;
        pool.connectFailed(backend);
        hooks.connectFailed?.(backend);
      }
    }
  };

  // Syncs in flight: each resolves when every worker has answered its sequence number.
  let syncSeq = 0;
  const syncWaiters = new Map<number, { left: number; resolve: () => void }>();
  const sync = (): Promise<void> => {
    const seq = ++syncSeq;
    const done = new Promise<void>((resolve) => {
      syncWaiters.set(seq, { left: handles.length, resolve });
    });
    broadcast({ type: "sync", seq });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, SYNC_TIMEOUT_MS));
    return Promise.race([done, timeout]).finally(() => {
      clearTimeout(timer);
      syncWaiters.delete(seq);
    });
  };

  const onMessage = (message: FromWorker) => {
    if (message.type === "synced") {
      const waiter = syncWaiters.get(message.seq);
      if (waiter !== undefined && --waiter.left === 0) waiter.resolve();
    } else if (message.type === "events") {
      onEvents(message.events);
    } else if (message.type === "health") {
      const backend = pool.get(message.backendId);
      if (backend === undefined) return;
      if (message.ok) health.connected(backend);
      else health.connectFailed(backend);
      noteHealth(backend);
    }
  };

  /** Starts worker `index`, listening on `listen`; resolves to its bound address. */
  const startWorker = (index: number, listen: Addr): Promise<Addr> => {
    const worker = new Worker(options.moduleUrl, {
      type: "module",
      name: `l4chat-lb-worker-${index + 1}`,
    });
    let ready!: (addr: Addr) => void;
    let failed!: (err: Error) => void;
    const started = new Promise<Addr>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    let stopped!: () => void;
    const handle: WorkerHandle = {
      worker,
      stopped: new Promise((resolve) => stopped = resolve),
    };
    handles.push(handle);
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "ready") ready(message.addr);
      else if (message.type === "failed") fail(message.message);
      else if (message.type === "stopped") stopped();
      else onMessage(message);
    };
    const fail = (reason: string) =>
      failed(new WorkerStartError(`Cannot start worker ${index + 1}: ${reason}`));
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      const reason = (event.message || "worker failed").replace(/^Uncaught \w*Error: /, "");
      fail(reason);
      log.error("worker {index} failed: {reason}", { index: index + 1, reason });
      stopped();
    };
    const timer = setTimeout(
      () => fail(`not listening after ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    worker.postMessage(
      {
        type: "init",
        index,
        count: options.count,
        io: options.io,
        logLevel: options.logLevel,
        logFormat: options.logFormat,
        config: { ...current, listen },
        backends: backendsForWorkers(),
        buffer: shared.buffer,
      } satisfies ToWorker,
    );
    return started.finally(() => clearTimeout(timer));
  };

  if (config.listen.port !== 0) {
    // Workers listen with SO_REUSEPORT, which lets them share the port with any process of
    // this user that does too (HAProxy, nginx, another l4chat): bind once without it first,
    // so that a port in use is refused as it is without workers.
    const probe = await net.listen(config.listen);
    probe.close();
  }
  let addr: Addr;
  try {
    // The first binds (port 0 picks a port); the others then bind the port it got.
    addr = await startWorker(0, config.listen);
    await Promise.all(
      Array.from({ length: options.count - 1 }, (_, i) => startWorker(i + 1, addr)),
    );
  } catch (err) {
    for (const handle of handles) handle.worker.terminate();
    throw err;
  }

  for (const backend of pool.all()) log.info(formatOperating(backend), { backendId: backend.id });
  log.info(
    "load balancer listening on {addr} ({balance}, servers: {backends}, workers: {workers})",
    {
      addr: formatAddr(addr),
      balance: config.balance,
      backends: pool.all().length,
      workers: options.count,
    },
  );
  health.start();

  const reload = async (next: LbConfig): Promise<ReconcileResult> => {
    warnRestartNeeded(current, next);
    const resolved = await resolveBackends(net, next.backends);
    current = { ...next, listen: current.listen, workers: current.workers };
    const result = reconcile(pool, resolved, Date.now());
    health.sync();
    sendBackends();
    logReload(result, pool.all().length);
    hooks.reloaded?.(result);
    return result;
  };

  const workerOf = (id: number) => handles[(id - 1) % handles.length];

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      health.stop();
      broadcast({ type: "stop" });
      await Promise.all(handles.map((handle) => handle.stopped));
      for (const handle of handles) handle.worker.terminate();
      log.info("load balancer stopped");
      resolveDone();
    })();
    return stopping;
  };

  return {
    addr,
    pool,
    nat,
    get config() {
      return current;
    },
    reload,
    sync,
    closeConnection: (id, reason = "closed by admin") => {
      if (nat.get(id) === undefined) return false;
      workerOf(id).worker.postMessage({ type: "close", id, reason } satisfies ToWorker);
      return true;
    },
    closeBackendConnections: (id, reason, spreadMs = 0) => {
      broadcast({ type: "close-all", reason, spreadMs, backendId: id });
      return [...nat.rows()].filter((row) => row.backendId === id).length;
    },
    stop,
    done,
  };
}
