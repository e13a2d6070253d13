/**
 * Helpers of the admin endpoint's end-to-end tests: echo backends, an `lb --admin` process
 * and a small HTTP client for its API.
 *
 * @module
 */
import { L4chat } from "./_helpers.ts";

/** A backend in the test process that echoes every byte back until the client closes. */
export class EchoBackend implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #serving: Promise<void>;

  constructor() {
    this.listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#serving = this.#serve();
  }

  get port(): number {
    return this.listener.addr.port;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  async #serve(): Promise<void> {
    const handlers: Promise<void>[] = [];
    try {
      for await (const conn of this.listener) handlers.push(this.#handle(conn));
    } catch {
      // Closed.
    }
    await Promise.all(handlers);
  }

  async #handle(conn: Deno.TcpConn): Promise<void> {
    this.#conns.add(conn);
    try {
      const buf = new Uint8Array(16 * 1024);
      let n;
      while ((n = await conn.read(buf)) !== null) {
        let written = 0;
        while (written < n) written += await conn.write(buf.subarray(written, n));
      }
    } catch {
      // Reset by a probe or closed below.
    } finally {
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.listener.close();
    } catch {
      // Already closed.
    }
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#serving;
  }
}

/** A running `l4chat lb --admin 127.0.0.1:0`, with its ports. */
export interface AdminLb {
  proc: L4chat;
  /** The load balancer's port. */
  port: number;
  /** The admin endpoint's port. */
  adminPort: number;
}

/**
 * Starts `l4chat lb` with `args` (which must include the backends or `--config`) plus
 * `--admin 127.0.0.1:0`, and waits until both the load balancer and the admin endpoint listen.
 */
export async function startAdminLb(
  args: string[],
  options?: { env?: Record<string, string>; permissions?: string[] },
): Promise<AdminLb> {
  const proc = new L4chat(["lb", ...args, "--admin", "127.0.0.1:0"], options);
  const lb = await proc.stderr.waitFor(/load balancer listening on .*:(\d+) /);
  const admin = await proc.stderr.waitFor(/admin listening on 127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(lb[1]), adminPort: Number(admin[1]) };
}

/** A response read in full. */
export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Sends one request to the admin endpoint on `port` and reads the whole response. */
export async function api(
  port: number,
  method: string,
  path: string,
  options: { body?: unknown; token?: string } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Parses Prometheus text into `name{labels}` -> value. */
export function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match === null) throw new Error(`Cannot parse metrics line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}
