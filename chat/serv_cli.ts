import {
  parseBytes,
  parseDurationMs,
  parseFlags,
  parseHost,
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
import { formatAddr } from "../net/mod.ts";
import { runServ, type ServOptions } from "./server.ts";

/** The one-line usage of `l4chat serv`. */
export const SERV_USAGE = "usage: l4chat serv <port> [--host ADDR] [options]";

/** `l4chat serv --help`. */
export const SERV_HELP = `${SERV_USAGE}

Runs a line-based chat server: every line a client sends ("[name] message") is relayed to
every connected client, the sender included, in the order the server read them.

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
  --log-level LEVEL   error, warn, info or debug (default: info)
  --log-format FMT    text or json (default: text)
  -h, --help          show this help
`;

/** Everything `l4chat serv` was asked to do. */
export interface ServCommand {
  options: ServOptions;
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
    "log-level": { type: "string" },
    "log-format": { type: "string" },
  });
  if (positionals.length === 0) throw new UsageError("Missing argument <port>");
  if (positionals.length > 1) {
    throw new UsageError(`Unexpected argument "${positionals[1]}"`);
  }
  const str = (name: string) => values[name] as string | undefined;
  return {
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
    const { options, logLevel, logFormat } = parseServArgs(args);
    setupLogging(logLevel, logFormat);
    let server;
    try {
      server = await runServ(net, options);
    } catch (err) {
      throw new FatalError(
        `Cannot listen on ${formatAddr(options.listen)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const removeSignals = onStopSignal(() => server.stop());
    await server.done;
    removeSignals();
    return 0;
  },
};
