import { type Addr, formatAddr } from "../net/mod.ts";

/** The administrative state of a backend. */
export type BackendState = "ready" | "drain" | "maint";

/** One backend server and what the load balancer knows of it. Owned by {@linkcode BackendPool}. */
export interface Backend {
  /** Stable id, never reused; backends are numbered in the order they were added, from 1. */
  readonly id: number;
  /** Where to connect: an IP address when the configured name was resolved. */
  readonly addr: Addr;
  /** The address as configured (`host:port`): several backends share it when a name resolves to several addresses. */
  readonly name: string;
  /** Relative share of new connections for the weighted algorithms (1 and up). */
  weight: number;
  /** `ready` takes new connections; `drain` and `maint` do not. */
  state: BackendState;
  /** Connections at once; 0 is no limit. */
  maxConn: number;
  /** PROXY header version sent to this backend, if any (overrides the global setting). */
  sendProxy?: 1 | 2;
  /** Health: false once health checks (or connect failures) have marked it dead. */
  alive: boolean;
  /** When it last came back to life or was added (ms), for slow start; undefined if never. */
  upSinceMs?: number;
  /** Proxied connections open now. */
  active: number;
  /** Connects to it in flight now: the balancers and `maxConn` count them with `active`. */
  connecting: number;
  /** Proxied connections opened since start. */
  total: number;
  /** Failed connects since start (health probes not included). */
  connectFailures: number;
  /** Bytes relayed from clients to this backend by connections already closed. */
  bytesUp: number;
  /** Bytes relayed from this backend to clients by connections already closed. */
  bytesDown: number;
  /** Set once it is to be removed: it takes no new connections and goes when empty. */
  removing: boolean;
  /**
   * With `lb --workers`: the load every worker puts on this backend, which {@linkcode load}
   * reads instead of this worker's own `active + connecting`.
   */
  shared?: SharedLoad;
}

/** The load of one backend across the workers of a load balancer. */
export interface SharedLoad {
  /** Connections open plus connects in flight, every worker's. */
  load(): number;
  /** Adds `delta` to it. */
  add(delta: number): void;
}

/** How a backend is configured. */
export interface BackendConfig {
  addr: Addr;
  weight?: number;
  state?: BackendState;
  /** Connections at once; 0 or absent is no limit. */
  maxConn?: number;
  sendProxy?: 1 | 2;
}

/** What {@linkcode BackendPool.candidates} takes into account besides health and state. */
export interface CandidateOptions {
  /** Backends already tried for this connection. */
  exclude?: ReadonlySet<number>;
  /** Now, in ms; needed for slow start. */
  nowMs?: number;
  /** Slow-start ramp, in ms; 0 or absent is off. */
  slowstartMs?: number;
  /** A number in [0, 1); slow start skips a ramping backend when it is above the ramp. */
  random?: number;
}

/**
 * A new backend numbered `id`, as `config` describes it: alive, idle, nothing counted yet.
 * `options.name` is the address as configured (`config.addr` by default); `upSinceMs` is when
 * it came up, for slow start. {@linkcode BackendPool.add} numbers the backends it makes; tests
 * make their own with this, so that every field has its default in one place.
 */
export function createBackend(
  id: number,
  config: BackendConfig,
  options: { name?: string; upSinceMs?: number } = {},
): Backend {
  return {
    id,
    addr: config.addr,
    name: options.name ?? formatAddr(config.addr),
    weight: config.weight ?? 1,
    state: config.state ?? "ready",
    maxConn: config.maxConn ?? 0,
    sendProxy: config.sendProxy,
    alive: true,
    upSinceMs: options.upSinceMs,
    active: 0,
    connecting: 0,
    total: 0,
    connectFailures: 0,
    bytesUp: 0,
    bytesDown: 0,
    removing: false,
  };
}

/**
 * The backends of one load balancer. The only owner of backend state: health probes, the
 * proxy, config reloads and the admin endpoint change it through these methods.
 */
export class BackendPool {
  #backends: Backend[] = [];
  #nextId = 1;

  constructor(configs: readonly BackendConfig[] = []) {
    for (const config of configs) this.add(config, formatAddr(config.addr));
  }

  /** Every backend, in the order added. */
  all(): readonly Backend[] {
    return this.#backends;
  }

  /** The backend with `id`, if any. */
  get(id: number): Backend | undefined {
    return this.#backends.find((backend) => backend.id === id);
  }

