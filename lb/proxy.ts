import { getLogger } from "@logtape/logtape";
import {
  type Addr,
  type Conn,
  type ConnectOptions,
  formatAddr,
  type Net,
  type NetError,
  type RelayOptions,
} from "../net/mod.ts";
import { infoLine } from "../cli/log.ts";
import { encodeProxyHeader } from "../net/proxy_protocol.ts";
import type { Backend, BackendPool } from "./backend.ts";
import type { Balancer } from "./balancer.ts";
import type { LbConfig } from "./config.ts";
import type { HealthMonitor } from "./health_probe.ts";
import { IdMap } from "./id_map.ts";
import type { NatRow, NatTable } from "./nat_table.ts";
import type { SharedCounts } from "./shared_counts.ts";

const log = getLogger(["l4chat", "lb"]);
/** The original's line after each open and close. */
const NAT_SIZE_LINE = "   Current NAT table length : {natSize}";

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

/**
 * One client's connection through the proxy: its place under `--max-conns` and
 * `--max-conns-per-ip` (given back exactly once), and its backend connection once up.
 */
interface Session {
  readonly client: Conn;
  /** The client's IP, as counted under `--max-conns-per-ip`. */
  readonly ip: string;
  released: boolean;
  upstream: Conn | undefined;
  /** The balancer told of the open, so the same one hears of the close across a reload. */
  balancer: Balancer | undefined;
  /** Why it is being closed from outside, if it is. */
  reason: string | undefined;
}

/**
 * Proxies client connections to backends: enforces the connection limits, picks a backend,
 * connects (trying others on failure), records the NAT row, relays both ways, and removes
 * the row exactly once at the end.
 */
export class Proxy {
  readonly #ctx: ProxyContext;
  /** The sessions whose backend connection is up, by NAT row id. */
  readonly #tunnels = new IdMap<Session>();
  readonly #limits: Limits;
  #pending = 0;
  #nextConnId = 1;
  #idleWaiters: (() => void)[] = [];
  #stopping = false;
  /** The options of backend connects, and the config they were made from. */
  #connectOptions: ConnectOptions = {};
  #connectOptionsConfig: LbConfig | undefined;
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
    const session = this.#tunnels.get(id);
    if (session === undefined) return false;
    session.reason ??= reason;
    session.client.close();
    session.upstream?.close();
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

