import process from "node:process";
import { watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { readFile } from "node:fs/promises";
import { getLogger } from "@logtape/logtape";
import {
  type FlagSpec,
  ioHelp,
  parseFlags,
  parseHost,
  parseHostPort,
  parseInteger,
  parsePort,
} from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { FatalError, UsageError } from "../cli/errors.ts";
import {
  type LogFormat,
  type LogLevelName,
  parseLogFormat,
  parseLogLevel,
  setupLogging,
} from "../cli/log.ts";
import { onStopSignal } from "../cli/signals.ts";
import { type Addr, formatAddr } from "../net/mod.ts";
import {
  ADMIN_TOKEN_ENV,
  type AdminServer,
  chooseAdminToken,
  isLoopback,
  startAdmin,
} from "./admin.ts";
import type { BackendConfig, BackendState } from "./backend.ts";
import {
  applySetting,
  CONFIG_MAX_BYTES,
  type ConfigProblem,
  DEFAULT_PORT,
  defaultConfig,
  formatProblem,
  type LbConfig,
  parseConfigText,
  parseProxyVersion,
  SETTINGS,
  WORKERS_MAX,
} from "./config.ts";
import { updateConfigFile } from "./config_file.ts";
import { type LoadBalancer, runLb } from "./mod.ts";
import { LbMonitor } from "./monitor.ts";
import { runWorkers, WorkerStartError } from "./workers.ts";

const log = getLogger(["l4chat", "lb"]);

/** The one-line usage of `l4chat lb`. */
export const LB_USAGE =
  "usage: l4chat lb [<bind-ip>] <server> <port> [<server> <port> ...] [options] | lb --config FILE";

const fallback = (name: string) => SETTINGS.find((setting) => setting.name === name)!.fallback;

/** `l4chat lb --help`. */
export const LB_HELP = `${LB_USAGE}

Runs a layer-4 TCP load balancer: each client that connects is given a backend server,
and bytes are relayed both ways unchanged. The original's form works as it did:
  l4chat lb 172.18.136.132 172.18.158.107 10010 172.18.158.107 10011
(an odd first argument is the address to listen on; default 0.0.0.0).

Arguments:
  <bind-ip>                 address to listen on (IPv4, IPv6 such as "::" or "[::1]", a name)
  <server> <port>           a backend: host name, IPv4 or IPv6 address, and port; a name
                            with several addresses gives one backend per address
  <server> <port>,weight=N  the same with options after commas: weight=N (1..1000,
                            default 1), maxconn=N (0 is no limit), state=ready|drain|maint,
                            send-proxy=v1|v2

Options:
  --port PORT               port to listen on (default: ${DEFAULT_PORT}; 0 picks a free one)
  --config FILE             read listen address, settings and backends from a JSONC file
                            (keys are these flags' names); SIGHUP or a change of the file
                            reloads it in place; flags given here override the file
  --check                   with --config: check the file, print every problem, exit 2
  --balance NAME            how each new client is given a backend (default: ${
  fallback("balance")
}):
                              round-robin           in turn, in the order given
                              weighted-round-robin  in turn by weight, smoothly (nginx)
                              least-conn            fewest open connections per weight
                              p2c                   the less loaded of two drawn at random
                              source-hash           by client IP (rendezvous hashing)
                              maglev                by client IP (Maglev consistent hashing)
  --connect-timeout DUR     timeout of one backend connect (default: ${fallback("connect-timeout")})
  --connect-tries N         backends tried for one client before it is closed (default: ${
  fallback("connect-tries")
})
  --ack-wait DUR            how long a backend connection's last handshake ACK may wait for
                            the client's first bytes to carry it, so the backend is woken
                            once for both, while the proxy is busy (default: ${
  fallback("ack-wait")
}; at most
                            200ms; 0 sends it at once; a backend that speaks first, such
                            as SMTP or MySQL, hears of a client up to this much later)
  --fin-wait DUR            how long the end of a backend's stream may wait for the client
                            to close first, as an HTTP client does on a Connection: close
                            reply: then no shutdown is made and the TIME_WAIT is the
                            client's, which slows a busy client's connects (default:
                            ${
  fallback("fin-wait")
}, passed on at once; at most 200ms; a client that waits
                            for the end sees it this much later, up to 1 ms more)
  --hc-interval DUR         time between health checks of a backend (default: ${
  fallback("hc-interval")
})
  --hc-timeout DUR          timeout of one health check's TCP connect (default: ${
  fallback("hc-timeout")
});
                            checks start every interval and never overlap, so a dead
                            backend is marked dead within interval x fall + timeout
                            when timeout <= interval
  --hc-fall N               failures in a row (checks or client connects) that mark a
                            backend dead (default: ${fallback("hc-fall")})
  --hc-rise N               successful checks in a row that bring it back (default: ${
  fallback("hc-rise")
})
  --max-conns N             connections at once, whole load balancer; over it a new client
                            is closed at once (default: ${fallback("max-conns")}; 0 is no limit)
  --max-conns-per-ip N      connections at once from one client IP (default: ${
  fallback("max-conns-per-ip")
}, no limit)
  --idle-timeout DUR        close a connection with no traffic either way for this long
                            (default: ${fallback("idle-timeout")}, off)
  --max-lifetime DUR        close connections older than this, with up to 20% jitter, so
                            long-lived ones rebalance after backends are added (default: ${
  fallback("max-lifetime")
}, off)
  --slowstart DUR           ramp a backend that comes back (or is added) up to its full
                            share over this long (default: ${fallback("slowstart")}, off)
  --send-proxy VERSION      send a PROXY protocol header (v1 text or v2 binary) to backends
                            before the client's bytes, so they learn the real client
                            address (l4chat serv --accept-proxy reads it) (default: off)
  --grace DUR               on SIGTERM/SIGINT, how long connections may finish before the
                            rest are closed (spread over 1s); a second signal stops at once
                            (default: ${fallback("grace")})
  --workers N               threads that proxy (1..${WORKERS_MAX}), each listening on the port with
                            SO_REUSEPORT so the kernel spreads clients over them; health
                            checks, config and the admin endpoint stay in the main thread,
                            and limits count every worker's connections (default: ${
  fallback("workers")
}).
                            Under deno run it needs --allow-read of l4chat's files
  --admin ADDR:PORT         serve the admin API, Prometheus /metrics and the dashboard page
                            on this address (default: off; port 0 picks a free one, named
                            in the log as "admin listening on ADDR:PORT"); an address that
                            is not loopback needs a token. With --config, changes made
                            through the API are written back to the file
  --admin-token TOKEN       every admin request must carry "Authorization: Bearer TOKEN"
                            (the dashboard page asks for it); default: the environment
                            variable ${ADMIN_TOKEN_ENV}, which Deno reads only when run
                            with --allow-env=${ADMIN_TOKEN_ENV}
  --log-level LEVEL         error, warn, info or debug (debug logs every chunk relayed)
                            (default: info)
  --log-format FMT          text or json: one object per event, with client, backend,
                            duration and bytes on close (default: text)
${ioHelp(28)}
  -h, --help                show this help

Durations: 500ms, 5s, 2m, 1h (a bare number is seconds).
`;

/** Everything `l4chat lb` was asked to do. */
export interface LbCommand {
  /** The config to start with (the file's, with the flags applied over it). */
  config: LbConfig;
  /** The config file, if any. */
  configPath?: string;
  /** Settings given as flags, re-applied over the file at every reload. */
  overrides: Record<string, string>;
  /** `--port`, which wins over the file's listen port. */
  port?: number;
  /** Only check the config file. */
  check: boolean;
  logLevel: LogLevelName;
  logFormat: LogFormat;
  /** `--admin`: where to serve the admin endpoint, if anywhere. */
  admin?: Addr;
  /** `--admin-token`. */
  adminToken?: string;
}

const FLAGS: FlagSpec = {
  port: { type: "string" },
  config: { type: "string" },
  check: { type: "boolean" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  admin: { type: "string" },
  "admin-token": { type: "string" },
  ...Object.fromEntries(SETTINGS.map((setting) => [setting.name, { type: "string" as const }])),
};

const BACKEND_STATES: readonly string[] = ["ready", "drain", "maint"];

/** A positional that stands where a `<port>` goes (`10010`, `10010,weight=3`), not a host. */
const PORT_LIKE = /^\d*(?:,|$)/;

/**
 * Parses one positional backend: `<server>` and `<port>` or `<port>,key=value,...` with keys
 * weight, maxconn, state and send-proxy. Throws UsageError naming the server.
 */
export function parseBackend(server: string, portText: string): BackendConfig {
  const hostname = parseHost(server, "<server>");
  const [port, ...params] = portText.split(",");
  const config: BackendConfig = {
    addr: { hostname, port: parsePort(port, `<port> of server "${server}"`) },
  };
  const seen = new Set<string>();
  for (const param of params) {
    const [key, value] = param.split("=", 2);
    const what = `${key} of server "${server}"`;
    if (value === undefined || seen.has(key)) {
      throw new UsageError(
        `Cannot parse <port> of server "${server}" "${portText}": expected PORT or PORT,weight=N`,
      );
    }
    seen.add(key);
    if (key === "weight") config.weight = parseInteger(value, what, 1, 1000);
    else if (key === "maxconn") config.maxConn = parseInteger(value, what, 0, 10_000_000);
    else if (key === "send-proxy") config.sendProxy = parseProxyVersion(value, what);
    else if (key === "state" && BACKEND_STATES.includes(value)) {
      config.state = value as BackendState;
    } else {
      throw new UsageError(
        `Cannot parse <port> of server "${server}" "${portText}": unknown option "${param}" (weight, maxconn, state, send-proxy)`,
      );
    }
  }
  return config;
}

/**
 * Parses the arguments of `l4chat lb` (after the subcommand). With `--config`, the file is
 * read by {@linkcode loadLbConfig} instead. Throws UsageError.
 */
export function parseLbArgs(args: string[]): LbCommand {
  const { values, positionals } = parseFlags(args, FLAGS);
  const str = (name: string) => values[name] as string | undefined;
  const overrides: Record<string, string> = {};
  for (const setting of SETTINGS) {
    const value = str(setting.name);
    if (value !== undefined) overrides[setting.name] = value;
  }
  const portText = str("port");
  const adminText = str("admin");
  const adminToken = str("admin-token");
  if (adminToken !== undefined && adminText === undefined) {
    throw new UsageError("--admin-token needs --admin ADDR:PORT");
  }
  if (adminToken === "") throw new UsageError('Cannot use --admin-token "": expected a token');
  const common = {
    overrides,
    port: portText === undefined ? undefined : parsePort(portText, "--port", true),
    check: values.check === true,
    logLevel: parseLogLevel(str("log-level") ?? "info"),
    logFormat: parseLogFormat(str("log-format") ?? "text"),
    admin: adminText === undefined ? undefined : parseHostPort(adminText, "--admin", true),
    adminToken,
  };
  const configPath = str("config");
  if (configPath !== undefined) {
    if (positionals.length > 0) {
      throw new UsageError("Give backends in the --config file or as arguments, not both");
    }
    // Filled in by loadLbConfig; checked here so that bad flags fail before the file is read.
    const config = defaultConfig({ hostname: "0.0.0.0", port: DEFAULT_PORT }, []);
    applyOverrides(config, common);
    return { config, configPath, ...common };
  }
  if (common.check) throw new UsageError("--check needs --config FILE");
  const rest = [...positionals];
  if (rest.length <= 1) {
    throw new UsageError("Missing backend: give at least one <server> <port>");
  }
  // The original's form starts with the address to listen on: there is one when the second
  // argument is not a port (with or without its options). Deciding by shape rather than by
  // count names the real mistake when a pair is incomplete ("Missing <port>") instead of
  // misreading every pair after it.
  const bind = PORT_LIKE.test(rest[1]) ? "0.0.0.0" : parseHost(rest.shift()!, "<bind-ip>");
  if (rest.length % 2 === 1) {
    throw new UsageError(
      `Missing <port> after server "${rest.at(-1)}": backends are <server> <port> pairs`,
    );
  }
  const backends: BackendConfig[] = [];
  for (let i = 0; i < rest.length; i += 2) backends.push(parseBackend(rest[i], rest[i + 1]));
  const config = defaultConfig({ hostname: bind, port: DEFAULT_PORT }, backends);
  applyOverrides(config, common);
  return { config, ...common };
}

/** Applies the settings given as flags over `config`. */
function applyOverrides(
  config: LbConfig,
  command: Pick<LbCommand, "overrides" | "port">,
): void {
  for (const [name, value] of Object.entries(command.overrides)) applySetting(config, name, value);
  if (command.port !== undefined) config.listen = { ...config.listen, port: command.port };
}

/** The result of {@linkcode loadLbConfig}. */
export type LoadResult = { ok: true; config: LbConfig } | { ok: false; problems: string[] };

/** Reads and checks the config file of `command`, with the command's flags applied over it. */
export async function loadLbConfig(command: LbCommand): Promise<LoadResult> {
  const path = command.configPath!;
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CONFIG_MAX_BYTES) {
      return { ok: false, problems: [`${path}: file over ${CONFIG_MAX_BYTES} bytes`] };
    }
    text = new TextDecoder().decode(bytes);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const reason = code === "ENOENT" ? "no such file" : (err as Error).message;
    return { ok: false, problems: [`Cannot read ${path}: ${reason}`] };
  }
  const parsed = parseConfigText(text);
  if (!parsed.ok) {
    return {
      ok: false,
      problems: parsed.problems.map((p: ConfigProblem) => formatProblem(path, p)),
    };
  }
  applyOverrides(parsed.config, command);
  return { ok: true, config: parsed.config };
}

