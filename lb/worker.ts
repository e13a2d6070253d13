/**
 * One worker of `lb --workers N` (see `workers.ts`): a Web Worker that listens on the load
 * balancer's port with `SO_REUSEPORT` and proxies the clients the kernel gives it, with a
 * copy of the backends the main thread keeps up to date. It reports passive health results
 * and every NAT row opened and closed to the main thread, and takes its orders (update,
 * close, stop) from it.
 *
 * @module
 */
import { setupLogging } from "../cli/log.ts";
import { formatAddr, loadNet } from "../net/mod.ts";
import { applySnapshots, type Backend, BackendPool } from "./backend.ts";
import { createBalancer } from "./balancers/mod.ts";
import { IdMap } from "./id_map.ts";
import { type DataPath, startDataPath } from "./mod.ts";
import { copyRow, NatTable } from "./nat_table.ts";
import type { PassiveHealth, ProxyContext, ProxyEvents } from "./proxy.ts";
import { SharedCounts } from "./shared_counts.ts";
import type { FromWorker, ToWorker, WorkerBackend, WorkerEvent } from "./workers.ts";

/** How long events wait to be sent together, in ms. */
const BATCH_MS = 20;
/** How often the byte counters of live rows are sent, in ms. */
const BYTES_EVERY_MS = 1000;

const scope = globalThis as unknown as {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
};

function post(message: FromWorker): void {
  scope.postMessage(message);
}

/** The running worker, once `init` has been handled. */
interface Running {
  ctx: ProxyContext;
  dataPath: DataPath;
  slots: Map<number, number>;
  counts: SharedCounts;
  flush(): void;
  stopBytes(): void;
}

let running: Running | undefined;
/** Messages that came while `init` was still starting, handled once it has. */
const early: ToWorker[] = [];

async function init(message: Extract<ToWorker, { type: "init" }>): Promise<void> {
  setupLogging(message.logLevel, message.logFormat);
  const net = await loadNet({ io: message.io });
  const counts = new SharedCounts(message.buffer);
  const slots = new Map<number, number>();
  const pool = new BackendPool();

  let pending: WorkerEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    post({ type: "events", events: pending });
    pending = [];
  };
  const report = (event: WorkerEvent) => {
    pending.push(event);
    timer ??= setTimeout(flush, BATCH_MS);
  };

  const events: ProxyEvents = {
    opened: (row, _backend, connectMs) => report({ kind: "open", row: copyRow(row), connectMs }),
    closed: (row, backend, reason) =>
      report({
        kind: "close",
        id: row.id,
        backendId: backend.id,
        bytesUp: row.bytesUp,
        bytesDown: row.bytesDown,
        reason,
      }),
    refused: (client, reason) => report({ kind: "refused", client, reason }),
    connectFailed: (backend) => report({ kind: "connect-failed", backendId: backend.id }),
  };
  const health: PassiveHealth = {
    connectFailed: (backend) => post({ type: "health", backendId: backend.id, ok: false }),
    connected: (backend) => {
      // A success only matters to the main thread after a failure: it resets the streak.
      const slot = slots.get(backend.id);
      if (slot !== undefined && counts.failing(slot)) {
        post({ type: "health", backendId: backend.id, ok: true });
      }
    },
  };
  const nat = new NatTable({ firstId: message.index + 1, idStep: message.count });
  const ctx: ProxyContext = {
    net,
    pool,
    balancer: createBalancer(message.config.balance),
    nat,
    health,
    config: message.config,
    events,
    shared: counts,
  };
  applyBackends(pool, slots, counts, message.backends);

  let dataPath: DataPath;
  try {
    dataPath = await startDataPath(ctx, { reusePort: message.count > 1 });
  } catch (err) {
    post({
      type: "failed",
      message: `cannot listen on ${formatAddr(message.config.listen)}: ${(err as Error).message}`,
    });
    return;
  }

  // The byte counters of live rows, for the admin endpoint's table: only those that moved.
  // Made anew each time, of the live rows only: no entry per connection comes and goes.
  let reported = new IdMap<number>();
  const reportBytes = () => {
    const next = new IdMap<number>();
    for (const row of nat.rows()) {
      const bytes = row.bytesUp + row.bytesDown;
      next.set(row.id, bytes);
      if (reported.get(row.id) === bytes) continue;
      report({
        kind: "bytes",
        id: row.id,
        bytesUp: row.bytesUp,
        bytesDown: row.bytesDown,
        upDone: row.upDone,
        downDone: row.downDone,
      });
    }
    reported = next;
  };
  const bytesTimer = setInterval(reportBytes, BYTES_EVERY_MS);

  running = {
    ctx,
    dataPath,
    slots,
    counts,
    flush: () => {
      reportBytes();
      flush();
    },
    stopBytes: () => clearInterval(bytesTimer),
  };
  post({ type: "ready", addr: dataPath.addr });
  for (const queued of early.splice(0)) handle(queued);
}

/** Applies the main thread's backends to this worker's copy. */
function applyBackends(
  pool: BackendPool,
  slots: Map<number, number>,
  counts: SharedCounts,
  backends: readonly WorkerBackend[],
): void {
  for (const { id, slot } of backends) slots.set(id, slot);
  const snapshots = backends.map(({ slot: _slot, ...snapshot }) => snapshot);
  applySnapshots(pool, snapshots, (backend: Backend) => {
    const slot = slots.get(backend.id)!;
    return { load: () => counts.load(slot), add: (delta) => counts.addLoad(slot, delta) };
  });
  for (const id of [...slots.keys()]) if (pool.get(id) === undefined) slots.delete(id);
}

function handle(message: ToWorker): void {
  if (message.type === "init") {
    init(message).catch((err) => post({ type: "failed", message: (err as Error).message }));
    return;
  }
  if (running === undefined) {
    early.push(message);
    return;
  }
  const { ctx, dataPath } = running;
  switch (message.type) {
    case "update":
      if (message.config.balance !== ctx.config.balance) {
        ctx.balancer = createBalancer(message.config.balance);
      }
      ctx.config = { ...message.config, listen: ctx.config.listen };
      applyBackends(ctx.pool, running.slots, running.counts, message.backends);
      dataPath.resweep();
      break;
    case "close":
      dataPath.proxy.close(message.id, message.reason);
      break;
    case "close-all":
      dataPath.proxy.closeAll(message.reason, message.spreadMs, message.backendId);
      break;
    case "sync":
      running.flush();
      post({ type: "synced", seq: message.seq });
      break;
    case "stop": {
      const { flush, stopBytes } = running;
      dataPath.stop().then(() => {
        stopBytes();
        flush();
        post({ type: "stopped" });
      });
      break;
    }
  }
}

scope.onmessage = (event) => handle(event.data);
