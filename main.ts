/**
 * l4chat: a layer-4 TCP load balancer (`lb`), a line-based chat server (`serv`) and a
 * terminal chat client (`clnt`) in one executable. This file only dispatches.
 *
 * @module
 */
import process from "node:process";
import type { Command } from "./cli/command.ts";
import { FatalError, UsageError } from "./cli/errors.ts";
import { flushLogs } from "./cli/log.ts";
import { clntCommand } from "./chat/clnt_cli.ts";
import { servCommand } from "./chat/serv_cli.ts";
import { lbCommand } from "./lb/cli.ts";
import { demoCommand } from "./demo/mod.ts";
import { takeIoFlag } from "./cli/args.ts";
import { loadNet, NetError } from "./net/mod.ts";
import denoJson from "./deno.json" with { type: "json" };

const COMMANDS: Record<string, Command> = {
  lb: lbCommand,
  serv: servCommand,
  clnt: clntCommand,
  demo: demoCommand,
};

const USAGE = "usage: l4chat <lb|serv|clnt|demo> [arguments] [--help]";

const HELP = `${USAGE}

l4chat ${denoJson.version}: a layer-4 TCP load balancer and the chat pair that runs behind it.

Subcommands:
  lb [<bind-ip>] <server> <port> [<server> <port> ...]
                               TCP load balancer (round robin, health checks, NAT table)
  serv <port>                  line-based chat server
  clnt <host> <port> <name>    terminal chat client
  demo                         three servers, the load balancer and four scripted clients

Options:
  -h, --help                   show this help (l4chat <subcommand> --help for each)
  -V, --version                show the version and the sockets in use (with --io MODE:
                               those of that mode)
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    process.stderr.write(`l4chat: Missing subcommand\n${USAGE}\n`);
    return 2;
  }
  if (name === "-h" || name === "--help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (name === "-V" || name === "--version") {
    try {
      const net = await loadNet({ io: takeIoFlag(args).io });
      process.stdout.write(`l4chat ${denoJson.version} (${net.runtime})\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`l4chat: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`l4chat: Unknown subcommand "${name}"\n${USAGE}\n`);
    return 2;
  }
  if (args.includes("-h") || args.includes("--help")) {
    process.stdout.write(command.help);
    return 0;
  }
  const debug = args.includes("--debug");
  try {
    const { io, rest } = takeIoFlag(args.filter((arg) => arg !== "--debug"));
    return await command.run(rest, await loadNet({ io }), { mainUrl: import.meta.url });
  } catch (err) {
    // What was logged before the error comes before it.
    flushLogs();
    // An --io mode that cannot run here is a usage mistake, named in one line.
    if (err instanceof UsageError || (err instanceof NetError && err.message.startsWith("--io"))) {
      process.stderr.write(`l4chat ${name}: ${err.message}\n${command.usage}\n`);
      return 2;
    }
    if (err instanceof FatalError) {
      process.stderr.write(`l4chat ${name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`l4chat: ${debug ? (err as Error).stack : (err as Error).message}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
flushLogs();
process.exit(code);
