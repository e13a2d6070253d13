import { getLogger } from "@logtape/logtape";
import { type Conn, formatAddr, type Net, type RelayOptions } from "../net/mod.ts";
import { encodeProxyHeader } from "../net/proxy_protocol.ts";
import type { Backend, BackendPool } from "./backend.ts";
import type { Balancer } from "./balancer.ts";
import type { HealthMonitor } from "./health_probe.ts";
import type { NatRow, NatTable } from "./nat_table.ts";

const log = getLogger(["l4chat", "lb"]);

/** Formats a client address the way the original did: `<ip,port>`. */
export function formatClient(conn: { hostname: string; port: number }): string {
  return `<${conn.hostname},${conn.port}>`;
}

/** Settings of the data path. */
export interface ProxyOptions {
  /** How long one backend connect may take, in ms. */
  connectTimeoutMs: number;
  /** How many backends one client may be tried on before it is closed. */
  connectTries: number;
  /** Send a PROXY protocol header of this version to backends before the client's bytes. */
  sendProxy?: 1 | 2;
}

/** What {@linkcode Proxy} works with; the shell in `mod.ts` builds it. */
export interface ProxyContext {
  net: Net;
  pool: BackendPool;
  balancer: Balancer;
  nat: NatTable;
  health: HealthMonitor;
  options: ProxyOptions;
}

/** A proxied connection that can be closed from outside (shutdown, admin). */
interface Tunnel {
  client: Conn;
  upstream: Conn;
}

/**
 * Proxies client connections to backends: picks one, connects (trying others on failure),
 * records the NAT row, relays both ways, and removes the row exactly once at the end.
 */
export class Proxy {
  readonly #ctx: ProxyContext;
  readonly #tunnels = new Map<number, Tunnel>();
  #nextConnId = 1;
  #idle: (() => void) | undefined;

  constructor(ctx: ProxyContext) {
    this.#ctx = ctx;
  }

  /** Connections being proxied now (NAT rows), plus clients still waiting for a backend. */
  get active(): number {
    return this.#tunnels.size;
  }

  /** Resolves when no connection is left. */
  idle(): Promise<void> {
    if (this.#tunnels.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle = resolve);
  }

  /** Closes every proxied connection now. */
  closeAll(): void {
    for (const tunnel of this.#tunnels.values()) {
      tunnel.client.close();
      tunnel.upstream.close();
    }
  }

  /** Closes the proxied connection of NAT row `id`; false if there is none. */
  close(id: number): boolean {
    const tunnel = this.#tunnels.get(id);
    if (tunnel === undefined) return false;
    tunnel.client.close();
    tunnel.upstream.close();
    return true;
  }

  /** Handles one accepted client until both directions are done. Never rejects. */
  async handle(client: Conn): Promise<void> {
    const { net, pool, balancer, nat, health } = this.#ctx;
    const connId = this.#nextConnId++;
    const clientText = formatClient(client.remoteAddr);
    const connected = await this.#connect(connId, client);
    if (connected === undefined) {
      client.close();
      return;
    }
    const [backend, upstream] = connected;
    const row = nat.open({
      client: client.remoteAddr,
      local: upstream.localAddr,
      backend: backend.addr,
      backendId: backend.id,
    }, Date.now());
    this.#tunnels.set(row.id, { client, upstream });
    pool.opened(backend);
    balancer.onOpen?.(backend);
    health.connected(backend);
    log.info("client {client} -> {backend}", {
      client: clientText,
      backend: formatAddr(backend.addr),
      local: formatAddr(upstream.localAddr),
      id: row.id,
      natSize: nat.size,
    });
    log.info("   Current NAT table length : {natSize}", { natSize: nat.size });

    const relayOptions: RelayOptions = {
      onEnd: (direction) => {
        if (nat.finish(row.id, direction)) this.#closed(row, backend, clientText);
      },
    };
    if (log.isEnabledFor("debug")) {
      relayOptions.onChunk = (direction, bytes) =>
        log.debug(
          `Successfully sent {bytes} bytes to ${direction === "up" ? "server" : "client"}!`,
          {
            bytes,
            id: row.id,
          },
        );
    }
    const result = await net.relay(client, upstream, row, relayOptions);
    client.close();
    upstream.close();
    if (nat.remove(row.id)) this.#closed(row, backend, clientText, result.error?.message);
    this.#tunnels.delete(row.id);
    pool.closed(backend);
    balancer.onClose?.(backend);
    if (this.#tunnels.size === 0) {
      this.#idle?.();
      this.#idle = undefined;
    }
  }

  /** Tries backends until one accepts, up to `connectTries`. */
  async #connect(connId: number, client: Conn): Promise<[Backend, Conn] | undefined> {
    const { net, pool, balancer, health, options } = this.#ctx;
    const tried = new Set<number>();
    for (let attempt = 0; attempt < options.connectTries; attempt++) {
      const backend = balancer.pick(
        { id: connId, remote: client.remoteAddr },
        pool.candidates(tried),
      );
      if (backend === undefined) break;
      tried.add(backend.id);
      try {
        const upstream = await net.connect(backend.addr, { timeoutMs: options.connectTimeoutMs });
        if (options.sendProxy !== undefined) {
          const header = encodeProxyHeader(options.sendProxy, client.remoteAddr, client.localAddr);
          await upstream.writeAll(header).catch((err) => {
            upstream.close();
            throw err;
          });
        }
        return [backend, upstream];
      } catch (err) {
        pool.connectFailed(backend);
        health.connectFailed(backend);
        log.warn("cannot connect to server {backend} for client {client}: {reason}", {
          backend: formatAddr(backend.addr),
          client: formatClient(client.remoteAddr),
          reason: (err as Error).message,
        });
      }
    }
    log.warn("client {client} closed: no server available{detail}", {
      client: formatClient(client.remoteAddr),
      detail: tried.size === 0 ? " (all dead or draining)" : ` (${tried.size} tried)`,
    });
    return undefined;
  }

  #closed(row: NatRow, backend: Backend, clientText: string, error?: string): void {
    const nat = this.#ctx.nat;
    log.info("client {client} terminated", {
      client: clientText,
      backend: formatAddr(backend.addr),
      id: row.id,
      durationMs: Date.now() - row.openedAtMs,
      bytesUp: row.bytesUp,
      bytesDown: row.bytesDown,
      natSize: nat.size,
      ...(error === undefined ? {} : { error }),
    });
    log.info("   Current NAT table length : {natSize}", { natSize: nat.size });
  }
}
