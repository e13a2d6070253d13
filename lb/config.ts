import { parseDurationMs, parseHostPort, parseInteger } from "../cli/args.ts";
import { UsageError } from "../cli/errors.ts";
import { type Addr, formatAddr } from "../net/mod.ts";
import type { BackendConfig, BackendState } from "./backend.ts";
import { BALANCERS } from "./balancers/mod.ts";
import { type JsoncNode, type JsoncSyntaxError, parseJsonc } from "./_jsonc.ts";

/**
 * Everything a load balancer runs with. The command line and the config file (`--config`,
 * JSONC) both produce it; settings use the flags' names in both.
 */
export interface LbConfig {
  /** Address to listen on; port 0 picks a free port. */
  listen: Addr;
  /** A `--balance` name. */
  balance: string;
  /** Timeout of one backend connect, in ms. */
  connectTimeoutMs: number;
  /** Backends tried for one client before it is closed. */
  connectTries: number;
  /**
   * How long a new backend connection's last handshake ACK waits for the client's first bytes
   * to carry it while the proxy is busy, in ms; 0 sends it when the relay starts.
   */
  ackWaitMs: number;
  /**
   * How long the backend's end of stream waits for the client to close first before it is
   * passed on, in ms; 0 passes it on at once.
   */
  finWaitMs: number;
  /** Time between two health checks of a backend, in ms. */
  hcIntervalMs: number;
  /** Timeout of one health check, in ms. */
  hcTimeoutMs: number;
  /** Failures in a row that mark a backend dead. */
  hcFall: number;
  /** Successes in a row that bring a dead backend back. */
  hcRise: number;
  /** Connections proxied at once by the whole load balancer; 0 is no limit. */
  maxConns: number;
  /** Connections at once from one client IP; 0 is no limit. */
  maxConnsPerIp: number;
  /** Close a connection with no traffic either way for this long, in ms; 0 is off. */
  idleTimeoutMs: number;
  /** Close connections older than this (with jitter), in ms; 0 is off. */
  maxLifetimeMs: number;
  /** Ramp a returning backend's share up over this long, in ms; 0 is off. */
  slowstartMs: number;
  /** How long a graceful stop lets connections finish, in ms. */
  graceMs: number;
  /**
   * Threads that proxy, each with its own listener on the port (`SO_REUSEPORT`); 1 is the
   * main thread alone. Read at start only.
   */
  workers: number;
  /** Send a PROXY header of this version to every backend (a backend may say otherwise). */
  sendProxy?: 1 | 2;
  /** The backends, in order. */
  backends: BackendConfig[];
}

/** How a setting is written and checked, shared by the command line and the config file. */
interface Setting {
  /** Name as a flag (without `--`) and as a config key. */
  name: string;
  /** The {@linkcode LbConfig} field it fills. */
  field: keyof LbConfig;
  /** The default, as written on the command line. */
  fallback: string;
  /** Checks a value (a flag's text, or a config value); throws UsageError. */
  parse(value: string | number, what: string): unknown;
}

/** Most `--workers`. */
export const WORKERS_MAX = 64;

/** Longest duration a timer can wait (2^31 - 1 ms, about 24 days); longer ones fire at once. */
const MAX_DURATION_MS = 2 ** 31 - 1;

const duration = (allowZero: boolean) => (value: string | number, what: string) => {
  const ms = parseDurationMs(String(value), what, allowZero);
  if (ms > MAX_DURATION_MS) {
    throw new UsageError(`Cannot use ${what} "${value}": expected at most 596h`);
  }
  return ms;
};
/**
 * Longest `--ack-wait` and `--fin-wait`: the kernel sends a held ACK by itself after 200 ms,
 * and a packet held longer than that is no longer a short wait.
 */
const HOLD_MAX_MS = 200;

function parseHold(value: string | number, what: string): number {
  const ms = parseDurationMs(String(value), what, true);
  if (ms > HOLD_MAX_MS) {
    throw new UsageError(`Cannot use ${what} "${value}": expected at most ${HOLD_MAX_MS}ms`);
  }
  return ms;
}
const integer = (min: number, max: number) => (value: string | number, what: string) =>
  parseInteger(String(value), what, min, max);

/** Parses a PROXY protocol version: `v1`, `v2` (or `1`, `2`). */
export function parseProxyVersion(value: string | number, what: string): 1 | 2 {
  const text = String(value);
  if (text === "v1" || text === "1") return 1;
  if (text === "v2" || text === "2") return 2;
  throw new UsageError(`Cannot use ${what} "${text}": expected v1 or v2`);
}

function parseBalance(value: string | number, what: string): string {
  const name = String(value);
  if (name in BALANCERS) return name;
  throw new UsageError(
    `Cannot use ${what} "${name}": expected ${Object.keys(BALANCERS).join(", ")}`,
  );
}

