/**
 * Helpers of the admin endpoint's end-to-end tests: an `lb --admin` process and a small HTTP
 * client for its API.
 *
 * @module
 */
import { type L4chat, runLb } from "./_helpers.ts";

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
  options?: { env?: Record<string, string>; permissions?: readonly string[] },
): Promise<AdminLb> {
  const { proc, port } = await runLb([...args, "--admin", "127.0.0.1:0"], options);
  const admin = await proc.stderr.waitFor(/admin listening on 127\.0\.0\.1:(\d+)/);
  return { proc, port, adminPort: Number(admin[1]) };
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
