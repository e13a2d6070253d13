import { type Addr, formatAddr } from "../net/mod.ts";
import type { Backend, BackendPool } from "./backend.ts";
import { EventHub, type EventHubOptions } from "./event_hub.ts";
import { LbMetrics } from "./metrics.ts";
import type { LbHooks } from "./mod.ts";
import type { NatRow } from "./nat_table.ts";
import { formatClient } from "./proxy.ts";

/** The last active health check of a backend. */
export interface LastCheck {
  /** When, in ms since the epoch. */
  atMs: number;
  ok: boolean;
}

/** A NAT row as the admin API shows it. */
export interface ConnectionView {
  id: number;
  /** `ip:port` of the client. */
  client: string;
  /** `ip:port` of the load balancer's side of the backend connection. */
  local: string;
  /** `ip:port` of the backend. */
  backend: string;
  backendId: number;
  openedAtMs: number;
  ageMs: number;
  /** Time since the byte counters were last seen to move, in ms. */
  idleMs: number;
  bytesUp: number;
  bytesDown: number;
  /** `open`, `client-done` (the client half-closed) or `backend-done`. */
  state: "open" | "client-done" | "backend-done";
}

/** A backend as events show it. */
export function backendSummary(backend: Backend): Record<string, unknown> {
  return {
    id: backend.id,
    address: formatAddr(backend.addr),
    name: backend.name,
    weight: backend.weight,
    state: backend.state,
    health: backend.alive ? "up" : "down",
    removing: backend.removing,
  };
}

/** The counters and state of a row that has just opened. */
const AS_OPENED = { bytesUp: 0, bytesDown: 0, upDone: false, downDone: false } as const;

/**
 * `row` as the admin API shows it at `nowMs`, with its `local` address: idle since
 * `idleSinceMs`, with the counters and state of `moved` (the row itself, or
 * {@linkcode AS_OPENED} for its open event).
 */
function viewOf(
  row: NatRow,
  local: Addr,
  nowMs: number,
  idleSinceMs: number,
  moved: Pick<NatRow, "bytesUp" | "bytesDown" | "upDone" | "downDone">,
): ConnectionView {
  return {
    id: row.id,
    client: formatAddr(row.client),
    local: formatAddr(local),
    backend: formatAddr(row.backend),
    backendId: row.backendId,
    openedAtMs: row.openedAtMs,
    ageMs: Math.max(0, nowMs - row.openedAtMs),
    idleMs: Math.max(0, nowMs - idleSinceMs),
    bytesUp: moved.bytesUp,
    bytesDown: moved.bytesDown,
    state: moved.upDone ? "client-done" : moved.downDone ? "backend-done" : "open",
  };
}

/**
 * Watches a running load balancer through its hooks, for the admin endpoint: counts
 * {@linkcode LbMetrics}, publishes events to an {@linkcode EventHub}, remembers each
 * backend's last health check and when each connection last moved bytes. Create it before
 * `runLb` and pass {@linkcode hooks} to it. `nowMs` is the clock (injectable for tests).
 */
export class LbMonitor {
  readonly metrics = new LbMetrics();
  readonly events: EventHub;
  readonly hooks: LbHooks;
  readonly #nowMs: () => number;
  readonly #lastChecks = new Map<number, LastCheck>();
  /** Per open row: the byte total last seen and when it was first seen. */
  readonly #activity = new Map<number, { bytes: number; sinceMs: number }>();
  /** Per backend id: what events last said of it, to report changes after a reload. */
  readonly #known = new Map<number, string>();

