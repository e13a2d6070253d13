/**
 * The layer-4 load balancer: accepts TCP clients, gives each a backend, relays bytes both
 * ways and keeps the NAT table, while health checks steer new clients away from dead
 * backends. Reloads apply a new config without dropping connections.
 *
 * @example
 * ```ts ignore
 * import { loadNet } from "../net/mod.ts";
 * import { defaultConfig } from "./config.ts";
 * import { runLb } from "./mod.ts";
 * const lb = await runLb(
 *   await loadNet(),
 *   defaultConfig({ hostname: "127.0.0.1", port: 20000 }, [
 *     { addr: { hostname: "127.0.0.1", port: 10010 } },
 *   ]),
 * );
 * await lb.stop();
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Addr, formatAddr, type ListenOptions, type Net } from "../net/mod.ts";
import { parseIp } from "../net/proxy_protocol.ts";
import {
  type Backend,
  type BackendConfig,
  BackendPool,
  reconcile,
  type ReconcileResult,
  type ResolvedBackend,
} from "./backend.ts";
import { createBalancer } from "./balancers/mod.ts";
import type { LbConfig } from "./config.ts";
import type { HealthChange } from "./health.ts";
import { formatOperating, HealthMonitor } from "./health_probe.ts";
import { NatTable, sweep } from "./nat_table.ts";
import { Proxy, type ProxyContext, type ProxyEvents } from "./proxy.ts";

const log = getLogger(["l4chat", "lb"]);

/** How long the last connections are spread over when they are closed by force, in ms. */
const CLOSE_SPREAD_MS = 1000;

/** Hooks a running load balancer reports to (the admin endpoint's events and metrics). */
export interface LbHooks extends ProxyEvents {
  /** A backend's health changed. */
  health?(backend: Backend, change: HealthChange): void;
  /** An active health check of a backend passed (`ok`) or failed. */
  checked?(backend: Backend, ok: boolean): void;
  /** A config was applied. */
  reloaded?(result: ReconcileResult): void;
}

/** A running load balancer. */
export interface LoadBalancer {
  /** The address actually bound. */
  readonly addr: Addr;
  /** The backends and their state. */
  readonly pool: BackendPool;
  /** The live NAT table. */
  readonly nat: NatTable;
  /** The config in force. */
  readonly config: LbConfig;
  /** Applies `config` in place: connections keep running, removed backends are drained. */
  reload(config: LbConfig): Promise<ReconcileResult>;
  /**
   * Brings {@linkcode nat} and the pool's counters up to date, where they are copies (the
   * workers of `lb --workers` report in batches); resolves at once otherwise.
   */
  sync?(): Promise<void>;
  /** Closes the connection of NAT row `id`; false if there is none. */
  closeConnection(id: number, reason?: string): boolean;
  /** Closes the connections of backend `id`, spread over `spreadMs`; returns how many. */
  closeBackendConnections(id: number, reason: string, spreadMs?: number): number;
  /**
   * Stops accepting, lets connections finish for up to `graceMs`, then closes the rest
   * spread over a second. Resolves when every connection is gone.
   */
  stop(): Promise<void>;
  /** Resolves once the load balancer has stopped. */
  readonly done: Promise<void>;
}

/** True when `hostname` is an IP literal (no resolution needed). */
function isIpLiteral(hostname: string): boolean {
  return parseIp(hostname) !== undefined;
}

/**
 * Resolves backend host names: a name with several addresses becomes one backend per
 * address (as nginx's `server` does), each with the configured weight and state. A name that
 * does not resolve is kept as it is, with a warning: each connect then tries to resolve it,
 * and health checks keep it dead until it does.
 */
export async function resolveBackends(
  net: Net,
  configs: readonly BackendConfig[],
): Promise<ResolvedBackend[]> {
  const out: ResolvedBackend[] = [];
  for (const config of configs) {
    const name = formatAddr(config.addr);
    if (isIpLiteral(config.addr.hostname)) {
      out.push({ name, config });
      continue;
    }
    try {
      const addresses = await net.resolve(config.addr.hostname);
      // Say what a name became, so that no address is used (or left out) silently.
      log.info(
        `server {name} resolves to {count} ${
          addresses.length === 1 ? "address" : "addresses"
        }: {addresses}${addresses.length === 1 ? "" : ", one backend each"}`,
        { name, count: addresses.length, addresses: addresses.join(", ") },
      );
      for (const hostname of addresses) {
        out.push({ name, config: { ...config, addr: { hostname, port: config.addr.port } } });
      }
    } catch (err) {
      log.warn("cannot resolve server {name}: {reason}; will retry at each connect", {
        name,
        reason: (err as Error).message,
      });
      out.push({ name, config });
    }
  }
  return out;
}

/** A running data path: the listener, the proxy, its sweeps and its graceful stop. */
export interface DataPath {
  /** The address actually bound. */
  readonly addr: Addr;
  readonly proxy: Proxy;
  /** Starts the idle-timeout and lifetime sweep again, after the config changed. */
  resweep(): void;
  /**
   * Stops accepting, lets connections finish for up to the config's grace period, then
   * closes the rest spread over a second. Resolves when every connection is gone.
   */
  stop(): Promise<void>;
}

/**
 * Listens on `ctx.config.listen` and proxies every client with `ctx`, as one load balancer
 * does, or as one worker of `lb --workers` does (with `reusePort`).
 */
