import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { type Addr, IO_MODES, type IoMode } from "../net/mod.ts";

/**
 * Parses a TCP port. `allowZero` accepts 0, which means "pick a free port" when binding.
 * Throws {@linkcode UsageError} naming `what` when `text` is not a whole number in range.
 */
export function parsePort(text: string, what: string, allowZero = false): number {
  const min = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(text)) {
    throw new UsageError(`Cannot parse ${what} "${text}": expected a port number`);
  }
  const port = Number(text);
  if (port < min || port > 65535) {
    throw new UsageError(`Cannot use ${what} "${text}": expected a port in ${min}..65535`);
  }
  return port;
}

/**
 * Checks a host name or IP literal and strips the brackets of an IPv6 literal written as
 * `[::1]`. A bare number is refused: it is a port in the wrong place, not a host (resolvers
 * would read `10010` as the IPv4 address 0.0.39.26).
 */
export function parseHost(text: string, what: string): string {
  const host = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (host === "" || /[\s/\[\]]/.test(host) || /^\d+$/.test(host)) {
    throw new UsageError(`Cannot parse ${what} "${text}": expected a host name or IP address`);
  }
  return host;
}

/**
 * Parses `host:port`, `[ipv6]:port` or `:port` (all interfaces). Throws
 * {@linkcode UsageError} naming `what`.
 */
export function parseHostPort(text: string, what: string, allowZero = false): Addr {
  const match = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d+)$/.exec(text);
  if (match === null) {
    throw new UsageError(`Cannot parse ${what} "${text}": expected host:port`);
  }
  const hostname = match[1] ?? (match[2] === "" ? "0.0.0.0" : match[2]);
  const port = Number(match[3]);
  if (port < (allowZero ? 0 : 1) || port > 65535) {
    // Quote the whole value, not just its port: that is what the user wrote.
    throw new UsageError(
      `Cannot use ${what} "${text}": expected a port in ${allowZero ? 0 : 1}..65535`,
    );
  }
  return { hostname, port };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Longest duration accepted, in ms: a timer set for longer (2^31 ms, ~24.8 days) fires at once. */
export const DURATION_MAX_MS = 2 ** 31 - 1;

/**
 * Parses a duration such as `5s`, `200ms`, `1.5m` or `2h` into milliseconds. A bare number
 * is seconds. `allowZero` accepts 0 (meaning "off" where a flag says so).
 */
export function parseDurationMs(text: string, what: string, allowZero = false): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (match === null) {
    throw new UsageError(
      `Cannot parse ${what} "${text}": expected a duration such as 500ms, 5s or 2m`,
    );
  }
  const ms = Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? "s"]);
  if (ms === 0 && !allowZero) {
    throw new UsageError(`Cannot use ${what} "${text}": expected a duration above zero`);
  }
  if (!(ms <= DURATION_MAX_MS)) {
    throw new UsageError(`Cannot use ${what} "${text}": expected at most 596h`);
  }
  return ms;
}

/** Parses a size such as `4096`, `64k`, `1m` or `1MiB` into bytes. */
export function parseBytes(text: string, what: string): number {
  const match = /^(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$/i.exec(text.trim());
  if (match === null) {
    throw new UsageError(
      `Cannot parse ${what} "${text}": expected a size such as 4096, 64KiB or 1MiB`,
    );
  }
  const unit = match[2].toLowerCase()[0] ?? "";
  const factor = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1;
  const bytes = Number(match[1]) * factor;
  if (bytes <= 0) throw new UsageError(`Cannot use ${what} "${text}": expected a size above zero`);
  if (!Number.isSafeInteger(bytes)) {
    throw new UsageError(`Cannot use ${what} "${text}": expected a size below 8 PiB`);
  }
  return bytes;
}

/** Parses a whole number in `min..max`. */
export function parseInteger(text: string, what: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text.trim())) {
    throw new UsageError(`Cannot parse ${what} "${text}": expected a whole number`);
  }
  const value = Number(text);
  if (value < min || value > max) {
    throw new UsageError(`Cannot use ${what} "${text}": expected ${min}..${max}`);
  }
  return value;
}

