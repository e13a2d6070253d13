/**
 * The admin endpoint of a running load balancer: a JSON API over the NAT table and the
 * backends, Server-Sent Events, Prometheus metrics and the dashboard page.
 *
 * {@linkcode adminHandler} is a plain `(Request) => Promise<Response>` over a small view of
 * the load balancer, tested with `new Request(...)` as hono's `app.request()` is;
 * {@linkcode startAdmin} serves it through `Net.serveHttp`. Every change goes through
 * `lb.reload(config)`, the one path for changes, after being written to the config file when
 * there is one.
 *
 * @example
 * ```ts ignore
 * import { loadNet } from "../net/mod.ts";
 * import { defaultConfig } from "./config.ts";
 * import { runLb } from "./mod.ts";
 * import { LbMonitor } from "./monitor.ts";
 * import { startAdmin } from "./admin.ts";
 * const net = await loadNet();
 * const monitor = new LbMonitor();
 * const lb = await runLb(net, defaultConfig({ hostname: "127.0.0.1", port: 0 }, []), monitor.hooks);
 * const admin = await startAdmin(net, { lb, monitor }, { addr: { hostname: "127.0.0.1", port: 0 } });
 * await lb.stop();
 * await admin.stop();
 * ```
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { parseHostPort, parseInteger } from "../cli/args.ts";
import { type Addr, formatAddr, type HttpServer, type Net } from "../net/mod.ts";
import type { Backend, BackendConfig, BackendState, ReconcileResult } from "./backend.ts";
import { maglevMovedShare } from "./balancers/maglev.ts";
import { sourceHashMovedShare } from "./balancers/source_hash.ts";
import { type LbConfig, parseProxyVersion } from "./config.ts";
import { ConfigFileError } from "./config_file.ts";
import { DASHBOARD_HTML } from "./dashboard.ts";
import type { LoadBalancer } from "./mod.ts";
import type { LbMonitor } from "./monitor.ts";
import { backendSummary } from "./monitor.ts";

const log = getLogger(["l4chat", "lb", "admin"]);

/** What the admin endpoint needs of a running load balancer: a part of {@linkcode LoadBalancer}. */
export type AdminLb = Pick<
  LoadBalancer,
  "pool" | "nat" | "config" | "reload" | "sync" | "closeConnection" | "closeBackendConnections"
>;

/** The load balancer and the monitor fed by its hooks. */
export interface AdminView {
  lb: AdminLb;
  monitor: LbMonitor;
}

/** A change of the config: returns a new config, or throws to refuse. Must not mutate. */
export type ConfigChange = (config: LbConfig) => LbConfig;

/** Options of {@linkcode adminHandler}. */
export interface AdminOptions {
  /** When set, every request but the dashboard page must carry `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * With a config file: applies `change` to the file (see `updateConfigFile`) and returns
   * the config to run. Without, changes are applied to the running config only.
   */
  saveConfig?: (change: ConfigChange) => Promise<LbConfig>;
  /** Largest request body, in bytes (default 64 KiB). */
  maxBodyBytes?: number;
  /** Aborting it cancels pending drain deadlines. */
  signal?: AbortSignal;
}

/** Default of {@linkcode AdminOptions.maxBodyBytes}. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Default spread of the connections closed at a drain deadline, in ms. */
export const DEADLINE_SPREAD_MS = 1000;
/** Most backends the API lets a config have. */
const MAX_BACKENDS = 1000;
/** Most rows one `GET /api/connections` returns. */
const MAX_LIMIT = 100_000;
const DEFAULT_LIMIT = 1000;
const BACKEND_STATES: readonly BackendState[] = ["ready", "drain", "maint"];

/** A request the API refuses: `status` and a one-line message for `{ "error": ... }`. */
class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

const encoder = new TextEncoder();

/**
 * Compares `given` with `expected` in time that depends only on the length of `expected`,
 * so a wrong token's response time says nothing of how much of it was right.
 */
export function timingSafeEqual(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (i < a.length ? a[i] : 0) ^ b[i];
  return diff === 0;
}

