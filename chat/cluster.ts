/**
 * The Redis side of a chat cluster: publishes the lines this server reads, delivers the
 * lines other servers publish, and keeps this server's client count in the presence hash.
 *
 * The only module that imports the Redis client (`@redis/client`, the core of node-redis),
 * which opens its own sockets: it is the one network use outside `net/`, confined here.
 * `serv_cli.ts` imports this module only when `--redis` is given.
 */
import { Buffer } from "node:buffer";
import { getLogger } from "@logtape/logtape";
import { createClient } from "@redis/client";
import { backoffMs } from "./backoff.ts";
import { decodeClusterMessage, encodeClusterMessage, OriginFilter } from "./cluster_message.ts";
import { formatPresenceEntry, sumPresence } from "./presence.ts";
import type { ClusterLink } from "./server.ts";

const log = getLogger(["l4chat", "serv", "cluster"]);

/** Settings of {@linkcode connectRedisCluster}. */
export interface RedisClusterOptions {
  /** `redis://[user:password@]host:port[/db]`, already checked. */
  url: string;
  /** The URL without its password, for logs. */
  displayUrl: string;
  /** The pub/sub channel; the presence hash is `<channel>:online`. */
  channel: string;
  /** How long a server's presence entry lives without a refresh, in ms. */
  presenceTtlMs: number;
  /** How long the first connection may take before the server starts without Redis, in ms. */
  connectTimeoutMs: number;
  /** Longest wait between two reconnect attempts, in ms. */
  retryMaxMs: number;
  /** This server's id; random by default. */
  serverId?: string;
}

/** A random server id: 12 hex digits. */
export function newServerId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/**
 * Connects to Redis, subscribes to the channel and resolves with the link, or resolves
 * anyway after `connectTimeoutMs` (with a warning) and keeps trying in the background: local
 * chat never waits for Redis. While Redis is unreachable, lines are delivered locally only,
 * the outage is logged once, reconnects back off up to `retryMaxMs`, and once back, delivery
 * across the cluster resumes from then on (what was said meanwhile is not replayed).
 */
export async function connectRedisCluster(options: RedisClusterOptions): Promise<ClusterLink> {
  const link = new RedisLink(options);
  await link.start();
  return link;
}

type RedisClient = ReturnType<typeof createClient>;

class RedisLink implements ClusterLink {
  readonly serverId: string;
  readonly #options: RedisClusterOptions;
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  readonly #filter: OriginFilter;
  readonly #presenceKey: string;
  #onLine: (line: Uint8Array) => void = () => {};
  #seq = 0;
  #localClients = 0;
  /** Set once the first SUBSCRIBE succeeded; the client renews it on each reconnect. */
  #subscribed = false;
  /** True while both connections are up and subscribed; false during an outage. */
  #up = false;
  #everUp = false;
  #outageLogged = false;
  /** Lines read during the current outage, which other servers never get. */
  #unpublished = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #whenUp: () => void = () => {};
  #closed = false;

