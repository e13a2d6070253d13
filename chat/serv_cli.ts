import {
  ioHelp,
  parseBytes,
  parseDurationMs,
  parseFlags,
  parseHost,
  parseInteger,
  parsePort,
  parseRedisUrl,
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
import { formatAddr } from "../net/mod.ts";
import type { RedisClusterOptions } from "./cluster.ts";
import { type ChatServer, runServ, type ServOptions } from "./server.ts";

/** The one-line usage of `l4chat serv`. */
export const SERV_USAGE = "usage: l4chat serv <port> [--host ADDR] [options]";

/** `l4chat serv --help`. */
export const SERV_HELP = `${SERV_USAGE}

Runs a line-based chat server: every line a client sends ("[name] message") is relayed to
every connected client, the sender included, in the order the server read them.
With --redis, servers that share a Redis channel are one room: each line reaches every
client of every server once, and lines of one sender arrive in the order sent.

Arguments:
  <port>              port to listen on (1..65535; 0 picks a free one, named in the log)

Options:
  --host ADDR         address to bind (default: 0.0.0.0; "::" or "[::1]" for IPv6)
  --max-clients N     clients at once; the next gets one refusal line (default: 256)
  --max-line BYTES    longest line relayed; a longer one is not relayed, its sender gets
                      one notice line and stays connected (default: 4096)
  --max-output BYTES  output pending for one client before it is disconnected as not
                      reading (default: 1MiB)
  --accept-proxy      expect a PROXY protocol header (v1 or v2, as l4chat lb --send-proxy
                      or HAProxy send it) first on every connection, and name clients by
                      the real client address it carries; a connection without a
                      valid one is closed with one log line (default: off)
  --proxy-timeout DUR how long that header may take to arrive (default: 5s)
  --presence on|off   tell everyone "* <ip:port> joined, N online" and "... left, N online"
                      (N is cluster-wide with --redis) (default: on)
  --presence-delay DUR
                      announce and count a client only once it has stayed this long, so
                      load balancer health checks go unannounced (default: 500ms)
  --redis URL         share the room with the other servers on this Redis:
                      redis://[:password@]host[:port][/db] (default: none, a room of its own)
  --channel NAME      Redis pub/sub channel of the room; the online counts are kept in the
                      hash NAME:online (default: l4chat)
  --presence-ttl DUR  a server's online count expires unless refreshed (every third of
                      this) within DUR, so a crashed server stops counting (default: 30s)
  --redis-timeout DUR give up waiting for Redis at start (then go on alone and keep
                      trying) and on each command (default: 2s)
  --redis-retry-max DUR
                      longest wait between reconnects to Redis, with jitter (default: 5s)
  --log-level LEVEL   error, warn, info or debug (default: info)
  --log-format FMT    text or json (default: text)
${ioHelp(22)}
  -h, --help          show this help
`;

/** Everything `l4chat serv` was asked to do. */
export interface ServCommand {
  options: ServOptions;
  /** The Redis cluster to join, with --redis. */
  redis?: RedisClusterOptions;
  logLevel: LogLevelName;
  logFormat: LogFormat;
}

/** Parses the arguments of `l4chat serv` (after the subcommand). Throws UsageError. */
export function parseServArgs(args: string[]): ServCommand {
  const { values, positionals } = parseFlags(args, {
    host: { type: "string" },
    "max-clients": { type: "string" },
    "max-line": { type: "string" },
    "max-output": { type: "string" },
    "accept-proxy": { type: "boolean" },
    "proxy-timeout": { type: "string" },
    presence: { type: "string" },
    "presence-delay": { type: "string" },
    redis: { type: "string" },
    channel: { type: "string" },
    "presence-ttl": { type: "string" },
    "redis-timeout": { type: "string" },
    "redis-retry-max": { type: "string" },
    "log-level": { type: "string" },
    "log-format": { type: "string" },
  });
  if (positionals.length === 0) throw new UsageError("Missing argument <port>");
  if (positionals.length > 1) {
    throw new UsageError(`Unexpected argument "${positionals[1]}"`);
  }
  const str = (name: string) => values[name] as string | undefined;
  const presence = str("presence") ?? "on";
  if (presence !== "on" && presence !== "off") {
    throw new UsageError(`Cannot use --presence "${presence}": expected on or off`);
  }
  const channel = str("channel") ?? "l4chat";
  if (!/^[\x21-\x7e]{1,200}$/.test(channel)) {
    throw new UsageError(
      `Cannot use --channel "${channel}": expected 1..200 printable ASCII characters, no spaces`,
    );
  }
  for (const flag of ["channel", "presence-ttl", "redis-timeout", "redis-retry-max"]) {
    if (str(flag) !== undefined && str("redis") === undefined) {
      throw new UsageError(`Cannot use --${flag} without --redis`);
    }
  }
  const redisText = str("redis");
  let redis: RedisClusterOptions | undefined;
  if (redisText !== undefined) {
    const { url, display } = parseRedisUrl(redisText, "--redis");
    redis = {
      url,
      displayUrl: display,
      channel,
      presenceTtlMs: parseDurationMs(str("presence-ttl") ?? "30s", "--presence-ttl"),
      connectTimeoutMs: parseDurationMs(str("redis-timeout") ?? "2s", "--redis-timeout"),
      retryMaxMs: parseDurationMs(str("redis-retry-max") ?? "5s", "--redis-retry-max"),
    };
  }
  return {
    redis,
    options: {
      listen: {
        hostname: parseHost(str("host") ?? "0.0.0.0", "--host"),
        port: parsePort(positionals[0], "<port>", true),
      },
      maxClients: parseInteger(str("max-clients") ?? "256", "--max-clients", 1, 1_000_000),
      maxLine: parseBytes(str("max-line") ?? "4096", "--max-line"),
      maxOutput: parseBytes(str("max-output") ?? "1MiB", "--max-output"),
      acceptProxy: values["accept-proxy"] === true,
      proxyTimeoutMs: parseDurationMs(str("proxy-timeout") ?? "5s", "--proxy-timeout"),
      presence: presence === "on",
      presenceDelayMs: parseDurationMs(str("presence-delay") ?? "500ms", "--presence-delay", true),
    },
    logLevel: parseLogLevel(str("log-level") ?? "info"),
    logFormat: parseLogFormat(str("log-format") ?? "text"),
  };
}

/** `l4chat serv`: runs the chat server until SIGINT or SIGTERM, then exits 0. */
export const servCommand: Command = {
  usage: SERV_USAGE,
  help: SERV_HELP,
  async run(args, net) {
    const { options, redis, logLevel, logFormat } = parseServArgs(args);
    setupLogging(logLevel, logFormat);
    // Loaded only with --redis: the Redis client is the one dependency most runs never need.
    const cluster = redis === undefined
      ? undefined
      : await (await import("./cluster.ts")).connectRedisCluster(redis);
    // Handle signals before listening: a SIGTERM that comes as soon as the "listening" line
    // is out must stop the server gracefully, not kill it with the default action.
    let server: ChatServer | undefined;
    let stopRequested = false;
    const removeSignals = onStopSignal(() => {
      stopRequested = true;
      server?.stop();
    });
    try {
      server = await runServ(net, { ...options, cluster });
    } catch (err) {
      removeSignals();
      await cluster?.close();
      throw new FatalError(
        `Cannot listen on ${formatAddr(options.listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (stopRequested) server.stop();
    await server.done;
    removeSignals();
    return 0;
  },
};