/** True when `hostname` is a loopback address (127.0.0.0/8, ::1) or `localhost`. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host) ||
    /^::ffff:127\.\d+\.\d+\.\d+$/.test(host);
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
  });
}

/**
 * The admin endpoint as one request handler. Routes:
 * `GET /` (dashboard), `GET /metrics`, `GET|DELETE /api/connections`,
 * `GET|DELETE /api/connections/<id>`, `GET|POST /api/backends`,
 * `GET|PATCH|DELETE /api/backends/<id>`, `GET /api/backends/<id>/impact`,
 * `GET /api/events` (SSE), `GET /api/events/recent`. A refused request gets a 4xx with
 * `{ "error": "..." }`; the handler never rejects, whatever the request holds.
 */
export function adminHandler(
  view: AdminView,
  options: AdminOptions = {},
): (req: Request) => Promise<Response> {
  const admin = new Admin(view, options);
  return (req) => admin.handle(req);
}

/** A running admin server. */
export interface AdminServer {
  /** The address actually bound. */
  readonly addr: Addr;
  /** Ends event streams, cancels drain deadlines and stops the server. */
  stop(): Promise<void>;
}

/** Serves {@linkcode adminHandler} on `options.addr` through `net`; logs the bound address. */
export async function startAdmin(
  net: Net,
  view: AdminView,
  options: AdminOptions & { addr: Addr },
): Promise<AdminServer> {
  const controller = new AbortController();
  const handler = adminHandler(view, { ...options, signal: controller.signal });
  const server: HttpServer = await net.serveHttp(options.addr, handler);
  log.info("admin listening on {addr}{auth}", {
    addr: formatAddr(server.addr),
    auth: options.token === undefined ? "" : " (token required)",
  });
  let stopping: Promise<void> | undefined;
  return {
    addr: server.addr,
    stop: () => {
      stopping ??= (async () => {
        controller.abort();
        view.monitor.events.close();
        await server.shutdown();
        log.info("admin stopped");
      })();
      return stopping;
    },
  };
}

class Admin {
  readonly #lb: AdminLb;
  readonly #monitor: LbMonitor;
  readonly #options: AdminOptions;
  readonly #deadlines = new Map<number, { timer: ReturnType<typeof setTimeout>; atMs: number }>();
  #changes: Promise<unknown> = Promise.resolve();