  constructor(options: RedisClusterOptions) {
    this.#options = options;
    this.serverId = options.serverId ?? newServerId();
    this.#filter = new OriginFilter(this.serverId);
    this.#presenceKey = `${options.channel}:online`;
    const socket = {
      connectTimeout: options.connectTimeoutMs,
      reconnectStrategy: (attempt: number) =>
        backoffMs(attempt + 1, { minMs: 100, maxMs: options.retryMaxMs, random: Math.random() }),
    };
    this.#pub = createClient({
      url: options.url,
      socket,
      // Lines are not held while Redis is away: commands fail at once and chat stays local.
      disableOfflineQueue: true,
      commandOptions: { timeout: options.connectTimeoutMs },
      // Off, it needs no environment variables (Deno asks for no --allow-env).
      maintNotifications: "disabled",
    });
    // The subscriber queues its SUBSCRIBE until connected, and renews it (before "ready")
    // after every reconnect.
    this.#sub = createClient({ url: options.url, socket, maintNotifications: "disabled" });
    for (const client of [this.#pub, this.#sub]) {
      client.on("error", (err: Error) => this.#down(err.message));
      client.on("ready", () => this.#checkUp());
    }
    this.#pub.on("ready", () => this.#refresh());
  }

  async start(): Promise<void> {
    const first = new Promise<void>((resolve) => this.#whenUp = resolve);
    this.#pub.connect().catch(() => {});
    this.#sub.connect().catch(() => {});
    this.#sub.subscribe(
      this.#options.channel,
      (message: Buffer) => this.#receive(message),
      true,
    ).then(() => {
      this.#subscribed = true;
      this.#checkUp();
    }, () => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) =>
      timer = setTimeout(() => resolve(true), this.#options.connectTimeoutMs)
    );
    const late = await Promise.race([first.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) this.#logOutage("no answer yet");
    this.#heartbeat = setInterval(() => this.#refresh(), this.#options.presenceTtlMs / 3);
  }

  onLine(handler: (line: Uint8Array) => void): void {
    this.#onLine = handler;
  }

  publish(line: Uint8Array): void {
    const seq = ++this.#seq;
    if (!this.#up || !this.#pub.isReady) {
      this.#unpublished++;
      return;
    }
    const bytes = encodeClusterMessage({ serverId: this.serverId, seq, line });
    this.#pub.publish(
      this.#options.channel,
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length),
    ).catch(() => this.#unpublished++);
  }

  async online(localClients: number): Promise<number | undefined> {
    this.#localClients = localClients;
    if (!this.#pub.isReady) return undefined;
    try {
      return await this.#writePresence();
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    if (this.#pub.isReady) {
      await this.#pub.hDel(this.#presenceKey, this.serverId).catch(() => {});
    }
    this.#pub.destroy();
    this.#sub.destroy();
  }

  /** Writes this server's presence entry and returns the cluster-wide count. */
  async #writePresence(): Promise<number> {
    const now = Date.now();
    const ttl = this.#options.presenceTtlMs;
    const entry = formatPresenceEntry(this.#localClients, now + ttl);
    const [, , fields] = await this.#pub.multi()
      .hSet(this.#presenceKey, this.serverId, entry)
      .pExpire(this.#presenceKey, ttl * 2)
      .hGetAll(this.#presenceKey)
      .exec();
    const { online, stale } = sumPresence(fields as unknown as Record<string, string>, now);
    if (stale.length > 0) this.#pub.hDel(this.#presenceKey, stale).catch(() => {});
    return online;
  }

  #refresh(): void {
    if (this.#closed || !this.#pub.isReady) return;
    this.#writePresence().catch(() => {});
  }

  #receive(message: Buffer): void {
    const decoded = decodeClusterMessage(new Uint8Array(message));
    if (decoded === undefined) {
      log.debug("dropped a message on {channel} that is not an l4chat line", {
        channel: this.#options.channel,
      });
      return;
    }
    const verdict = this.#filter.accept(decoded);
    if (!verdict.deliver) return;
    if (verdict.missed > 0) {
      log.warn("missed {missed} lines of server {origin} (Redis was unreachable for it)", {
        missed: verdict.missed,
        origin: decoded.serverId,
      });
    }
    // Copy: clients' outboxes keep lines by reference.
    this.#onLine(decoded.line.slice());
  }

  #checkUp(): void {
    if (this.#closed || this.#up || !this.#subscribed) return;
    if (!this.#pub.isReady || !this.#sub.isReady) return;
    this.#up = true;
    const back = this.#everUp;
    this.#everUp = true;
    this.#outageLogged = false;
    const lines = this.#unpublished;
    this.#unpublished = 0;
    if (back) {
      log.info(
        "redis {redis} back: cluster delivery resumed on {channel} ({lines} lines read meanwhile stayed local)",
        { redis: this.#options.displayUrl, channel: this.#options.channel, lines },
      );
    } else {
      log.info("cluster: server {serverId} subscribed to {channel} on {redis}", {
        serverId: this.serverId,
        channel: this.#options.channel,
        redis: this.#options.displayUrl,
      });
    }
    this.#whenUp();
  }

  #down(reason: string): void {
    if (this.#closed) return;
    this.#up = false;
    this.#logOutage(reason);
  }

  #logOutage(reason: string): void {
    if (this.#outageLogged || this.#closed) return;
    this.#outageLogged = true;
    log.warn(
      "redis {redis} unreachable ({reason}): chat stays local to this server, retrying",
      { redis: this.#options.displayUrl, reason },
    );
  }
}
