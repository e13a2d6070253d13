import { getLogger } from "@logtape/logtape";
import { infoLine } from "../cli/log.ts";
import { type Addr, type Conn, formatAddr, type Listener, type Net, WRITTEN } from "../net/mod.ts";
import { ProxyHeaderError } from "../net/proxy_protocol.ts";
import { readProxyHeader } from "../net/read_proxy_header.ts";
import { LineBatch } from "./line_batch.ts";
import { LineSplitter } from "./lines.ts";
import { Outbox } from "./outbox.ts";
import { joinedNotice, leftNotice, PresenceQueue } from "./presence.ts";
import { formatNotice, noticeLine, withNewline } from "./protocol.ts";
import { type Member, Room } from "./room.ts";

const log = getLogger(["l4chat", "serv"]);
const decoder = new TextDecoder();

/** Settings of {@linkcode runServ}; the command line fills them in. */
export interface ServOptions {
  /** Address to listen on; port 0 picks a free port. */
  listen: Addr;
  /** Clients served at once; the next one gets a refusal line and is closed. */
  maxClients: number;
  /** Longest line relayed, in bytes (without its `\n`). */
  maxLine: number;
  /** Output a client may have pending before it is disconnected as not reading, in bytes. */
  maxOutput: number;
  /**
   * Expect a PROXY protocol header (v1 or v2) first on every connection and name clients by
   * the address it carries. A connection without a valid one is closed.
   */
  acceptProxy?: boolean;
  /** How long a PROXY header may take to arrive, in ms. */
  proxyTimeoutMs?: number;
  /** How long shutdown waits for clients to take their last notice, in ms. */
  shutdownMs?: number;
  /**
   * Whether to tell everyone `* <ip:port> joined, N online` and `* <ip:port> left, N online`
   * (default false here; the command line turns it on). N is cluster-wide with `cluster`.
   */
  presence?: boolean;
  /**
   * How long a client must stay connected before it is announced and counted, in ms
   * (default 500). Health checks of a load balancer connect and close at once: they are
   * never announced.
   */
  presenceDelayMs?: number;
  /**
   * The other servers of a cluster-wide room (`--redis`). The server owns it from here on:
   * it is closed when the server stops.
   */
  cluster?: ClusterLink;
}

/**
 * What a chat server needs of the other servers that share its room. Implemented over Redis
 * by `cluster.ts`; tests can pass a fake.
 */
export interface ClusterLink {
  /** This server's id, tagged on every line it publishes. */
  readonly serverId: string;
  /**
   * Sets the handler of lines other servers published (each ends in `\n`, and is this
   * server's to keep). Called in the order the other servers published them, never with a
   * line this server published.
   */
  onLine(handler: (line: Uint8Array) => void): void;
  /** Sends `line` (ending in `\n`) to the other servers; never waits, never throws. */
  publish(line: Uint8Array): void;
  /**
   * Records that this server has `localClients` clients and resolves to the number online
   * across the cluster, or to undefined when that cannot be known now. Never rejects.
   */
  online(localClients: number): Promise<number | undefined>;
  /** Leaves the cluster (this server's clients stop counting). Never rejects. */
  close(): Promise<void>;
}

/** A running chat server. */
export interface ChatServer {
  /** The address actually bound. */
  readonly addr: Addr;
  /** Clients connected now. */
  readonly clients: number;
  /** Stops accepting, tells every client `* server shutting down`, closes them. */
  stop(): Promise<void>;
  /** Resolves once the server has stopped. */
  readonly done: Promise<void>;
}

const READ_BUFFER_BYTES = 8 * 1024;
const FLUSH_ON_LEAVE_MS = 2000;

/** Waits for `promise`, or `ms`, whichever comes first. */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/**
 * One connected client: its socket, its pending output and the writes that drain it. Output
 * for a client whose last write went out is written at once; what comes while a write waits on
 * the socket goes out together in the next. Nothing is allocated per client where the socket
 * takes each write at once: with 100 clients every batch of lines is 100 writes, and the
 * promises and closures of each were what the collector paused for.
 */