  constructor(options: EventHubOptions & { nowMs?: () => number } = {}) {
    this.events = new EventHub(options);
    this.#nowMs = options.nowMs ?? Date.now;
    this.hooks = {
      // The events of a connection are made when first needed (see EventData): what they
      // say is fixed now, and the row's counters no longer move once it is closed.
      opened: (row, backend, connectMs) => {
        this.metrics.opened(backend, connectMs);
        const nowMs = this.#nowMs();
        // Looked up now, while the socket is open: the event may be made after it closed.
        const local = row.local;
        this.events.publish(
          "open",
          () => viewOf(row, local, nowMs, row.openedAtMs, AS_OPENED),
          nowMs,
        );
      },
      closed: (row, backend, reason) => {
        const nowMs = this.#nowMs();
        const durationMs = nowMs - row.openedAtMs;
        this.metrics.closed(row, backend, durationMs);
        this.#activity.delete(row.id);
        this.events.publish("close", () => ({
          id: row.id,
          client: formatAddr(row.client),
          backend: formatAddr(row.backend),
          backendId: row.backendId,
          durationMs,
          bytesUp: row.bytesUp,
          bytesDown: row.bytesDown,
          reason,
        }), nowMs);
      },
      refused: (client, reason) => {
        this.metrics.refused(reason);
        this.#publish("refused", { client: formatClient(client), reason });
      },
      connectFailed: (backend) => {
        this.metrics.connectFailed(backend);
        this.#publish("connect-failed", backendSummary(backend));
      },
      checked: (backend, ok) => {
        this.metrics.checked(backend, ok);
        this.#lastChecks.set(backend.id, { atMs: this.#nowMs(), ok });
      },
      health: (backend, change) => {
        this.metrics.health(backend, change);
        this.#publish("health", { ...backendSummary(backend), health: change });
      },
      reloaded: (result) => {
        this.metrics.reloaded();
        this.#publish("reload", {
          added: result.added.map((b) => b.id),
          updated: result.updated.map((b) => b.id),
          removed: result.removed.map((b) => b.id),
        });
        for (const backend of result.added) this.#backendChanged(backend, "added");
        for (const backend of result.updated) this.#backendChanged(backend, "updated");
        for (const backend of result.removed) this.#backendChanged(backend, "removed");
      },
    };
  }

  /** Records what is known of the backends at start, so later changes can be told apart. */
  watch(pool: BackendPool): void {
    for (const backend of pool.all()) this.#known.set(backend.id, this.#fingerprint(backend));
  }

  /** The last active health check of backend `id`, if any yet. */
  lastCheck(id: number): LastCheck | undefined {
    return this.#lastChecks.get(id);
  }

  /** Publishes an event of `type` now (the admin's own actions, such as a drain deadline). */
  publish(type: string, data: Record<string, unknown>): void {
    this.#publish(type, data);
  }

  /** `row` as the admin API shows it, at the monitor's clock. */
  connection(row: NatRow): ConnectionView {
    const now = this.#nowMs();
    const bytes = row.bytesUp + row.bytesDown;
    let seen = this.#activity.get(row.id);
    if (seen === undefined && bytes === 0) {
      // Nothing moved since the open: idle since then, with nothing to remember yet (the
      // open event of every connection comes here).
      seen = { bytes, sinceMs: row.openedAtMs };
    } else if (seen === undefined || seen.bytes !== bytes) {
      // The counters moved since the last look.
      seen = { bytes, sinceMs: now };
      this.#activity.set(row.id, seen);
    }
    return viewOf(row, row.local, now, Math.max(seen.sinceMs, row.lastActiveMs), row);
  }

  #fingerprint(backend: Backend): string {
    return `${backend.state}|${backend.weight}|${backend.maxConn}|${backend.removing}`;
  }

  #backendChanged(backend: Backend, change: "added" | "updated" | "removed"): void {
    const fingerprint = this.#fingerprint(backend);
    if (change === "updated" && this.#known.get(backend.id) === fingerprint) return;
    this.#known.set(backend.id, fingerprint);
    this.#publish("backend", { ...backendSummary(backend), change });
  }

  #publish(type: string, data: Record<string, unknown>): void {
    this.events.publish(type, data, this.#nowMs());
  }
}
