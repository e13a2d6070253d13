import { getLogger } from "@logtape/logtape";
import { type Addr, type Conn, formatAddr, type Net, type RelayOptions } from "../net/mod.ts";
import { encodeProxyHeader } from "../net/proxy_protocol.ts";
import type { Backend, BackendPool } from "./backend.ts";
import type { Balancer } from "./balancer.ts";
import type { LbConfig } from "./config.ts";
import type { HealthMonitor } from "./health_probe.ts";
import type { NatRow, NatTable } from "./nat_table.ts";
import type { SharedCounts } from "./shared_counts.ts";

const log = getLogger(["l4chat", "lb"]);

/** Formats a client address the way the original did: `<ip,port>`. */
export function formatClient(addr: Addr): string {
  return `<${addr.hostname},${addr.port}>`;
}

/** Why a client was turned away before reaching a backend. */
export type RefusalReason = "max-conns" | "max-conns-per-ip" | "no-backend" | "stopping";

/** What the proxy reports as it works, for the admin endpoint's events and metrics. */
export interface ProxyEvents {
  /** A NAT row was added; `connectMs` is how long the backend connect took. */
  opened?(row: NatRow, backend: Backend, connectMs: number): void;
  /** A NAT row was removed; `reason` says what ended it. */
  closed?(row: NatRow, backend: Backend, reason: string): void;
  /** A client was refused. */
  refused?(client: Addr, reason: RefusalReason): void;
  /** A connect to a backend failed. */
  connectFailed?(backend: Backend): void;
}

/** Where the proxy reports the outcome of its connects (passive health checks). */
export type PassiveHealth = Pick<HealthMonitor, "connected" | "connectFailed">;

/** What {@linkcode Proxy} works with; the shell in `mod.ts` builds it and may swap parts on reload. */
export interface ProxyContext {
  net: Net;
  pool: BackendPool;
  /** The balancer in force; replaced when a reload changes the algorithm. */
  balancer: Balancer;
  nat: NatTable;
  health: PassiveHealth;
  /** The config in force; replaced on reload. */
  config: LbConfig;
  events: ProxyEvents;
  /** With `lb --workers`: the counts every worker shares, so limits hold for them all. */
  shared?: SharedCounts;
}

/** Counts clients against `--max-conns` and `--max-conns-per-ip`. */
interface Limits {
  /** Counts a client from `ip` in; returns why it is refused instead, if it is. */
  admit(ip: string, config: LbConfig): RefusalReason | undefined;
  /** Counts it out again: once for each `admit` that let it in. */
  release(ip: string): void;
}

/** The limits of one proxy on its own. */
class LocalLimits implements Limits {
  #open = 0;
  readonly #perIp = new Map<string, number>();