class Session implements Member {
  readonly id: number;
  readonly conn: Conn;
  readonly outbox: Outbox;
  /** `ip:port`, as presence notices name the client. */
  readonly client: string;
  /** Announced as joined (and so counted online): its leaving is announced too. */
  announced = false;
  /** A write waits on the socket (or failed: nothing is written again). */
  #writing = false;
  #closing = false;
  #resolveWritten!: () => void;
  /** Resolves when everything queued before `finish()` was written, or on failure. */
  readonly written = new Promise<void>((resolve) => this.#resolveWritten = resolve);

  constructor(id: number, conn: Conn, client: string, maxOutput: number) {
    this.id = id;
    this.conn = conn;
    this.client = client;
    this.outbox = new Outbox(maxOutput);
  }

  deliver(line: Uint8Array): boolean {
    if (this.#closing || !this.outbox.push(line)) return false;
    if (!this.#writing) this.#flush();
    return true;
  }

  /** Stops taking lines; `written` resolves once the outbox is empty. */
  finish(): void {
    this.#closing = true;
    if (!this.#writing) this.#resolveWritten();
  }

  /**
   * Writes what is pending, and once it is written, what came meanwhile; with nothing left,
   * resolves `written` if finished.
   */
  #flush(): void {
    const data = this.outbox.take();
    if (data !== undefined) {
      const writing = this.conn.writeAll(data);
      // Nothing can have been queued since the take: a write taken at once leaves nothing.
      if (writing !== WRITTEN) {
        this.#writing = true;
        writing.then(this.#next, this.#failed);
        return;
      }
    }
    this.#writing = false;
    if (this.#closing) this.#resolveWritten();
  }

  #next = (): void => this.#flush();

  #failed = (): void => {
    // The client went away; its read loop sees that and cleans up.
    this.conn.close();
    this.#resolveWritten();
  };
}

/**
 * Runs a chat server: every line a client sends is relayed to every client, the sender
 * included, in the order the server read them. Resolves once it is listening.
 */
export async function runServ(net: Net, options: ServOptions): Promise<ChatServer> {
  const listener = await net.listen(options.listen);
  const room = new Room<Session>();
  const sessions = new Set<Session>();
  let nextId = 1;
  let stopping = false;
  log.info("chat server listening on {addr}", {
    addr: formatAddr(listener.addr),
    maxClients: options.maxClients,
  });

  const evict = (evicted: Session[]) => {
    for (const session of evicted) {
      log.warn(
        "client {id} disconnected: not reading (over {maxOutput} bytes of output pending)",
        { id: session.id, maxOutput: options.maxOutput },
      );
      session.conn.close();
    }
  };

  /**
   * What was said in this task, delivered once it ends: the lines of every read that finished
   * together go to each client in one write, built once for all of them.
   */
  const said = new LineBatch();
  const deliverSaid = () => {
    const chunk = said.take();
    if (chunk !== undefined) evict(room.say(chunk));
  };
  /** Before adding to `said`: the first addition of a task queues its delivery. */
  const queueDelivery = () => {
    if (said.empty) queueMicrotask(deliverSaid);
  };

  /**
   * Says `lines` (without their `\n`: the lines of one read, or notices due together) to
   * every local client, with whatever else is said in this task; in a cluster, publishes
   * each line to every other server. Empties `lines`.
   */
  const say = (lines: Uint8Array[]) => {
    if (lines.length === 0) return;
    queueDelivery();
    said.addLines(lines);
    const cluster = options.cluster;
    if (cluster !== undefined) { for (const line of lines) cluster.publish(withNewline(line)); }
    lines.length = 0;
  };
  options.cluster?.onLine((line) => {
    queueDelivery();
    said.addBytes(line);
  });

  /** Clients announced as joined and not yet as left. */
  let present = 0;
  const unannounced = new PresenceQueue<Session>(options.presenceDelayMs ?? 500);
  let presenceTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Tells everyone that clients joined or left, with the count of clients online after each:
   * `notices[i]` is given the count after the i-th of them (the last is the count now).
   */
  const announce = (notices: ((online: number) => string)[]) => {
    if (stopping) return;
    const sayAll = (online: number) => {
      say(notices.map((notice, i) => noticeLine(notice(online - (notices.length - 1 - i)))));
    };
    const local = present;
    if (options.cluster === undefined) return sayAll(local);
    options.cluster.online(local).then((online) => {
      if (!stopping) sayAll(online ?? local);
    });
  };

  /** Announces every client that has waited out the presence delay, then waits for the next. */
  const announceDue = () => {
    presenceTimer = undefined;
    const due = unannounced.takeDue(Date.now());
    if (due.length > 0) {
      for (const session of due) session.announced = true;
      present += due.length;
      announce(due.map((session) => (online) => joinedNotice(session.client, online)));
    }
    armPresence();
  };

  const armPresence = () => {
    const dueMs = unannounced.nextDueMs();
    if (presenceTimer !== undefined || stopping || dueMs === undefined) return;
    presenceTimer = setTimeout(announceDue, Math.max(0, dueMs - Date.now()));
  };

  const serveClient = async (conn: Conn) => {
    const id = nextId++;
    let remote = conn.remoteAddr;
    let first: Uint8Array | undefined;
    if (options.acceptProxy) {
      try {
        const { header, rest } = await readProxyHeader(conn, options.proxyTimeoutMs ?? 5000);
        if (header.source !== undefined) remote = header.source;
        first = rest;
      } catch (err) {
        log.warn("connection from {client} closed: {reason}", {
          client: formatAddr(conn.remoteAddr),
          reason: err instanceof ProxyHeaderError ? err.message : "connection lost",
        });
        conn.close();
        return;
      }
    }
    if (sessions.size >= options.maxClients) {
      log.warn("client {client} refused: server full ({maxClients} clients)", {
        client: formatAddr(remote),
        maxClients: options.maxClients,
      });
      await conn.writeAll(formatNotice(`server full (${options.maxClients} clients), try later`))
        .catch(() => {});
      conn.close();
      return;
    }
    const client = formatAddr(remote);
    const session = new Session(id, conn, client, options.maxOutput);
    sessions.add(session);
    room.join(session);
    infoLine(log, "Connected client IP: {ip}", {
      ip: remote.hostname,
      client,
      id,
      clients: sessions.size,
    });
    if (options.presence) {
      unannounced.add(session, Date.now());
      armPresence();
    }
    const splitter = new LineSplitter(options.maxLine);
    // Read once per client, not per line: the broadcast loop must not build log records.
    const debug = log.isEnabledFor("debug");
    const buf = new Uint8Array(READ_BUFFER_BYTES);
    const lines: Uint8Array[] = [];
    try {
      while (true) {
        let chunk: Uint8Array;
        if (first !== undefined) {
          chunk = first;
          first = undefined;
        } else {
          const n = await conn.read(buf);
          if (n === null) break;
          chunk = buf.subarray(0, n);
        }
        for (const frame of splitter.push(chunk)) {
          if (frame.kind === "line") {
            if (debug) {
              log.debug("client {id} says {text}", { id, text: decoder.decode(frame.bytes) });
            }
            lines.push(frame.bytes);
          } else {
            // What came before the long line goes first, as it was sent.
            say(lines);
            deliverSaid();
            log.warn("client {id} sent a line of {length} bytes, over --max-line {maxLine}", {
              id,
              length: frame.length,
              maxLine: options.maxLine,
            });
            session.deliver(
              formatNotice(`line too long (over ${options.maxLine} bytes), not relayed`),
            );
          }
        }
        say(lines);
      }
    } catch {
      // A reset or a close by eviction or shutdown: the client is gone either way.
    } finally {
      room.leave(session);
      sessions.delete(session);
      session.finish();
      unannounced.remove(session);
      if (session.announced) {
        present--;
        announce([(online) => leftNotice(client, online)]);
      }
      if (!stopping) {
        // Flush what the client is owed (it may only have half-closed), but not forever.
        await withTimeout(session.written, FLUSH_ON_LEAVE_MS);
        conn.close();
        infoLine(log, "client {id} terminated", { id, clients: sessions.size });
      }
    }
  };

  const acceptLoop = async (l: Listener) => {
    for await (const conn of l) serveClient(conn).catch(() => conn.close());
  };
  const accepting = acceptLoop(listener);

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopping = true;
      clearTimeout(presenceTimer);
      listener.close();
      await accepting;
      log.info("chat server shutting down (clients: {clients})", { clients: sessions.size });
      const notice = formatNotice("server shutting down");
      deliverSaid();
      const all = [...sessions];
      for (const session of all) {
        session.deliver(notice);
        session.finish();
      }
      await withTimeout(
        Promise.all(all.map((session) => session.written)),
        options.shutdownMs ?? 2000,
      );
      for (const session of all) session.conn.close();
      await options.cluster?.close();
      resolveDone();
    })();
    return stopped;
  };

  return {
    addr: listener.addr,
    get clients() {
      return sessions.size;
    },
    stop,
    done,
  };
}