/** Every setting but `listen` and `backends`, in `--help` order. */
export const SETTINGS: readonly Setting[] = [
  { name: "balance", field: "balance", fallback: "round-robin", parse: parseBalance },
  {
    name: "connect-timeout",
    field: "connectTimeoutMs",
    fallback: "2s",
    parse: duration(false),
  },
  { name: "connect-tries", field: "connectTries", fallback: "3", parse: integer(1, 100) },
  { name: "ack-wait", field: "ackWaitMs", fallback: "1ms", parse: parseHold },
  { name: "fin-wait", field: "finWaitMs", fallback: "0", parse: parseHold },
  { name: "hc-interval", field: "hcIntervalMs", fallback: "5s", parse: duration(false) },
  { name: "hc-timeout", field: "hcTimeoutMs", fallback: "2s", parse: duration(false) },
  { name: "hc-fall", field: "hcFall", fallback: "3", parse: integer(1, 1000) },
  { name: "hc-rise", field: "hcRise", fallback: "1", parse: integer(1, 1000) },
  { name: "max-conns", field: "maxConns", fallback: "10000", parse: integer(0, 10_000_000) },
  {
    name: "max-conns-per-ip",
    field: "maxConnsPerIp",
    fallback: "0",
    parse: integer(0, 10_000_000),
  },
  { name: "idle-timeout", field: "idleTimeoutMs", fallback: "0", parse: duration(true) },
  { name: "max-lifetime", field: "maxLifetimeMs", fallback: "0", parse: duration(true) },
  { name: "slowstart", field: "slowstartMs", fallback: "0", parse: duration(true) },
  { name: "grace", field: "graceMs", fallback: "30s", parse: duration(true) },
  { name: "workers", field: "workers", fallback: "1", parse: integer(1, WORKERS_MAX) },
  { name: "send-proxy", field: "sendProxy", fallback: "", parse: parseProxyVersion },
];

/** The default port of `lb`, as the original's. */
export const DEFAULT_PORT = 20000;

/** A config with every setting at its default, listening on `listen`, with `backends`. */
export function defaultConfig(listen: Addr, backends: BackendConfig[]): LbConfig {
  const config: Record<string, unknown> = { listen, backends };
  for (const setting of SETTINGS) {
    config[setting.field] = setting.fallback === ""
      ? undefined
      : setting.parse(setting.fallback, `--${setting.name}`);
  }
  return config as unknown as LbConfig;
}

/** Sets `name` (a flag name) in `config` from `value`; throws UsageError naming `what`. */
export function applySetting(
  config: LbConfig,
  name: string,
  value: string | number,
  what = `--${name}`,
): void {
  const setting = SETTINGS.find((candidate) => candidate.name === name);
  if (setting === undefined) throw new UsageError(`Unknown setting "${name}"`);
  (config as unknown as Record<string, unknown>)[setting.field] = setting.parse(value, what);
}

/** A problem found in a config file, with where it is. */
export interface ConfigProblem {
  line: number;
  column: number;
  /** Where in the structure: `backends[1].weight`. */
  path: string;
  message: string;
}

/** Formats a problem as `file:line:column: path: message`. */
export function formatProblem(file: string, problem: ConfigProblem): string {
  const path = problem.path === "" ? "" : `${problem.path}: `;
  return `${file}:${problem.line}:${problem.column}: ${path}${problem.message}`;
}

/** The result of {@linkcode parseConfigText}: a config, or every problem found. */
export type ConfigParse =
  | { ok: true; config: LbConfig }
  | { ok: false; problems: ConfigProblem[] };

/** Largest config file read, in bytes. */
export const CONFIG_MAX_BYTES = 1024 * 1024;

const BACKEND_STATES: readonly BackendState[] = ["ready", "drain", "maint"];
const BACKEND_KEYS = ["address", "weight", "state", "maxconn", "send-proxy"];

/**
 * Parses the text of a config file (JSONC: JSON with comments and trailing commas). Reports
 * every problem it finds, not just the first. Never throws.
 */