  admit(ip: string, config: LbConfig): RefusalReason | undefined {
    if (config.maxConns > 0 && this.#open >= config.maxConns) return "max-conns";
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (config.maxConnsPerIp > 0 && fromIp >= config.maxConnsPerIp) return "max-conns-per-ip";
    this.#open++;
    this.#perIp.set(ip, fromIp + 1);
    return undefined;
  }

  release(ip: string): void {
    this.#open--;
    const left = (this.#perIp.get(ip) ?? 1) - 1;
    if (left === 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, left);
  }
}

/**
 * The limits of every worker together. Counted first, then checked, so that two workers
 * admitting at once cannot both take the last place. A client IP that finds the shared table
 * full is let in uncounted (the table holds twice `--max-conns` addresses).
 */
class SharedLimits implements Limits {
  readonly #counts: SharedCounts;

  constructor(counts: SharedCounts) {
    this.#counts = counts;
  }

  admit(ip: string, config: LbConfig): RefusalReason | undefined {
    const counts = this.#counts;
    if (counts.addActive(1) > config.maxConns && config.maxConns > 0) {
      counts.addActive(-1);
      return "max-conns";
    }
    if (config.maxConnsPerIp > 0 && counts.addIp(ip, 1) > config.maxConnsPerIp) {
      counts.addIp(ip, -1);
      counts.addActive(-1);
      return "max-conns-per-ip";
    }
    return undefined;
  }

  release(ip: string): void {
    this.#counts.addActive(-1);
    this.#counts.addIp(ip, -1);
  }
}

/** A client's place under `--max-conns` and `--max-conns-per-ip`, given back exactly once. */
interface Admission {
  ip: string;
  released: boolean;
}

/** A proxied connection that can be closed from outside (shutdown, admin, sweeps). */
interface Tunnel {
  client: Conn;
  upstream: Conn;
  /** Why it is being closed from outside, if it is. */
  reason?: string;
}

/**
 * Proxies client connections to backends: enforces the connection limits, picks a backend,
 * connects (trying others on failure), records the NAT row, relays both ways, and removes
 * the row exactly once at the end.
 */
export class Proxy {
  readonly #ctx: ProxyContext;
  readonly #tunnels = new Map<number, Tunnel>();
  readonly #limits: Limits;
  #pending = 0;
  #nextConnId = 1;
  #idleWaiters: (() => void)[] = [];
  #stopping = false;
  /**
   * Whether each connection is logged at info and debug level. Asked of LogTape once: the
   * process configures its logging before it makes a proxy (`cli/log.ts`), and asking costs
   * more than the rest of a connection's bookkeeping.
   */
  readonly #logInfo = log.isEnabledFor("info");
  readonly #logDebug = log.isEnabledFor("debug");

  constructor(ctx: ProxyContext) {
    this.#ctx = ctx;
    this.#limits = ctx.shared === undefined ? new LocalLimits() : new SharedLimits(ctx.shared);
  }

  /** NAT rows now: this proxy's, or every worker's with `lb --workers`. */
  get #natSize(): number {
    return this.#ctx.shared?.natRows ?? this.#ctx.nat.size;
  }

  /** Connections being proxied (NAT rows) or waiting for a backend. */
  get active(): number {
    return this.#tunnels.size + this.#pending;
  }

  /** Turns away every new client from now on. */
  stopAccepting(): void {
    this.#stopping = true;
  }

  /** Resolves when no connection is left. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Closes the proxied connection of NAT row `id` because of `reason`; false if none. */
  close(id: number, reason = "closed by admin"): boolean {
    const tunnel = this.#tunnels.get(id);
    if (tunnel === undefined) return false;
    tunnel.reason ??= reason;
    tunnel.client.close();
    tunnel.upstream.close();
    return true;
  }

  /**
   * Closes every proxied connection (of `backendId` only, if given), spread evenly over
   * `spreadMs` so that clients do not all come back at once. Returns how many.
   */
  closeAll(reason: string, spreadMs = 0, backendId?: number): number {
    const ids = [...this.#ctx.nat.rows()]
      .filter((row) => backendId === undefined || row.backendId === backendId)
      .map((row) => row.id);
    ids.forEach((id, index) => {
      if (spreadMs <= 0 || ids.length === 1) this.close(id, reason);
      else setTimeout(() => this.close(id, reason), (spreadMs * index) / (ids.length - 1));
    });
    return ids.length;
  }

  /** Handles one accepted client until both directions are done. Never rejects. */
  async handle(client: Conn): Promise<void> {
    const ip = client.remoteAddr.hostname;
    const refusal = this.#stopping ? "stopping" : this.#limits.admit(ip, this.#ctx.config);
    if (refusal !== undefined) {
      this.#refuse(client, refusal);
      return;
    }
    const admission: Admission = { ip, released: false };
    this.#pending++;
    try {
      await this.#serve(client, admission);
    } catch (err) {
      // A bug, not a network event: say so, but never take the load balancer down.
      log.error("client {client}: unexpected error: {error}", {
        client: formatClient(client.remoteAddr),
        error: (err as Error)?.message ?? String(err),
      });
      client.close();
    } finally {
      this.#release(admission);
      if (this.active === 0) {
        for (const resolve of this.#idleWaiters.splice(0)) resolve();
      }
    }
  }

  /** Gives back the place of `admission`, if it was not given back already. */
  #release(admission: Admission): void {
    if (admission.released) return;
    admission.released = true;
    this.#limits.release(admission.ip);
  }

  async #serve(client: Conn, admission: Admission): Promise<void> {
    const { net, pool, nat, health } = this.#ctx;
    const connectStart = Date.now();
    let connected;
    try {
      connected = await this.#connect(client);
    } finally {
      this.#pending--;
    }
    if (connected === undefined) {
      this.#ctx.events.refused?.(client.remoteAddr, "no-backend");
      client.close();
      return;
    }
    const [backend, upstream] = connected;
    const balancer = this.#ctx.balancer;
    const now = Date.now();
    const row = nat.open({
      client: client.remoteAddr,
      local: () => upstream.localAddr,
      backend: backend.addr,
      backendId: backend.id,
    }, now);
    this.#ctx.shared?.addNatRows(1);
    const tunnel: Tunnel = { client, upstream };
    this.#tunnels.set(row.id, tunnel);
    pool.opened(backend);
    balancer.onOpen?.(backend);
    health.connected(backend);
    if (this.#logInfo) {
      log.info("client {client} -> {backend}", {
        event: "open",
        client: formatClient(client.remoteAddr),
        backend: formatAddr(backend.addr),
        local: formatAddr(row.local),
        id: row.id,
        natSize: this.#natSize,
      });
      log.info("   Current NAT table length : {natSize}", { natSize: this.#natSize });
    }
    this.#ctx.events.opened?.(row, backend, now - connectStart);

    const relayOptions: RelayOptions = {
      onEnd: (direction) => {
        if (nat.finish(row.id, direction)) {
          // Before the relay closes the sockets: a client that sees its connection end and
          // comes straight back finds its place free, whichever worker takes it.
          this.#release(admission);
          this.#ctx.shared?.addNatRows(-1);
          this.#closed(row, backend, tunnel.reason ?? "done");
        }
      },
    };
    if (this.#logDebug) {
      relayOptions.onChunk = (direction, bytes) =>
        log.debug(
          `Successfully sent {bytes} bytes to ${direction === "up" ? "server" : "client"}!`,
          { bytes, id: row.id },
        );
    }
    const error = await net.relay(client, upstream, row, relayOptions);
    client.close();
    upstream.close();
    if (nat.remove(row.id)) {
      this.#ctx.shared?.addNatRows(-1);
      const reason = tunnel.reason ?? error?.message ?? "closed";
      this.#closed(row, backend, reason);
    }
    this.#tunnels.delete(row.id);
    pool.closed(backend, row.bytesUp, row.bytesDown);
    // With workers, the main thread says so, once every worker's connections are gone.
    if (backend.removing && pool.get(backend.id) === undefined && !this.#ctx.shared) {
      log.info("server {backend} drained: removed", {
        event: "removed",
        backend: formatAddr(backend.addr),
        backendId: backend.id,
      });
    }
    balancer.onClose?.(backend);
  }

  #refuse(client: Conn, reason: RefusalReason): void {
    log.info("client {client} refused: {reason}", {
      event: "refused",
      client: formatClient(client.remoteAddr),
      reason,
    });
    this.#ctx.events.refused?.(client.remoteAddr, reason);
    client.close();
  }

  /** Tries backends until one accepts, up to `connectTries`. */
  async #connect(client: Conn): Promise<[Backend, Conn] | undefined> {
    const { net, pool, health, config } = this.#ctx;
    const connId = this.#nextConnId++;
    // Backends that failed this client; made on the first failure, which is rare.
    let tried: Set<number> | undefined;
    for (let attempt = 0; attempt < config.connectTries; attempt++) {
      const candidates = pool.candidates({
        exclude: tried,
        nowMs: Date.now(),
        slowstartMs: config.slowstartMs,
        random: config.slowstartMs > 0 ? Math.random() : undefined,
      });
      const backend = this.#ctx.balancer.pick(
        { id: connId, remote: client.remoteAddr },
        candidates,
      );
      if (backend === undefined) break;
      pool.connectStarted(backend);
      try {
        const upstream = await net.connect(backend.addr, {
          timeoutMs: config.connectTimeoutMs,
          // The client has usually sent already: the backend hears of both at once.
          ackWithData: true,
        });
        const version = backend.sendProxy ?? config.sendProxy;
        if (version !== undefined) {
          const header = encodeProxyHeader(version, client.remoteAddr, client.localAddr);
          await upstream.writeAll(header).catch((err) => {
            upstream.close();
            throw err;
          });
        }
        return [backend, upstream];
      } catch (err) {
        (tried ??= new Set()).add(backend.id);
        pool.connectFailed(backend);
        health.connectFailed(backend);
        this.#ctx.events.connectFailed?.(backend);
        log.warn("cannot connect to server {backend} for client {client}: {reason}", {
          backend: formatAddr(backend.addr),
          client: formatClient(client.remoteAddr),
          reason: (err as Error).message,
        });
      } finally {
        // The caller counts the connection as opened right after, with no await between.
        pool.connectEnded(backend);
      }
    }
    log.warn("client {client} closed: no server available{detail}", {
      event: "refused",
      reason: "no-backend",
      client: formatClient(client.remoteAddr),
      detail: tried === undefined ? " (all dead, draining or full)" : ` (${tried.size} tried)`,
    });
    return undefined;
  }

  #closed(row: NatRow, backend: Backend, reason: string): void {
    this.#ctx.events.closed?.(row, backend, reason);
    if (!this.#logInfo) return;
    log.info("client {client} terminated", {
      event: "close",
      client: formatClient(row.client),
      backend: formatAddr(backend.addr),
      id: row.id,
      durationMs: Date.now() - row.openedAtMs,
      bytesUp: row.bytesUp,
      bytesDown: row.bytesDown,
      reason,
      natSize: this.#natSize,
    });
    log.info("   Current NAT table length : {natSize}", { natSize: this.#natSize });
  }
}