  constructor(view: AdminView, options: AdminOptions) {
    this.#lb = view.lb;
    this.#monitor = view.monitor;
    this.#options = options;
    options.signal?.addEventListener("abort", () => {
      for (const { timer } of this.#deadlines.values()) clearTimeout(timer);
      this.#deadlines.clear();
    }, { once: true });
  }

  async handle(req: Request): Promise<Response> {
    try {
      return await this.#route(req);
    } catch (err) {
      if (err instanceof HttpError) return json(err.status, { error: err.message }, err.headers);
      // A bug, not a bad request: say so, never take the load balancer down.
      log.error("admin: {method} {url} failed: {error}", {
        method: req.method,
        url: req.url,
        error: (err as Error)?.message ?? String(err),
      });
      return json(500, { error: "internal error" });
    }
  }

  async #route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method;
    if (path === "/") {
      allow(method, ["GET", "HEAD"]);
      // The page holds no data; it asks for the token and sends it with every API call.
      return new Response(method === "HEAD" ? null : DASHBOARD_HTML, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": "no-store",
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
        },
      });
    }
    this.#authorize(req);
    // What workers have not reported yet must show: the table is read right after.
    await this.#lb.sync?.();
    const parts = path.split("/").slice(1);
    if (path === "/metrics") {
      allow(method, ["GET"]);
      return new Response(this.#monitor.metrics.render(this.#lb), {
        headers: {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
        },
      });
    }
    if (parts[0] !== "api") throw new HttpError(404, `No route ${url.pathname}`);
    const [, resource, idText, sub, ...rest] = parts;
    if (rest.length > 0) throw new HttpError(404, `No route ${url.pathname}`);
    if (resource === "connections" && sub === undefined) {
      if (idText === undefined) {
        allow(method, ["GET", "DELETE"]);
        return method === "GET" ? this.#listConnections(url) : this.#closeConnections(url);
      }
      const id = parseId(idText, "connection");
      allow(method, ["GET", "DELETE"]);
      return method === "GET" ? this.#getConnection(id) : this.#closeConnection(id);
    }
    if (resource === "backends") {
      if (idText === undefined) {
        allow(method, ["GET", "POST"]);
        return method === "GET" ? this.#listBackends() : await this.#addBackend(req);
      }
      const id = parseId(idText, "backend");
      if (sub === "impact") {
        allow(method, ["GET"]);
        return this.#impact(id, url);
      }
      if (sub !== undefined) throw new HttpError(404, `No route ${url.pathname}`);
      allow(method, ["GET", "PATCH", "DELETE"]);
      if (method === "GET") return json(200, this.#backendView(this.#backend(id)));
      if (method === "PATCH") return await this.#patchBackend(id, req);
      return await this.#removeBackend(id, url);
    }
    if (resource === "events" && sub === undefined) {
      allow(method, ["GET"]);
      if (idText === "recent") return json(200, { events: this.#monitor.events.recent() });
      if (idText !== undefined) throw new HttpError(404, `No route ${url.pathname}`);
      return new Response(this.#monitor.events.subscribe(), {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-store",
          "x-accel-buffering": "no",
        },
      });
    }
    throw new HttpError(404, `No route ${url.pathname}`);
  }

  #authorize(req: Request): void {
    const token = this.#options.token;
    if (token === undefined) return;
    const header = req.headers.get("authorization") ?? "";
    const given = /^Bearer +([^\s]+) *$/i.exec(header)?.[1] ?? "";
    // Compared even when absent, so a missing header and a wrong one take the same time.
    if (!timingSafeEqual(given, token)) {
      throw new HttpError(401, "unauthorized", { "www-authenticate": "Bearer" });
    }
  }

  // --- connections ---

  #listConnections(url: URL): Response {
    const limit = intParam(url, "limit", 1, MAX_LIMIT) ?? DEFAULT_LIMIT;
    const byBackend = this.#backendFilter(url);
    const client = url.searchParams.get("client");
    const matched = [...this.#lb.nat.rows()].filter((row) =>
      (byBackend === undefined || byBackend(row.backendId, formatAddr(row.backend))) &&
      (client === null || formatAddr(row.client).includes(client))
    );
    return json(200, {
      total: this.#lb.nat.size,
      matched: matched.length,
      connections: matched.slice(0, limit).map((row) => this.#monitor.connection(row)),
    });
  }

  #getConnection(id: number): Response {
    const row = this.#lb.nat.get(id);
    if (row === undefined) throw new HttpError(404, `No connection ${id}`);
    return json(200, this.#monitor.connection(row));
  }

  #closeConnection(id: number): Response {
    if (!this.#lb.closeConnection(id, "closed by admin")) {
      throw new HttpError(404, `No connection ${id}`);
    }
    log.info("admin: closing connection {id}", { id });
    return json(200, { closed: 1 });
  }

  #closeConnections(url: URL): Response {
    const text = url.searchParams.get("backend");
    if (text === null) {
      throw new HttpError(400, "Give ?backend=<id> to close a backend's connections");
    }
    const backend = this.#backend(parseId(text, "backend"));
    const spreadMs = intParam(url, "spreadMs", 0, 3_600_000) ?? 0;
    const closed = this.#lb.closeBackendConnections(backend.id, "closed by admin", spreadMs);
    log.info("admin: closing {closed} connections of {backend} over {spreadMs} ms", {
      closed,
      backend: formatAddr(backend.addr),
      spreadMs,
    });
    return json(200, { closed, spreadMs });
  }

  /** `?backend=` as an id or an address; undefined when absent. */
  #backendFilter(url: URL): ((id: number, address: string) => boolean) | undefined {
    const text = url.searchParams.get("backend");
    if (text === null) return undefined;
    if (/^\d+$/.test(text)) {
      const id = Number(text);
      return (rowId) => rowId === id;
    }
    return (_, address) => address === text;
  }

  // --- backends ---

  #backend(id: number): Backend {
    const backend = this.#lb.pool.get(id);
    if (backend === undefined) throw new HttpError(404, `No backend ${id}`);
    return backend;
  }

  #backendView(backend: Backend): Record<string, unknown> {
    const bytes = this.#monitor.metrics.closedBytes(backend);
    for (const row of this.#lb.nat.rows()) {
      if (row.backendId !== backend.id) continue;
      bytes.up += row.bytesUp;
      bytes.down += row.bytesDown;
    }
    const lastCheck = this.#monitor.lastCheck(backend.id);
    return {
      ...backendSummary(backend),
      maxConn: backend.maxConn,
      active: backend.active,
      total: backend.total,
      bytesUp: bytes.up,
      bytesDown: bytes.down,
      failures: backend.connectFailures,
      lastCheck: lastCheck === undefined ? null : { atMs: lastCheck.atMs, ok: lastCheck.ok },
      drainDeadlineMs: this.#deadlines.get(backend.id)?.atMs ?? null,
    };
  }

  #listBackends(): Response {
    return json(200, {
      balance: this.#lb.config.balance,
      backends: this.#lb.pool.all().map((backend) => this.#backendView(backend)),
    });
  }

  async #addBackend(req: Request): Promise<Response> {
    const body = await readJson(req, this.#options.maxBodyBytes);
    checkKeys(body, ["address", "weight", "state", "maxconn", "send-proxy"]);
    if (typeof body.address !== "string") {
      throw new HttpError(400, 'Missing "address": expected "host:port"');
    }
    const config: BackendConfig = {
      addr: field(() => parseHostPort(body.address as string, "address")),
      ...backendFields(body),
    };
    if (body["send-proxy"] !== undefined) {
      config.sendProxy = field(() => parseProxyVersion(scalar(body["send-proxy"]), "send-proxy"));
    }
    const address = formatAddr(config.addr);
    const result = await this.#change((current) => {
      if (current.backends.some((b) => formatAddr(b.addr) === address)) {
        throw new HttpError(409, `Backend ${address} is already configured`);
      }
      if (current.backends.length >= MAX_BACKENDS) {
        throw new HttpError(409, `Cannot add backend ${address}: ${MAX_BACKENDS} is the most`);
      }
      return { ...current, backends: [...current.backends, config] };
    });
    const added = result.added.length > 0
      ? result.added
      // Re-adding a backend that was being removed keeps it (and its connections).
      : this.#lb.pool.all().filter((b) => b.name === address);
    log.info("admin: backend {address} added", { address });
    return json(201, { backends: added.map((backend) => this.#backendView(backend)) });
  }

  async #patchBackend(id: number, req: Request): Promise<Response> {
    const backend = this.#backend(id);
    const body = await readJson(req, this.#options.maxBodyBytes);
    checkKeys(body, ["weight", "state", "maxconn", "deadlineMs", "spreadMs"]);
    const update = backendFields(body);
    if (Object.keys(update).length === 0) {
      throw new HttpError(400, "Give weight, state or maxconn");
    }
    const deadlineMs = optionalInt(body.deadlineMs, "deadlineMs", 0, 86_400_000);
    const spreadMs = optionalInt(body.spreadMs, "spreadMs", 0, 3_600_000);
    if ((deadlineMs !== undefined || spreadMs !== undefined) && update.state !== "drain") {
      throw new HttpError(400, 'deadlineMs and spreadMs go with "state": "drain"');
    }
    if (backend.removing) throw new HttpError(409, `Backend ${id} is being removed`);
    await this.#change((current) => {
      const index = configIndex(current, backend);
      const backends = current.backends.map((b, i) => i === index ? { ...b, ...update } : b);
      return { ...current, backends };
    });
    if (update.state !== undefined && update.state !== "drain") this.#cancelDeadline(id);
    if (deadlineMs !== undefined) this.#scheduleDeadline(backend, deadlineMs, spreadMs);
    log.info("admin: backend {backend} changed: {change}", {
      backend: formatAddr(backend.addr),
      change: JSON.stringify(update),
    });
    return json(200, this.#backendView(backend));
  }

  async #removeBackend(id: number, url: URL): Promise<Response> {
    const backend = this.#backend(id);
    const deadlineMs = intParam(url, "deadlineMs", 0, 86_400_000);
    const spreadMs = intParam(url, "spreadMs", 0, 3_600_000);
    if (backend.removing) throw new HttpError(409, `Backend ${id} is being removed`);
    await this.#change((current) => {
      const index = configIndex(current, backend);
      if (current.backends.length === 1) {
        throw new HttpError(409, "Cannot remove the last backend");
      }
      return { ...current, backends: current.backends.filter((_, i) => i !== index) };
    });
    if (deadlineMs !== undefined) this.#scheduleDeadline(backend, deadlineMs, spreadMs);
    const gone = this.#lb.pool.get(id) === undefined;
    log.info("admin: backend {backend} removed ({active} connections draining)", {
      backend: formatAddr(backend.addr),
      active: backend.active,
    });
    return json(200, { id, removed: true, draining: gone ? 0 : backend.active, gone });
  }

  #impact(id: number, url: URL): Response {
    const backend = this.#backend(id);
    const newWeight = intParam(url, "weight", 1, 1000) ?? 0;
    const balance = this.#lb.config.balance;
    // The share is over the backends that take new clients now.
    const candidates = this.#lb.pool.candidates();
    const movedShare = balance === "source-hash"
      ? sourceHashMovedShare(candidates, id, newWeight)
      : balance === "maglev"
      ? maglevMovedShare(candidates, id, newWeight)
      : null;
    const rows = [...this.#lb.nat.rows()].filter((row) => row.backendId === id);
    const hashing = movedShare !== null;
    const change = newWeight === 0 ? "remove" : "reweight";
    return json(200, {
      id,
      address: formatAddr(backend.addr),
      balance,
      change,
      weight: backend.weight,
      newWeight,
      connections: rows.length,
      clients: new Set(rows.map((row) => row.client.hostname)).size,
      movedShare,
      note: hashing
        ? "movedShare: share of client IPs whose backend would change; open connections stay until they reconnect"
        : change === "remove"
        ? `${balance} does not pin clients: the open connections drain, new clients go to the others`
        : `${balance} does not pin clients: open connections stay, new ones follow the new weight`,
    });
  }

  /** Applies `change` (to the file first, when there is one), then reloads; one at a time. */
  #change(change: ConfigChange): Promise<ReconcileResult> {
    const run = this.#changes.then(async () => {
      let next: LbConfig;
      const save = this.#options.saveConfig;
      if (save === undefined) next = change(this.#lb.config);
      else {
        try {
          next = await save(change);
        } catch (err) {
          if (err instanceof ConfigFileError) throw new HttpError(409, err.message);
          throw err;
        }
      }
      return await this.#lb.reload(next);
    });
    this.#changes = run.catch(() => {});
    return run;
  }

  #scheduleDeadline(backend: Backend, deadlineMs: number, spreadMs = DEADLINE_SPREAD_MS): void {
    this.#cancelDeadline(backend.id);
    if (this.#options.signal?.aborted) return;
    const timer = setTimeout(() => {
      this.#deadlines.delete(backend.id);
      const current = this.#lb.pool.get(backend.id);
      if (current === undefined || (current.state === "ready" && !current.removing)) return;
      const closed = this.#lb.closeBackendConnections(backend.id, "drain deadline", spreadMs);
      log.info("drain deadline of {backend}: closing {closed} connections over {spreadMs} ms", {
        backend: formatAddr(backend.addr),
        closed,
        spreadMs,
      });
      this.#monitor.publish("drain-deadline", { ...backendSummary(current), closed, spreadMs });
    }, deadlineMs);
    this.#deadlines.set(backend.id, { timer, atMs: Date.now() + deadlineMs });
  }

  #cancelDeadline(id: number): void {
    const deadline = this.#deadlines.get(id);
    if (deadline === undefined) return;
    clearTimeout(deadline.timer);
    this.#deadlines.delete(id);
  }
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) {
    throw new HttpError(405, `Method ${method} not allowed here (${methods.join(", ")})`, {
      allow: methods.join(", "),
    });
  }
}