/** Reloads `lb` from its config file; a file with problems is refused and logged. */
async function reloadFromFile(lb: LoadBalancer, command: LbCommand, why: string): Promise<void> {
  const loaded = await loadLbConfig(command);
  if (!loaded.ok) {
    for (const problem of loaded.problems) log.error("{problem}", { problem });
    log.error("config {path} refused ({why}): keeping the running config", {
      event: "reload-refused",
      path: command.configPath,
      why,
    });
    return;
  }
  log.info("reloading {path} ({why})", { path: command.configPath, why });
  await lb.reload(loaded.config);
}

/**
 * Watches the config file and SIGHUP for the load balancer `starting` resolves to; returns a
 * function that stops watching. Set up before the load balancer listens, so that no change
 * made once it says it is listening goes unnoticed.
 */
function watchConfig(starting: Promise<LoadBalancer>, command: LbCommand): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = Promise.resolve();
  const schedule = (why: string) => {
    // Editors write files in several steps: wait for the writes to settle.
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = running.then(async () => reloadFromFile(await starting, command, why)).catch(
        (err) => {
          // A bug, not a bad file: say so, and keep serving with the running config.
          log.error("cannot reload {path}: {reason}", {
            path: command.configPath,
            reason: (err as Error)?.message ?? String(err),
          });
        },
      );
    }, 200);
  };
  const onHup = () => schedule("SIGHUP");
  process.on("SIGHUP", onHup);
  const cannotWatch = (err: unknown) =>
    log.warn("cannot watch {path} ({reason}): reload with SIGHUP", {
      path: command.configPath,
      reason: (err as Error)?.message ?? String(err),
    });
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    // Watch the directory, not the file: editors and deploy tools replace a file by renaming
    // a new one over it, and a watch on the old file would see nothing after the first time.
    const path = resolve(command.configPath!);
    const name = basename(path);
    watcher = watch(dirname(path), (_event, changed) => {
      if (changed === null || String(changed) === name) schedule("file changed");
    });
    // Watching can fail later, not only here (Deno reports a missing --allow-read of the
    // directory as an error event): say so, or reloads on change would silently never happen.
    watcher.on("error", (err) => {
      cannotWatch(err);
      watcher?.close();
    });
  } catch (err) {
    cannotWatch(err);
  }
  return () => {
    clearTimeout(timer);
    process.off("SIGHUP", onHup);
    watcher?.close();
  };
}