export function parseConfigText(text: string): ConfigParse {
  if (text.length > CONFIG_MAX_BYTES) {
    return {
      ok: false,
      problems: [{ line: 1, column: 1, path: "", message: "file over 1 MiB" }],
    };
  }
  let root: JsoncNode;
  try {
    root = parseJsonc(text);
  } catch (err) {
    const e = err as JsoncSyntaxError;
    return {
      ok: false,
      problems: [{ line: e.line, column: e.column, path: "", message: e.message }],
    };
  }
  const problems: ConfigProblem[] = [];
  const problem = (node: JsoncNode, path: string, message: string) =>
    problems.push({ line: node.line, column: node.column, path, message });
  if (root.kind !== "object") {
    problem(root, "", "expected an object with listen, backends and settings");
    return { ok: false, problems };
  }
  const config = defaultConfig({ hostname: "0.0.0.0", port: DEFAULT_PORT }, []);
  let backends: { backend: BackendConfig; node: JsoncNode }[] = [];
  for (const [key, node] of root.entries) {
    try {
      if (key === "listen") {
        config.listen = parseListen(scalar(node, key));
      } else if (key === "backends") {
        backends = parseBackends(node, problem);
        config.backends = backends.map(({ backend }) => backend);
      } else if (SETTINGS.some((setting) => setting.name === key)) {
        if (node.kind === "null") continue;
        applySetting(config, key, scalar(node, key), key);
      } else {
        problem(
          node,
          key,
          `unknown setting (known: listen, backends, ${SETTINGS.map((s) => s.name).join(", ")})`,
        );
      }
    } catch (err) {
      problem(node, key, (err as Error).message);
    }
  }
  const backendsNode = root.entries.get("backends");
  if (backendsNode === undefined) {
    problem(root, "backends", "missing: list at least one backend");
  } else if (backendsNode.kind === "array" && backendsNode.items.length === 0) {
    problem(backendsNode, "backends", "empty: list at least one backend");
  }
  const seen = new Set<string>();
  for (const { backend, node } of backends) {
    const key = formatAddr(backend.addr);
    if (seen.has(key)) {
      const index = (backendsNode as { items: JsoncNode[] }).items.indexOf(node);
      problem(node, `backends[${index}]`, `duplicate backend ${key}`);
    }
    seen.add(key);
  }
  // Problems in the order they appear in the file.
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, config };
}

function scalar(node: JsoncNode, what: string): string | number {
  if (node.kind === "string" || node.kind === "number") return node.value;
  throw new UsageError(`expected a string or number for ${what}`);
}

function parseListen(value: string | number): Addr {
  const text = String(value);
  return parseHostPort(/^\d+$/.test(text) ? `:${text}` : text, "listen", true);
}

function parseBackends(
  node: JsoncNode,
  problem: (node: JsoncNode, path: string, message: string) => void,
): { backend: BackendConfig; node: JsoncNode }[] {
  if (node.kind !== "array") throw new UsageError("expected a list of backends");
  const backends: { backend: BackendConfig; node: JsoncNode }[] = [];
  for (const [index, item] of node.items.entries()) {
    const path = `backends[${index}]`;
    if (item.kind === "string") {
      try {
        backends.push({ backend: { addr: parseHostPort(item.value, "address") }, node: item });
      } catch (err) {
        problem(item, path, (err as Error).message);
      }
      continue;
    }
    if (item.kind !== "object") {
      problem(item, path, 'expected "host:port" or an object with an address');
      continue;
    }
    const backend: Partial<BackendConfig> = {};
    let ok = true;
    for (const [key, value] of item.entries) {
      try {
        const v = scalar(value, key);
        if (key === "address") backend.addr = parseHostPort(String(v), "address");
        else if (key === "weight") backend.weight = parseInteger(String(v), "weight", 1, 1000);
        else if (key === "maxconn") {
          backend.maxConn = parseInteger(String(v), "maxconn", 0, 10_000_000);
        } else if (key === "send-proxy") backend.sendProxy = parseProxyVersion(v, "send-proxy");
        else if (key === "state") {
          if (!(BACKEND_STATES as readonly string[]).includes(String(v))) {
            throw new UsageError(`expected ${BACKEND_STATES.join(", ")}`);
          }
          backend.state = v as BackendState;
        } else throw new UsageError(`unknown key (known: ${BACKEND_KEYS.join(", ")})`);
      } catch (err) {
        ok = false;
        problem(value, `${path}.${key}`, (err as Error).message);
      }
    }
    if (backend.addr === undefined) {
      if (ok) problem(item, path, 'missing "address"');
      continue;
    }
    if (ok) backends.push({ backend: backend as BackendConfig, node: item });
  }
  return backends;
}

/**
 * Writes `config` as config file text (JSON, which is valid JSONC), with settings that
 * differ from their defaults and every backend. Parsing the result gives `config` back.
 */
export function formatConfig(config: LbConfig): string {
  const defaults = defaultConfig(config.listen, []);
  const out: Record<string, unknown> = { listen: formatAddr(config.listen) };
  for (const setting of SETTINGS) {
    const value = config[setting.field];
    if (value === defaults[setting.field]) continue;
    out[setting.name] = formatSettingValue(setting.field, value);
  }
  out.backends = config.backends.map((backend) => {
    const entry: Record<string, unknown> = { address: formatAddr(backend.addr) };
    if (backend.weight !== undefined && backend.weight !== 1) entry.weight = backend.weight;
    if (backend.state !== undefined && backend.state !== "ready") entry.state = backend.state;
    if (backend.maxConn) entry.maxconn = backend.maxConn;
    if (backend.sendProxy !== undefined) entry["send-proxy"] = `v${backend.sendProxy}`;
    return entry;
  });
  return JSON.stringify(out, null, 2) + "\n";
}

function formatSettingValue(field: keyof LbConfig, value: unknown): unknown {
  if (field === "sendProxy") return `v${value}`;
  if (field.endsWith("Ms")) return `${value}ms`;
  return value;
}