function parseId(text: string, what: string): number {
  if (!/^[1-9]\d{0,14}$/.test(text)) {
    throw new HttpError(400, `Cannot parse ${what} id "${text.slice(0, 40)}": expected a number`);
  }
  return Number(text);
}

/** Runs a parser from `cli/args.ts`, turning its UsageError into a 400. */
function field<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

function scalar(value: unknown): string {
  if (typeof value === "number" || typeof value === "string") return String(value);
  throw new HttpError(400, `Cannot use ${JSON.stringify(value)?.slice(0, 40)}: expected a value`);
}

function intParam(url: URL, name: string, min: number, max: number): number | undefined {
  const text = url.searchParams.get(name);
  return text === null ? undefined : field(() => parseInteger(text, `?${name}`, min, max));
}

function optionalInt(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  return field(() => parseInteger(scalar(value), name, min, max));
}

/** The weight, state and maxconn given in a request body. */
function backendFields(body: Record<string, unknown>): Omit<BackendConfig, "addr"> {
  const out: Omit<BackendConfig, "addr"> = {};
  const weight = optionalInt(body.weight, "weight", 1, 1000);
  if (weight !== undefined) out.weight = weight;
  const maxConn = optionalInt(body.maxconn, "maxconn", 0, 10_000_000);
  if (maxConn !== undefined) out.maxConn = maxConn;
  if (body.state !== undefined) {
    if (!(BACKEND_STATES as readonly unknown[]).includes(body.state)) {
      throw new HttpError(
        400,
        `Cannot use state ${JSON.stringify(body.state)?.slice(0, 40)}: expected ${
          BACKEND_STATES.join(", ")
        }`,
      );
    }
    out.state = body.state as BackendState;
  }
  return out;
}

