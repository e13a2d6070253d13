import {
  ioHelp,
  parseDurationMs,
  parseFlags,
  parseHost,
  parseInteger,
  parsePort,
} from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { UsageError } from "../cli/errors.ts";
import { setupLogging } from "../cli/log.ts";
import { type ClntOptions, runClnt } from "./client.ts";

/** The one-line usage of `l4chat clnt`. */
export const CLNT_USAGE = "usage: l4chat clnt <host> <port> <name> [options]";

/** `l4chat clnt --help`. */
export const CLNT_HELP = `${CLNT_USAGE}

Joins a chat server (or the load balancer in front of it). Each line typed is sent as
"[name] line"; whatever the server sends is printed. A line that is just q, Q or /quit
quits, and so does the end of input. When the server goes away it prints
"Server disconnected ..." and exits with code 1 (unless --reconnect).

At a terminal it is a full-screen chat: messages scroll above the line being typed, names
are coloured and aligned, your own lines are marked ">", the up and down arrows recall
lines sent, Ctrl-C or Ctrl-D (on an empty line) quit. Piped, it prints exactly what the
server sends, line for line.

Arguments:
  <host>                   server host name, IPv4 or IPv6 address ("::1" or "[::1]")
  <port>                   server port (1..65535)
  <name>                   your name in the chat (not empty, no line breaks)

Options:
  --connect-timeout DUR    give up connecting after this long (default: 5s)
  --reconnect              when the connection drops, say so and connect again (through
                           the load balancer: to a healthy server) until it is back; lines
                           typed meanwhile are not sent
  --reconnect-min DUR      first wait before reconnecting; it doubles, with jitter
                           (default: 500ms)
  --reconnect-max DUR      longest wait between two reconnect attempts (default: 10s)
  --history N              at a terminal: lines sent that the arrow keys recall
                           (default: 200)
  --scrollback N           at a terminal: lines kept to redraw the screen on resize
                           (default: 1000)
${ioHelp(27)}
  -h, --help               show this help
`;

/** Parses the arguments of `l4chat clnt` (after the subcommand). Throws UsageError. */
export function parseClntArgs(args: string[]): ClntOptions {
  const { values, positionals } = parseFlags(args, {
    "connect-timeout": { type: "string" },
    reconnect: { type: "boolean" },
    "reconnect-min": { type: "string" },
    "reconnect-max": { type: "string" },
    history: { type: "string" },
    scrollback: { type: "string" },
  });
  const str = (flag: string) => values[flag] as string | undefined;
  const missing = ["<host>", "<port>", "<name>"][positionals.length];
  if (missing !== undefined) throw new UsageError(`Missing argument ${missing}`);
  if (positionals.length > 3) throw new UsageError(`Unexpected argument "${positionals[3]}"`);
  const name = positionals[2];
  if (name.trim() === "") throw new UsageError("Cannot use an empty <name>");
  if (/[\r\n]/.test(name)) throw new UsageError("Cannot use a <name> with a line break");
  return {
    server: {
      hostname: parseHost(positionals[0], "<host>"),
      port: parsePort(positionals[1], "<port>"),
    },
    name,
    connectTimeoutMs: parseDurationMs(str("connect-timeout") ?? "5s", "--connect-timeout"),
    reconnect: values.reconnect === true,
    reconnectMinMs: parseDurationMs(str("reconnect-min") ?? "500ms", "--reconnect-min"),
    reconnectMaxMs: parseDurationMs(str("reconnect-max") ?? "10s", "--reconnect-max"),
    historyLines: parseInteger(str("history") ?? "200", "--history", 0, 100_000),
    scrollbackLines: parseInteger(str("scrollback") ?? "1000", "--scrollback", 1, 1_000_000),
  };
}

/** `l4chat clnt`: chats until the user quits (exit 0) or the server goes away (exit 1). */
export const clntCommand: Command = {
  usage: CLNT_USAGE,
  help: CLNT_HELP,
  run(args, net) {
    const options = parseClntArgs(args);
    setupLogging("warn", "text");
    return runClnt(net, options);
  },
};
