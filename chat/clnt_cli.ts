import { parseDurationMs, parseFlags, parseHost, parsePort } from "../cli/args.ts";
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
"Server disconnected ..." and exits with code 1.

Arguments:
  <host>                   server host name, IPv4 or IPv6 address ("::1" or "[::1]")
  <port>                   server port (1..65535)
  <name>                   your name in the chat (not empty, no line breaks)

Options:
  --connect-timeout DUR    give up connecting after this long (default: 5s)
  -h, --help               show this help
`;

/** Parses the arguments of `l4chat clnt` (after the subcommand). Throws UsageError. */
export function parseClntArgs(args: string[]): ClntOptions {
  const { values, positionals } = parseFlags(args, {
    "connect-timeout": { type: "string" },
  });
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
    connectTimeoutMs: parseDurationMs(
      (values["connect-timeout"] as string | undefined) ?? "5s",
      "--connect-timeout",
    ),
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
