import { parseDurationMs, parseFlags, parseHost, parseInteger, parsePort } from "../cli/args.ts";
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
import { formatAddr } from "../net/mod.ts";
import type { BackendConfig } from "./backend.ts";
import { BALANCERS } from "./balancers/mod.ts";
import { type LbOptions, runLb } from "./mod.ts";

/** The one-line usage of `l4chat lb`. */
export const LB_USAGE =
  "usage: l4chat lb [<bind-ip>] <server> <port> [<server> <port> ...] [options]";

/** `l4chat lb --help`. */
export const LB_HELP = `${LB_USAGE}

Runs a layer-4 TCP load balancer: each client that connects is given a backend server,
and bytes are relayed both ways unchanged. The original's form works as it did:
  l4chat lb 172.18.136.132 172.18.158.107 10010 172.18.158.107 10011
(an odd first argument is the address to listen on; default 0.0.0.0).

Arguments:
  <bind-ip>                 address to listen on (IPv4, IPv6 such as "::" or "[::1]", a name)
  <server> <port>           a backend: host name, IPv4 or IPv6 address, and port
  <server> <port>,weight=N  the same with a weight, 1..1000 (default 1): its relative
                            share of new clients under the weighted algorithms

Options:
  --port PORT               port to listen on (default: 20000; 0 picks a free one)
  --balance NAME            how each new client is given a backend (default: round-robin):
                              round-robin           in turn, in the order given
                              weighted-round-robin  in turn by weight, smoothly (nginx)
                              least-conn            fewest open connections per weight
                              p2c                   the less loaded of two drawn at random
                              source-hash           by client IP (rendezvous hashing)
                              maglev                by client IP (Maglev consistent hashing)
  --connect-timeout DUR     timeout of one backend connect (default: 2s)
  --connect-tries N         backends tried for one client before it is closed (default: 3)
  --hc-interval DUR         time between health checks of a backend (default: 5s)
  --hc-timeout DUR          timeout of one health check's TCP connect (default: 2s)
  --hc-fall N               failures in a row that mark a backend dead (default: 3)
  --hc-rise N               successes in a row that bring it back (default: 1)
  --send-proxy VERSION      send a PROXY protocol header (v1 text or v2 binary) to backends
                            before the client's bytes, so they learn the real client
                            address (l4chat serv --accept-proxy reads it) (default: off)
  --grace DUR               on SIGTERM/SIGINT, how long connections may finish before the
                            rest are closed; a second signal stops at once (default: 30s)
  --log-level LEVEL         error, warn, info or debug (debug logs every chunk relayed)
                            (default: info)
  --log-format FMT          text or json (default: text)
  -h, --help                show this help

Durations: 500ms, 5s, 2m, 1h (a bare number is seconds).
`;

/** Everything `l4chat lb` was asked to do. */
export interface LbCommand {
  options: LbOptions;
  logLevel: LogLevelName;
  logFormat: LogFormat;
}

/** Parses the arguments of `l4chat lb` (after the subcommand). Throws UsageError. */
export function parseLbArgs(args: string[]): LbCommand {
  const { values, positionals } = parseFlags(args, {
    port: { type: "string" },
    balance: { type: "string" },
    "connect-timeout": { type: "string" },
    "connect-tries": { type: "string" },
    "hc-interval": { type: "string" },
    "hc-timeout": { type: "string" },
    "hc-fall": { type: "string" },
    "hc-rise": { type: "string" },
    grace: { type: "string" },
    "send-proxy": { type: "string" },
    "log-level": { type: "string" },
    "log-format": { type: "string" },
  });
  const str = (name: string, fallback: string) => (values[name] as string | undefined) ?? fallback;
  const rest = [...positionals];
  const bind = rest.length % 2 === 1 ? parseHost(rest.shift()!, "<bind-ip>") : "0.0.0.0";
  if (rest.length === 0) throw new UsageError("Missing backend: give at least one <server> <port>");
  const backends: BackendConfig[] = [];
  for (let i = 0; i < rest.length; i += 2) {
    backends.push(parseBackend(rest[i], rest[i + 1]));
  }
  const balance = str("balance", "round-robin");
  if (!(balance in BALANCERS)) {
    throw new UsageError(
      `Cannot use --balance "${balance}": expected ${Object.keys(BALANCERS).join(", ")}`,
    );
  }
  return {
    options: {
      listen: { hostname: bind, port: parsePort(str("port", "20000"), "--port", true) },
      backends,
      balance,
      connectTimeoutMs: parseDurationMs(str("connect-timeout", "2s"), "--connect-timeout"),
      connectTries: parseInteger(str("connect-tries", "3"), "--connect-tries", 1, 100),
      health: {
        intervalMs: parseDurationMs(str("hc-interval", "5s"), "--hc-interval"),
        timeoutMs: parseDurationMs(str("hc-timeout", "2s"), "--hc-timeout"),
        fall: parseInteger(str("hc-fall", "3"), "--hc-fall", 1, 1000),
        rise: parseInteger(str("hc-rise", "1"), "--hc-rise", 1, 1000),
      },
      graceMs: parseDurationMs(str("grace", "30s"), "--grace", true),
      sendProxy: parseSendProxy(values["send-proxy"] as string | undefined),
    },
    logLevel: parseLogLevel(str("log-level", "info")),
    logFormat: parseLogFormat(str("log-format", "text")),
  };
}

/** Parses `--send-proxy`: `v1`, `v2` (or `1`, `2`); undefined when it is not given. */
export function parseSendProxy(text: string | undefined): 1 | 2 | undefined {
  if (text === undefined) return undefined;
  if (text === "v1" || text === "1") return 1;
  if (text === "v2" || text === "2") return 2;
  throw new UsageError(`Cannot use --send-proxy "${text}": expected v1 or v2`);
}

/** Weights a backend may have on the command line. */
const MAX_WEIGHT = 1000;

/**
 * Parses one positional backend: `<server>` and `<port>` or `<port>,weight=N`. The weight
 * is left out of the result when not given (the pool's default, 1, applies). Throws
 * UsageError naming the server.
 */
function parseBackend(server: string, portText: string): BackendConfig {
  const hostname = parseHost(server, "<server>");
  const [port, ...params] = portText.split(",");
  const config: BackendConfig = {
    addr: { hostname, port: parsePort(port, `<port> of server "${server}"`) },
  };
  for (const param of params) {
    const match = /^weight=(.*)$/.exec(param);
    if (match === null || config.weight !== undefined) {
      throw new UsageError(
        `Cannot parse <port> of server "${server}" "${portText}": expected PORT or PORT,weight=N`,
      );
    }
    config.weight = parseInteger(match[1], `weight of server "${server}"`, 1, MAX_WEIGHT);
  }
  return config;
}

/** `l4chat lb`: runs the load balancer until SIGINT or SIGTERM, then exits 0. */
export const lbCommand: Command = {
  usage: LB_USAGE,
  help: LB_HELP,
  async run(args, net) {
    const { options, logLevel, logFormat } = parseLbArgs(args);
    setupLogging(logLevel, logFormat);
    let lb;
    try {
      lb = await runLb(net, options);
    } catch (err) {
      throw new FatalError(
        `Cannot listen on ${formatAddr(options.listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const removeSignals = onStopSignal(() => lb.stop());
    await lb.done;
    removeSignals();
    return 0;
  },
};