export async function startDataPath(
  ctx: ProxyContext,
  options?: ListenOptions,
): Promise<DataPath> {
  const { net, nat } = ctx;
  const proxy = new Proxy(ctx);
  const listener = await net.listen(ctx.config.listen, options);

  // Idle timeout and maximum lifetime: a sweep compares byte counters between ticks, so the
  // relay never reads the clock per chunk.
  let sweeper: ReturnType<typeof setInterval> | undefined;
  const resweep = () => {
    clearInterval(sweeper);
    sweeper = undefined;
    const { idleTimeoutMs, maxLifetimeMs } = ctx.config;
    const shortest = Math.min(...[idleTimeoutMs, maxLifetimeMs].filter((ms) => ms > 0));
    if (!Number.isFinite(shortest)) return;
    const tickMs = Math.min(1000, Math.max(20, Math.floor(shortest / 4)));
    sweeper = setInterval(() => {
      for (const { row, reason } of sweep(nat.rows(), Date.now(), ctx.config)) {
        proxy.close(row.id, reason === "idle" ? "idle timeout" : "max lifetime");
      }
    }, tickMs);
  };
  resweep();

  const accepting = (async () => {
    for await (const client of listener) proxy.handle(client);
  })();

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      proxy.stopAccepting();
      listener.close();
      await accepting;
      clearInterval(sweeper);
      if (proxy.active === 0) return;
      const graceMs = ctx.config.graceMs;
      log.info("waiting up to {graceMs} ms for {active} connections to finish", {
        graceMs,
        active: proxy.active,
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const graceOver = new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(true), graceMs)
      );
      if (await Promise.race([proxy.idle().then(() => false), graceOver])) {
        log.warn("grace period over: closing {active} connections over {spreadMs} ms", {
          active: proxy.active,
          spreadMs: CLOSE_SPREAD_MS,
        });
        proxy.closeAll("grace period over", CLOSE_SPREAD_MS);
        await proxy.idle();
      }
      clearTimeout(timer);
    })();
    return stopping;
  };
  return { addr: listener.addr, proxy, resweep, stop };
}

/** Logs what a reload changed, as a load balancer and the main thread of workers both do. */
export function logReload(result: ReconcileResult, backends: number): void {
  for (const backend of result.added) {
    log.info(formatOperating(backend), { backendId: backend.id });
  }
  for (const backend of result.removed) {
    if (backend.active === 0) {
      log.info("server {backend} removed", { backend: formatAddr(backend.addr) });
    } else {
      log.info("server {backend} removed: draining {active} connections", {
        backend: formatAddr(backend.addr),
        active: backend.active,
      });
    }
  }
  log.info("config applied: {backends} servers ({added} added, {removed} removed)", {
    event: "reload",
    backends,
    added: result.added.length,
    removed: result.removed.length,
  });
}

/** Warns when a reload asks for what only a restart can change. */
export function warnRestartNeeded(current: LbConfig, next: LbConfig): void {
  if (formatAddr(next.listen) !== formatAddr(current.listen)) {
    log.warn("listen address change to {next} needs a restart; still on {current}", {
      next: formatAddr(next.listen),
      current: formatAddr(current.listen),
    });
  }
  if (next.workers !== current.workers) {
    log.warn("--workers change to {next} needs a restart; still {current}", {
      next: next.workers,
      current: current.workers,
    });
  }
}

/** Starts the health checks of `pool` with `config`'s settings, reporting to `hooks`. */
export function startHealth(
  net: Net,
  pool: BackendPool,
  config: () => LbConfig,
  hooks: LbHooks,
): HealthMonitor {
  const health = new HealthMonitor(net, pool, () => ({
    intervalMs: config().hcIntervalMs,
    timeoutMs: config().hcTimeoutMs,
    fall: config().hcFall,
    rise: config().hcRise,
  }));
  health.onChange = (backend, change) => hooks.health?.(backend, change);
  health.onCheck = (backend, ok) => hooks.checked?.(backend, ok);
  return health;
}

/** Starts a load balancer with `config`; resolves once it is listening. */
export async function runLb(
  net: Net,
  config: LbConfig,
  hooks: LbHooks = {},
): Promise<LoadBalancer> {
  const pool = new BackendPool();
  // No slow start for the backends a load balancer starts with: none has a share yet.
  reconcile(pool, await resolveBackends(net, config.backends), undefined);
  const nat = new NatTable();
  const ctx: ProxyContext = {
    net,
    pool,
    balancer: createBalancer(config.balance),
    nat,
    health: undefined as unknown as HealthMonitor,
    config,
    events: hooks,
  };
  const health = startHealth(net, pool, () => ctx.config, hooks);
  ctx.health = health;
  const dataPath = await startDataPath(ctx);
  const { proxy } = dataPath;

  for (const backend of pool.all()) log.info(formatOperating(backend), { backendId: backend.id });
  log.info("load balancer listening on {addr} ({balance}, servers: {backends})", {
    addr: formatAddr(dataPath.addr),
    balance: config.balance,
    backends: pool.all().length,
  });
  health.start();

  const reload = async (next: LbConfig): Promise<ReconcileResult> => {
    warnRestartNeeded(ctx.config, next);
    if (next.balance !== ctx.config.balance) ctx.balancer = createBalancer(next.balance);
    const resolved = await resolveBackends(net, next.backends);
    ctx.config = { ...next, listen: ctx.config.listen, workers: ctx.config.workers };
    const result = reconcile(pool, resolved, Date.now());
    health.sync();
    dataPath.resweep();
    logReload(result, pool.all().length);
    hooks.reloaded?.(result);
    return result;
  };

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const stopped = dataPath.stop();
      health.stop();
      await stopped;
      log.info("load balancer stopped");
      resolveDone();
    })();
    return stopping;
  };

  return {
    addr: dataPath.addr,
    pool,
    nat,
    get config() {
      return ctx.config;
    },
    reload,
    closeConnection: (id, reason) => proxy.close(id, reason),
    closeBackendConnections: (id, reason, spreadMs) => proxy.closeAll(reason, spreadMs, id),
    stop,
    done,
  };
}
