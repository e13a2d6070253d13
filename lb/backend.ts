import type { Addr } from "../net/mod.ts";

/** The administrative state of a backend. */
export type BackendState = "ready" | "drain" | "maint";

/** One backend server and what the load balancer knows of it. Owned by {@linkcode BackendPool}. */
export interface Backend {
  /** Stable id; backends are numbered in configuration order, from 1. */
  readonly id: number;
  /** Where to connect. */
  readonly addr: Addr;
  /** Relative share of new connections for the weighted algorithms (1 and up). */
  weight: number;
  /** `ready` takes new connections; `drain` and `maint` do not. */
  state: BackendState;
  /** Health: false once health checks (or connect failures) have marked it dead. */
  alive: boolean;
  /** Proxied connections open now. */
  active: number;
  /** Proxied connections opened since start. */
  total: number;
  /** Failed connects since start (health probes not included). */
  connectFailures: number;
}

/** How a backend is configured. */
export interface BackendConfig {
  addr: Addr;
  weight?: number;
  state?: BackendState;
}

/**
 * The backends of one load balancer. The only owner of backend state: health probes, the
 * proxy and (later) the admin endpoint change it through these methods.
 */
export class BackendPool {
  #backends: Backend[];

  constructor(configs: readonly BackendConfig[]) {
    this.#backends = configs.map((config, index) => ({
      id: index + 1,
      addr: config.addr,
      weight: config.weight ?? 1,
      state: config.state ?? "ready",
      alive: true,
      active: 0,
      total: 0,
      connectFailures: 0,
    }));
  }

  /** Every backend, in configuration order. */
  all(): readonly Backend[] {
    return this.#backends;
  }

  /** The backend with `id`, if any. */
  get(id: number): Backend | undefined {
    return this.#backends.find((backend) => backend.id === id);
  }

  /**
   * The backends that may take a new connection: alive, `ready`, and not in `exclude`
   * (those already tried for this connection). In configuration order.
   */
  candidates(exclude?: ReadonlySet<number>): Backend[] {
    return this.#backends.filter((backend) =>
      backend.alive && backend.state === "ready" && !exclude?.has(backend.id)
    );
  }

  /** Sets the health of `backend`; returns true when that changed it. */
  setAlive(backend: Backend, alive: boolean): boolean {
    if (backend.alive === alive) return false;
    backend.alive = alive;
    return true;
  }

  /** Counts a proxied connection opened to `backend`. */
  opened(backend: Backend): void {
    backend.active++;
    backend.total++;
  }

  /** Counts a proxied connection to `backend` closed; once per `opened`. */
  closed(backend: Backend): void {
    backend.active--;
  }

  /** Counts a failed connect to `backend`. */
  connectFailed(backend: Backend): void {
    backend.connectFailures++;
  }
}
