import { getLogger } from "@logtape/logtape";
import type { Net } from "../net/mod.ts";
import type { Backend, BackendPool } from "./backend.ts";
import { type HealthChange, HealthState, type HealthThresholds, nextCheckMs } from "./health.ts";

const log = getLogger(["l4chat", "lb", "health"]);

/** Settings of the active health checks. */
export interface HealthOptions extends HealthThresholds {
  /** Time between two checks of one backend, in ms. */
  intervalMs: number;
  /** How long one check's TCP connect may take, in ms. */
  timeoutMs: number;
}

/** The original's start-up and recovery line for a backend. */
export function formatOperating(backend: Backend): string {
  return `server ip :${backend.addr.hostname} port : ${backend.addr.port} operating`;
}

/**
 * Checks every backend with a TCP connect every `intervalMs` (a fixed cadence, see
 * {@linkcode nextCheckMs}) and feeds the results, and the proxy's connect failures (passive
 * checks), into one {@linkcode HealthState} per backend.
 * Only transitions are logged. Backends in `maint` are not checked.
 */
export class HealthMonitor {
  readonly #net: Net;
  readonly #pool: BackendPool;
  readonly #options: () => HealthOptions;
  readonly #states = new Map<number, HealthState>();
  readonly #timers = new Map<number, ReturnType<typeof setTimeout>>();
  #stopped = false;
  /** Called on every health transition (for events and metrics). */
  onChange?: (backend: Backend, change: HealthChange) => void;
  /** Called with the result of every active check (not the proxy's connects), for metrics. */
  onCheck?: (backend: Backend, ok: boolean) => void;

  /** `options` is read at every check, so a reload takes effect without a restart. */
  constructor(net: Net, pool: BackendPool, options: () => HealthOptions) {
    this.#net = net;
    this.#pool = pool;
    this.#options = options;
  }

  /** The health state of `backend`. */
  state(backend: Backend): HealthState {
    let state = this.#states.get(backend.id);
    if (state === undefined) {
      state = new HealthState(this.#options());
      this.#states.set(backend.id, state);
    }
    return state;
  }

  /** Starts checking every backend of the pool. */
  start(): void {
    this.sync();
  }

  /** Starts checking backends added to the pool since, and stops checking removed ones. */
  sync(): void {
    const present = new Set(this.#pool.all().map((backend) => backend.id));
    for (const [id, timer] of this.#timers) {
      if (present.has(id)) continue;
      clearTimeout(timer);
      this.#timers.delete(id);
      this.#states.delete(id);
    }
    for (const backend of this.#pool.all()) {
      if (!this.#timers.has(backend.id)) this.#schedule(backend, 0);
    }
  }

  /** Stops all checks. */
  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  /** A proxied connect to `backend` failed: counts toward `fall` like a failed check. */
  connectFailed(backend: Backend): void {
    this.#record(backend, false, "connect failed");
  }

  /** A proxied connect to `backend` succeeded. */
  connected(backend: Backend): void {
    this.#record(backend, true, "connected");
  }

  #schedule(backend: Backend, delayMs: number): void {
    if (this.#stopped || this.#pool.get(backend.id) === undefined) {
      this.#timers.delete(backend.id);
      return;
    }
    const timer = setTimeout(() => this.#probe(backend), delayMs);
    this.#timers.set(backend.id, timer);
  }

  async #probe(backend: Backend): Promise<void> {
    const startedMs = Date.now();
    if (backend.state !== "maint") {
      try {
        const timeoutMs = this.#options().timeoutMs;
        const conn = await this.#net.connect(backend.addr, { timeoutMs });
        conn.close();
        if (!this.#stopped) this.onCheck?.(backend, true);
        this.#record(backend, true, "check passed");
      } catch (err) {
        if (!this.#stopped) this.onCheck?.(backend, false);
        this.#record(backend, false, (err as Error).message);
      }
    }
    // A fixed cadence, not `intervalMs` after each check ends: a backend whose checks time
    // out would otherwise take fall * (interval + timeout) to be marked down.
    const nowMs = Date.now();
    this.#schedule(backend, nextCheckMs(startedMs, nowMs, this.#options().intervalMs) - nowMs);
  }

  #record(backend: Backend, ok: boolean, reason: string): void {
    if (this.#stopped) return;
    const now = Date.now();
    const state = this.state(backend);
    // A result that agrees with the state needs no thresholds (every proxied connect).
    if (ok !== state.alive) state.thresholds = this.#options();
    const change: HealthChange | undefined = state.observe(ok, now);
    if (change === undefined) return;
    this.#pool.setAlive(backend, change === "up", now);
    this.onChange?.(backend, change);
    if (change === "up") {
      log.info(formatOperating(backend), { backendId: backend.id, health: "up" });
    } else {
      log.warn(
        `server ip :${backend.addr.hostname} port : ${backend.addr.port} dead ({reason})`,
        { reason, backendId: backend.id, health: "down" },
      );
    }
  }
}
