/**
 * The layer-4 load balancer: accepts TCP clients, gives each a backend, relays bytes both
 * ways and keeps the NAT table, while health checks steer new clients away from dead
 * backends.
 *
 * @example
 * ```ts ignore
 * import { loadNet } from "../net/mod.ts";
 * import { runLb } from "./mod.ts";
 * const lb = await runLb(await loadNet(), {
 *   listen: { hostname: "127.0.0.1", port: 20000 },
 *   backends: [{ addr: { hostname: "127.0.0.1", port: 10010 } }],
 *   balance: "round-robin",
 *   connectTimeoutMs: 2000,
 *   connectTries: 3,
 *   health: { intervalMs: 5000, timeoutMs: 2000, fall: 3, rise: 1 },
 *   graceMs: 30000,
 * });
 * await lb.stop();
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Addr, formatAddr, type Net } from "../net/mod.ts";
import { type BackendConfig, BackendPool } from "./backend.ts";
import { createBalancer } from "./balancers/mod.ts";
import { formatOperating, HealthMonitor, type HealthOptions } from "./health_probe.ts";
import { NatTable } from "./nat_table.ts";
import { Proxy, type ProxyOptions } from "./proxy.ts";

const log = getLogger(["l4chat", "lb"]);

/** Settings of {@linkcode runLb}; the command line fills them in. */
export interface LbOptions extends ProxyOptions {
  /** Address to listen on; port 0 picks a free port. */
  listen: Addr;
  /** The backends, in order. */
  backends: BackendConfig[];
  /** A `--balance` name. */
  balance: string;
  /** Active health checks. */
  health: HealthOptions;
  /** How long a graceful stop lets connections finish before closing them, in ms. */
  graceMs: number;
}

/** A running load balancer. */
export interface LoadBalancer {
  /** The address actually bound. */
  readonly addr: Addr;
  /** The backends and their state. */
  readonly pool: BackendPool;
  /** The live NAT table. */
  readonly nat: NatTable;
  /**
   * Stops accepting, lets connections finish for up to `graceMs`, then closes the rest.
   * Resolves when every connection is gone.
   */
  stop(): Promise<void>;
  /** Closes every connection now (a second signal). */
  stopNow(): void;
  /** Resolves once the load balancer has stopped. */
  readonly done: Promise<void>;
}

/** Starts a load balancer; resolves once it is listening. */
export async function runLb(net: Net, options: LbOptions): Promise<LoadBalancer> {
  const balancer = createBalancer(options.balance);
  const pool = new BackendPool(options.backends);
  const nat = new NatTable();
  const health = new HealthMonitor(net, pool, options.health);
  const proxy = new Proxy({ net, pool, balancer, nat, health, options });
  const listener = await net.listen(options.listen);

  for (const backend of pool.all()) log.info(formatOperating(backend), { backendId: backend.id });
  log.info("load balancer listening on {addr} ({balance}, {backends} servers)", {
    addr: formatAddr(listener.addr),
    balance: options.balance,
    backends: pool.all().length,
  });
  health.start();

  const accepting = (async () => {
    for await (const client of listener) proxy.handle(client);
  })();

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      listener.close();
      await accepting;
      health.stop();
      if (proxy.active > 0) {
        log.info("waiting up to {graceMs} ms for {active} connections to finish", {
          graceMs: options.graceMs,
          active: proxy.active,
        });
        let timer: ReturnType<typeof setTimeout> | undefined;
        const graceOver = new Promise<boolean>((resolve) =>
          timer = setTimeout(() => resolve(true), options.graceMs)
        );
        if (await Promise.race([proxy.idle().then(() => false), graceOver])) {
          log.warn("grace period over: closing {active} connections", { active: proxy.active });
          proxy.closeAll();
          await proxy.idle();
        }
        clearTimeout(timer);
      }
      log.info("load balancer stopped");
      resolveDone();
    })();
    return stopping;
  };

  return {
    addr: listener.addr,
    pool,
    nat,
    stop,
    stopNow: () => proxy.closeAll(),
    done,
  };
}