function checkKeys(body: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) {
      throw new HttpError(400, `Unknown key "${key.slice(0, 40)}" (known: ${known.join(", ")})`);
    }
  }
}

/** The index of `backend`'s entry in `config.backends` (by its configured name). */
function configIndex(config: LbConfig, backend: Backend): number {
  const index = config.backends.findIndex((b) => formatAddr(b.addr) === backend.name);
  if (index === -1) {
    throw new HttpError(409, `Backend ${backend.id} (${backend.name}) is not in the config`);
  }
  return index;
}

/** Reads a JSON object body of at most `maxBytes`; 413 over it, 400 if not a JSON object. */
async function readJson(
  req: Request,
  maxBytes = MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await req.body?.cancel().catch(() => {});
    throw new HttpError(413, `Body over ${maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body !== null) {
    const reader = req.body.getReader();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new HttpError(413, `Body over ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new HttpError(400, "Cannot parse the body: expected a JSON object");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "Cannot use the body: expected a JSON object");
  }
  return value as Record<string, unknown>;
}

/** The environment variable `--admin-token` may come from instead. */
export const ADMIN_TOKEN_ENV = "L4CHAT_ADMIN_TOKEN";

/** The admin token to use, or why there is none. */
export interface AdminTokenChoice {
  token?: string;
  /** Set when the environment could not be read (Deno without `--allow-env=...`). */
  envError?: string;
}

/**
 * Chooses the admin token: `flag` (`--admin-token`) if given, else the environment variable
 * {@linkcode ADMIN_TOKEN_ENV} read by `readEnv`, which may throw (Deno denies it without
 * `--allow-env=L4CHAT_ADMIN_TOKEN`). An empty value is no token.
 */
export function chooseAdminToken(
  flag: string | undefined,
  readEnv: () => string | undefined,
): AdminTokenChoice {
  if (flag !== undefined && flag !== "") return { token: flag };
  try {
    const value = readEnv();
    return value === undefined || value === "" ? {} : { token: value };
  } catch (err) {
    return { envError: (err as Error).message };
  }
}
