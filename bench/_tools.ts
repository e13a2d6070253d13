/**
 * The load generators of the proxy workloads (iperf3, wrk) and the parsers of what they print.
 *
 * @module
 */
import { runCapture } from "./_procs.ts";

/** What one iperf3 run measured. */
export interface BulkResult {
  /** Received throughput, bits per second. */
  bitsPerSecond: number;
  /** Bytes the receiver got. */
  bytes: number;
}

/** Runs `iperf3 -c` against `port` with `streams` parallel streams for `seconds`. */
export async function runIperf(
  port: number,
  streams: number,
  seconds: number,
): Promise<BulkResult> {
  const out = await runCapture(
    "iperf3",
    ["-c", "127.0.0.1", "-p", String(port), "-P", String(streams), "-t", String(seconds), "-J"],
    (seconds + 20) * 1000,
  );
  return parseIperf(out.stdout);
}

/** Reads the receiver's totals from `iperf3 -J` output. */
export function parseIperf(json: string): BulkResult {
  const data = JSON.parse(json);
  if (data.error) throw new Error(`iperf3: ${data.error}`);
  const sum = data.end.sum_received;
  return { bitsPerSecond: sum.bits_per_second, bytes: sum.bytes };
}

/** What one wrk run measured. */
export interface WrkResult {
  requestsPerSecond: number;
  /** Latency percentiles in ms. */
  p50Ms: number;
  p99Ms: number;
  /** Socket errors and non-2xx answers. */
  errors: number;
}

/** Runs wrk against `port` for `seconds` with `connections`; `close` sends `Connection: close`. */
export async function runWrk(
  port: number,
  options: { seconds: number; connections: number; close?: boolean },
): Promise<WrkResult> {
  const args = [
    "-t1",
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--latency",
    "--timeout",
    "5s",
  ];
  if (options.close) args.push("-H", "Connection: close");
  args.push(`http://127.0.0.1:${port}/`);
  const out = await runCapture("wrk", args, (options.seconds + 20) * 1000);
  if (out.code !== 0) throw new Error(`wrk exited with ${out.code}: ${out.stderr}`);
  return parseWrk(out.stdout);
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function durationMs(text: string): number {
  const match = text.match(/^([\d.]+)(us|ms|s|m)$/);
  if (!match) throw new Error(`wrk: cannot parse duration "${text}"`);
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** Reads requests/s, p50, p99 and errors from `wrk --latency` output. */
export function parseWrk(text: string): WrkResult {
  const rps = text.match(/Requests\/sec:\s+([\d.]+)/);
  const p50 = text.match(/^\s+50%\s+(\S+)/m);
  const p99 = text.match(/^\s+99%\s+(\S+)/m);
  if (!rps || !p50 || !p99) throw new Error(`wrk: unexpected output:\n${text}`);
  let errors = 0;
  const socket = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  if (socket) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = text.match(/Non-2xx or 3xx responses: (\d+)/);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: durationMs(p50[1]),
    p99Ms: durationMs(p99[1]),
    errors,
  };
}