  /** Adds `backend`, numbered elsewhere (a worker's copy of the main thread's backend). */
  adopt(backend: Backend): void {
    this.#backends.push(backend);
    this.#nextId = Math.max(this.#nextId, backend.id + 1);
  }

  /** Adds a backend connecting to `config.addr`, configured as `name`; returns it. */
  add(config: BackendConfig, name = formatAddr(config.addr), nowMs?: number): Backend {
    const backend = createBackend(this.#nextId++, config, { name, upSinceMs: nowMs });
    this.#backends.push(backend);
    return backend;
  }

  /**
   * Applies `config` to an existing backend: the fields it has (weight, state, maxconn, PROXY
   * version; `sendProxy: undefined` turns the header off); absent ones are left as they are.
   * A backend being removed stays so.
   */
  update(backend: Backend, config: Omit<BackendConfig, "addr">): void {
    if (config.weight !== undefined) backend.weight = config.weight;
    if (config.state !== undefined) backend.state = config.state;
    if (config.maxConn !== undefined) backend.maxConn = config.maxConn;
    // Only when given: setting a weight alone must not turn the PROXY header off.
    if ("sendProxy" in config) backend.sendProxy = config.sendProxy;
  }

  /**
   * Marks `backend` for removal: it takes no new connections, and is dropped from the pool
   * once its last connection closes (at once if it has none). Returns true if it is gone now.
   */
  remove(backend: Backend): boolean {
    backend.removing = true;
    if (backend.state === "ready") backend.state = "drain";
    return this.#dropIfDone(backend);
  }

  /**
   * The backends that may take a new connection, in the order added: alive, `ready`, not
   * being removed, under their `maxConn`, not in `exclude`, and past the slow-start draw (a
   * ramping backend is kept when `random` is below its {@linkcode rampFraction}; if the draw
   * would leave none, every open backend is kept).
   */
  candidates(options: CandidateOptions = {}): Backend[] {
    const { exclude, nowMs, slowstartMs, random } = options;
    const open = this.#backends.filter((backend) => {
      if (!backend.alive || backend.state !== "ready" || backend.removing) return false;
      if (backend.maxConn > 0 && load(backend) >= backend.maxConn) return false;
      return !exclude?.has(backend.id);
    });
    if (!slowstartMs || nowMs === undefined || random === undefined) return open;
    const drawn = open.filter((backend) => random < rampFraction(backend, nowMs, slowstartMs));
    // Slow start shifts load between backends; it never turns a client away. When every
    // open backend is ramping and the draw skipped them all, they all stay candidates.
    return drawn.length > 0 ? drawn : open;
  }

  /** Sets the health of `backend` at `nowMs`; returns true when that changed it. */
  setAlive(backend: Backend, alive: boolean, nowMs?: number): boolean {
    if (backend.alive === alive) return false;
    backend.alive = alive;
    if (alive) backend.upSinceMs = nowMs;
    return true;
  }

  /** Counts a connect to `backend` starting; `connectEnded` follows, whatever the outcome. */
  connectStarted(backend: Backend): void {
    backend.connecting++;
    backend.shared?.add(1);
  }

  /** Counts a connect to `backend` finished (before `opened`, if it succeeded). */
  connectEnded(backend: Backend): void {
    backend.connecting--;
    backend.shared?.add(-1);
  }

  /** Counts a proxied connection opened to `backend`. */
  opened(backend: Backend): void {
    backend.active++;
    backend.total++;
    backend.shared?.add(1);
  }

  /**
   * Counts a proxied connection to `backend` closed, once per `opened`, with the bytes it
   * relayed. A backend being removed leaves the pool with its last connection.
   */
  closed(backend: Backend, bytesUp = 0, bytesDown = 0): void {
    backend.active--;
    backend.shared?.add(-1);
    backend.bytesUp += bytesUp;
    backend.bytesDown += bytesDown;
    if (backend.removing) this.#dropIfDone(backend);
  }

  /** Counts a failed connect to `backend`. */
  connectFailed(backend: Backend): void {
    backend.connectFailures++;
  }

  #dropIfDone(backend: Backend): boolean {
    if (backend.active > 0) return false;
    const index = this.#backends.indexOf(backend);
    if (index !== -1) this.#backends.splice(index, 1);
    return true;
  }
}

/**
 * Connections open to `backend` plus connects in flight, every worker's with `lb --workers`:
 * what the balancers compare.
 */
export function load(backend: Backend): number {
  return backend.shared?.load() ?? backend.active + backend.connecting;
}