/** The options of {@linkcode parseFlags}, as `node:util` `parseArgs` takes them. */
export type FlagSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

/** Flags and positionals of one command line. */
export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` with `node:util` `parseArgs` (strict), turning its errors into one-line
 * {@linkcode UsageError}s such as `Unknown flag --prot`.
 */
export function parseFlags(args: string[], spec: FlagSpec): ParsedFlags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: spec,
      allowPositionals: true,
      strict: true,
      allowNegative: false,
    });
    return { values: values as ParsedFlags["values"], positionals };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const flag = /'(-[^' ]+)/.exec((err as Error).message)?.[1] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw new UsageError(`Unknown flag ${flag}`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw new UsageError(`Missing or bad value for ${flag}`);
    }
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      throw new UsageError("Unexpected argument");
    }
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
}

/** A Redis server to use, as {@linkcode parseRedisUrl} checked it. */
export interface RedisUrl {
  /** The URL to connect with. */
  url: string;
  /** The URL with any password replaced by `***`, for logs and messages. */
  display: string;
}

/**
 * Checks a Redis URL: `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS).
 * Throws {@linkcode UsageError} naming `what`, without echoing a password.
 */
export function parseRedisUrl(text: string, what: string): RedisUrl {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  const display = url === undefined || url.password === ""
    ? text
    : text.replace(`:${url.password}@`, ":***@");
  const fail = (detail: string) => {
    throw new UsageError(`Cannot parse ${what} "${display}": ${detail}`);
  };
  if (url === undefined || (url.protocol !== "redis:" && url.protocol !== "rediss:")) {
    return fail("expected redis://host:port");
  }
  if (url.hostname === "") return fail("expected a host after redis://");
  if (url.port !== "" && Number(url.port) === 0) return fail("expected a port in 1..65535");
  if (url.pathname !== "" && url.pathname !== "/" && !/^\/\d{1,2}$/.test(url.pathname)) {
    return fail("expected a database number such as /0 after the port");
  }
  if (url.search !== "" || url.hash !== "") return fail("expected no query or fragment");
  return { url: text, display };
}

/** The `--io` lines of a subcommand's help, whose descriptions start at `column`. */
export function ioHelp(column: number): string {
  const pad = " ".repeat(column);
  return [
    "  --io MODE".padEnd(column) + "sockets: uring (l4chat's own loop, its sockets on io_uring:",
    `${pad}Linux 6.6+ on x86-64; Deno with --allow-ffi, or Bun), epoll (that`,
    `${pad}loop on epoll alone: Linux; Deno with --allow-ffi, or Bun), runtime`,
    `${pad}(Deno's or Bun's own) or auto (the first of these that can run)`,
    `${pad}(default: auto)`,
  ].join("\n");
}

/**
 * Takes `--io MODE` (or `--io=MODE`) out of `args`, which `main.ts` needs before it loads the
 * network. Returns the mode (default `auto`) and the other arguments, in order. Throws
 * {@linkcode UsageError} for an unknown mode or a missing value.
 */
export function takeIoFlag(args: readonly string[]): { io: IoMode; rest: string[] } {
  let io: IoMode = "auto";
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    let value: string | undefined;
    if (arg === "--io") {
      value = args[++i];
      if (value === undefined) throw new UsageError("Missing value of --io");
    } else if (arg.startsWith("--io=")) {
      value = arg.slice("--io=".length);
    } else {
      rest.push(arg);
      continue;
    }
    if (!(IO_MODES as readonly string[]).includes(value)) {
      throw new UsageError(`Cannot parse --io "${value}": expected ${IO_MODES.join(", ")}`);
    }
    io = value as IoMode;
  }
  return { io, rest };
}