/** `l4chat lb`: runs the load balancer until SIGINT or SIGTERM, then exits 0. */
export const lbCommand: Command = {
  usage: LB_USAGE,
  help: LB_HELP,
  async run(args, net, env) {
    const command = parseLbArgs(args);
    if (command.configPath !== undefined) {
      const loaded = await loadLbConfig(command);
      if (command.check) {
        for (const problem of loaded.ok ? [] : loaded.problems) {
          process.stderr.write(`${problem}\n`);
        }
        if (loaded.ok) {
          process.stdout.write(
            `${command.configPath}: OK (${loaded.config.backends.length} backends)\n`,
          );
        }
        return loaded.ok ? 0 : 2;
      }
      if (!loaded.ok) {
        for (const problem of loaded.problems) process.stderr.write(`l4chat lb: ${problem}\n`);
        return 2;
      }
      command.config = loaded.config;
    }
    const adminToken = command.admin === undefined ? {} : chooseAdminToken(
      command.adminToken,
      () => process.env[ADMIN_TOKEN_ENV],
    );
    if (
      command.admin !== undefined && adminToken.token === undefined &&
      !isLoopback(command.admin.hostname)
    ) {
      const env = adminToken.envError === undefined
        ? `set ${ADMIN_TOKEN_ENV}`
        : `set ${ADMIN_TOKEN_ENV} and run with --allow-env=${ADMIN_TOKEN_ENV}`;
      process.stderr.write(
        `l4chat lb: Cannot serve --admin "${
          formatAddr(command.admin)
        }" without a token: it is not a loopback address; give --admin-token or ${env}\n`,
      );
      return 2;
    }
    setupLogging(command.logLevel, command.logFormat);
    // Handle signals before listening: a SIGTERM that comes as soon as the "listening" line
    // is out must stop the load balancer gracefully, not kill it with the default action.
    let lb: LoadBalancer | undefined;
    let stopRequested = false;
    const removeSignals = onStopSignal(() => {
      stopRequested = true;
      lb?.stop();
    });
    const monitor = command.admin === undefined ? undefined : new LbMonitor();
    const starting = command.config.workers > 1
      ? runWorkers(net, command.config, monitor?.hooks ?? {}, {
        count: command.config.workers,
        moduleUrl: new URL("./lb/worker.ts", env.mainUrl).href,
        io: net.io,
        logLevel: command.logLevel,
        logFormat: command.logFormat,
      })
      : runLb(net, command.config, monitor?.hooks);
    const stopWatching = command.configPath === undefined
      ? () => {}
      : watchConfig(starting, command);
    let running: LoadBalancer;
    try {
      running = await starting;
      lb = running;
    } catch (err) {
      stopWatching();
      removeSignals();
      if (err instanceof WorkerStartError) throw new FatalError(err.message, { cause: err });
      throw new FatalError(
        `Cannot listen on ${formatAddr(command.config.listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    let admin: AdminServer | undefined;
    if (monitor !== undefined && command.admin !== undefined) {
      monitor.watch(running.pool);
      const path = command.configPath;
      try {
        admin = await startAdmin(net, { lb: running, monitor }, {
          addr: command.admin,
          token: adminToken.token,
          saveConfig: path === undefined ? undefined : async (change) => {
            const written = await updateConfigFile(path, change);
            applyOverrides(written, command);
            return written;
          },
        });
      } catch (err) {
        stopWatching();
        removeSignals();
        await running.stop();
        throw new FatalError(
          `Cannot listen on --admin ${formatAddr(command.admin)}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    if (stopRequested) running.stop();
    await running.done;
    await admin?.stop();
    stopWatching();
    removeSignals();
    return 0;
  },
};