  /**
   * Handles one accepted client until both directions are done. Never rejects. One async
   * function from accept to close: every await costs a few allocations per connection.
   */
  async handle(client: Conn): Promise<void> {
    const ip = client.remoteAddr.hostname;
    const refusal = this.#stopping ? "stopping" : this.#limits.admit(ip, this.#ctx.config);
    if (refusal !== undefined) {
      this.#refuse(client, refusal);
      return;
    }
    const session: Session = {
      client,
      ip,
      released: false,
      upstream: undefined,
      balancer: undefined,
      reason: undefined,
    };
    this.#pending++;
    try {
      const { net, pool, config } = this.#ctx;
      const connectStart = Date.now();
      let backend: Backend | undefined;
      // Backends that failed this client; made on the first failure, which is rare.
      let tried: Set<number> | undefined;
      try {
        const connId = this.#nextConnId++;
        for (let attempt = 0; attempt < config.connectTries; attempt++) {
          const candidate = this.#pick(client, connId, tried, config);
          if (candidate === undefined) break;
          pool.connectStarted(candidate);
          try {
            const upstream = await net.connect(candidate.addr, this.#connectOptionsFor(config));
            const version = candidate.sendProxy ?? config.sendProxy;
            if (version !== undefined) await sendProxyHeader(upstream, version, client);
            session.upstream = upstream;
            backend = candidate;
            break;
          } catch (err) {
            (tried ??= new Set()).add(candidate.id);
            this.#connectFailed(candidate, client, err as Error);
          } finally {
            // Counted as opened right after, with no await between.
            pool.connectEnded(candidate);
          }
        }
      } finally {
        this.#pending--;
      }
      if (backend === undefined) {
        this.#noBackend(client, tried);
        return;
      }
      const row = this.#opened(session, backend, connectStart);
      const error = await net.relay(
        client,
        session.upstream!,
        row,
        this.#relayOptions(session, row, backend, config),
      );
      this.#ended(session, row, backend, error);
    } catch (err) {
      // A bug, not a network event: say so, but never take the load balancer down.
      log.error("client {client}: unexpected error: {error}", {
        client: formatClient(client.remoteAddr),
        error: (err as Error)?.message ?? String(err),
      });
      client.close();
    } finally {
      this.#release(session);
      if (this.active === 0) {
        for (const resolve of this.#idleWaiters.splice(0)) resolve();
      }
    }
  }

  /** Gives back the place of `session`, if it was not given back already. */
  #release(session: Session): void {
    if (session.released) return;
    session.released = true;
    this.#limits.release(session.ip);
  }

  /** What connecting to a backend takes under `config`: made once per config. */
  #connectOptionsFor(config: LbConfig): ConnectOptions {
    if (this.#connectOptionsConfig !== config) {
      this.#connectOptionsConfig = config;
      this.#connectOptions = {
        timeoutMs: config.connectTimeoutMs,
        // The client has usually sent already, or does soon: the backend hears of both at once.
        ackWithData: true,
        ackWaitMs: config.ackWaitMs,
      };
    }
    return this.#connectOptions;
  }

  /** The backend to try next for `client`, if any is left. */
  #pick(
    client: Conn,
    connId: number,
    tried: Set<number> | undefined,
    config: LbConfig,
  ): Backend | undefined {
    const candidates = this.#ctx.pool.candidates({
      exclude: tried,
      nowMs: Date.now(),
      slowstartMs: config.slowstartMs,
      random: config.slowstartMs > 0 ? Math.random() : undefined,
    });
    return this.#ctx.balancer.pick({ id: connId, remote: client.remoteAddr }, candidates);
  }

  /** A connect to `backend` for `client` failed with `err`. */
  #connectFailed(backend: Backend, client: Conn, err: Error): void {
    this.#ctx.pool.connectFailed(backend);
    this.#ctx.health.connectFailed(backend);
    this.#ctx.events.connectFailed?.(backend);
    log.warn("cannot connect to server {backend} for client {client}: {reason}", {
      backend: formatAddr(backend.addr),
      client: formatClient(client.remoteAddr),
      reason: err.message,
    });
  }

  /** No backend took `client`: every one was tried (`tried`), or none could be. */
  #noBackend(client: Conn, tried: Set<number> | undefined): void {
    log.warn("client {client} closed: no server available{detail}", {
      event: "refused",
      reason: "no-backend",
      client: formatClient(client.remoteAddr),
      detail: tried === undefined ? " (all dead, draining or full)" : ` (${tried.size} tried)`,
    });
    this.#ctx.events.refused?.(client.remoteAddr, "no-backend");
    client.close();
  }

  /** `session`'s backend connection is up: its NAT row, counts and log lines. */
  #opened(session: Session, backend: Backend, connectStart: number): NatRow {
    const { pool, nat, health } = this.#ctx;
    const { client, upstream } = session;
    const now = Date.now();
    const row = nat.open({
      client: client.remoteAddr,
      local: () => upstream!.localAddr,
      backend: backend.addr,
      backendId: backend.id,
    }, now);
    this.#ctx.shared?.addNatRows(1);
    this.#tunnels.set(row.id, session);
    pool.opened(backend);
    session.balancer = this.#ctx.balancer;
    session.balancer.onOpen?.(backend);
    health.connected(backend);
    if (this.#logInfo) {
      infoLine(log, "client {client} -> {backend}", {
        event: "open",
        client: formatClient(client.remoteAddr),
        backend: formatAddr(backend.addr),
        // Found only if written out (JSON.stringify: the JSON format), not by the text format:
        // it costs a system call.
        local: { toJSON: () => formatAddr(row.local) },
        id: row.id,
        natSize: this.#natSize,
      });
      infoLine(log, NAT_SIZE_LINE, { natSize: this.#natSize });
    }
    this.#ctx.events.opened?.(row, backend, now - connectStart);
    return row;
  }

  /** What the relay of `session` reports as it goes. */
  #relayOptions(
    session: Session,
    row: NatRow,
    backend: Backend,
    config: LbConfig,
  ): RelayOptions {
    const nat = this.#ctx.nat;
    const options: RelayOptions = {
      finWaitMs: config.finWaitMs,
      onEnd: (direction) => {
        if (nat.finish(row.id, direction)) {
          // Before the relay closes the sockets: a client that sees its connection end and
          // comes straight back finds its place free, whichever worker takes it.
          this.#release(session);
          this.#ctx.shared?.addNatRows(-1);
          this.#closed(row, backend, session.reason ?? "done");
        }
      },
    };
    if (this.#logDebug) {
      options.onChunk = (direction, bytes) =>
        log.debug(
          `Successfully sent {bytes} bytes to ${direction === "up" ? "server" : "client"}!`,
          { bytes, id: row.id },
        );
    }
    return options;
  }

  /** `session`'s relay is over, with `error` if one ended it. */
  #ended(session: Session, row: NatRow, backend: Backend, error: NetError | undefined): void {
    const { pool, nat } = this.#ctx;
    session.client.close();
    session.upstream!.close();
    if (nat.remove(row.id)) {
      this.#ctx.shared?.addNatRows(-1);
      this.#closed(row, backend, session.reason ?? error?.message ?? "closed");
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
    session.balancer!.onClose?.(backend);
  }

  #refuse(client: Conn, reason: RefusalReason): void {
    infoLine(log, "client {client} refused: {reason}", {
      event: "refused",
      client: formatClient(client.remoteAddr),
      reason,
    });
    this.#ctx.events.refused?.(client.remoteAddr, reason);
    client.close();
  }

  #closed(row: NatRow, backend: Backend, reason: string): void {
    this.#ctx.events.closed?.(row, backend, reason);
    if (!this.#logInfo) return;
    infoLine(log, "client {client} terminated", {
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
    infoLine(log, NAT_SIZE_LINE, { natSize: this.#natSize });
  }
}

/** Sends the PROXY header for `client` first on `upstream`; closes `upstream` if it cannot. */
async function sendProxyHeader(upstream: Conn, version: 1 | 2, client: Conn): Promise<void> {
  try {
    await upstream.writeAll(encodeProxyHeader(version, client.remoteAddr, client.localAddr));
  } catch (err) {
    upstream.close();
    throw err;
  }
}