/**
 * How far `backend` is through its slow start at `nowMs`, from just above 0 to 1: the share
 * of new connections it should take relative to a backend at full strength.
 */
export function rampFraction(backend: Backend, nowMs: number, slowstartMs: number): number {
  if (backend.upSinceMs === undefined || slowstartMs <= 0) return 1;
  const elapsed = nowMs - backend.upSinceMs;
  if (elapsed >= slowstartMs) return 1;
  return Math.max(0.05, elapsed / slowstartMs);
}

/** A configured backend after name resolution: one entry per address the name has. */
export interface ResolvedBackend {
  /** The address as configured (`host:port`). */
  name: string;
  config: BackendConfig;
}

/** What {@linkcode reconcile} changed. */
export interface ReconcileResult {
  added: Backend[];
  updated: Backend[];
  /** Marked for removal (drained first if they have connections). */
  removed: Backend[];
}

/**
 * Brings `pool` in line with `wanted` (a reload): backends not wanted any more are removed
 * (drained first), wanted ones that exist are updated in place, keeping their connections,
 * counters and health, and new ones are added at `nowMs` (so slow start applies to them;
 * pass undefined for the first load, when no backend should ramp). A backend is the same
 * across reloads when its name and address are; settings a backend no longer has in
 * `wanted` go back to their defaults (weight 1, state ready, no maxconn, no PROXY header).
 */
export function reconcile(
  pool: BackendPool,
  wanted: readonly ResolvedBackend[],
  nowMs: number | undefined,
): ReconcileResult {
  const key = (name: string, addr: Addr) => `${name}|${formatAddr(addr)}`;
  const existing = new Map<string, Backend>();
  for (const backend of pool.all()) existing.set(key(backend.name, backend.addr), backend);
  const result: ReconcileResult = { added: [], updated: [], removed: [] };
  const kept = new Set<Backend>();
  for (const { name, config } of wanted) {
    const backend = existing.get(key(name, config.addr));
    if (backend === undefined) {
      const added = pool.add(config, name, nowMs);
      existing.set(key(name, config.addr), added);
      kept.add(added);
      result.added.push(added);
      continue;
    }
    if (kept.has(backend)) continue; // the same name and address twice
    backend.removing = false;
    pool.update(backend, {
      weight: config.weight ?? 1,
      state: config.state ?? "ready",
      maxConn: config.maxConn ?? 0,
      sendProxy: config.sendProxy,
    });
    kept.add(backend);
    result.updated.push(backend);
  }
  for (const backend of [...pool.all()]) {
    if (kept.has(backend) || backend.removing) continue;
    pool.remove(backend);
    result.removed.push(backend);
  }
  return result;
}

/**
 * What a worker of `lb --workers` needs to know of a backend, sent by the main thread, which
 * owns backend state (config, health, drain): everything but the counters.
 */
export type BackendSnapshot = Pick<
  Backend,
  | "id"
  | "addr"
  | "name"
  | "weight"
  | "state"
  | "maxConn"
  | "sendProxy"
  | "alive"
  | "upSinceMs"
  | "removing"
>;

/** The snapshot of `backend`. */
export function snapshotOf(backend: Backend): BackendSnapshot {
  const { id, addr, name, weight, state, maxConn, sendProxy, alive, upSinceMs, removing } = backend;
  return { id, addr, name, weight, state, maxConn, sendProxy, alive, upSinceMs, removing };
}

/**
 * Brings a worker's copy of the backends in line with the main thread's `snapshots`: new
 * ones are added (`share` gives each its shared load), known ones take the snapshot's
 * settings and health, and those no longer sent are removed (drained first). Returns the
 * backends added.
 */
export function applySnapshots(
  pool: BackendPool,
  snapshots: readonly BackendSnapshot[],
  share: (backend: Backend) => SharedLoad | undefined,
): Backend[] {
  const added: Backend[] = [];
  const sent = new Set<number>();
  for (const snapshot of snapshots) {
    sent.add(snapshot.id);
    let backend = pool.get(snapshot.id);
    if (backend === undefined) {
      backend = createBackend(snapshot.id, { addr: snapshot.addr }, { name: snapshot.name });
      backend.shared = share(backend);
      pool.adopt(backend);
      added.push(backend);
    }
    Object.assign(backend, snapshot);
    if (snapshot.removing) pool.remove(backend);
  }
  for (const backend of [...pool.all()]) {
    if (!sent.has(backend.id) && !backend.removing) pool.remove(backend);
  }
  return added;
}
