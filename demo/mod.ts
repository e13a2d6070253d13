/**
 * `l4chat demo`: the original run guide in one command. Three chat servers and the load
 * balancer on loopback, the guide's four clients as scripted bots, then it stays up for a
 * person to join.
 *
 * @module
 */
import process from "node:process";
import { parseFlags, parsePort } from "../cli/args.ts";
import type { Command } from "../cli/command.ts";
import { FatalError } from "../cli/errors.ts";
import { setupLogging } from "../cli/log.ts";
import { onStopSignal } from "../cli/signals.ts";
import { type ChatServer, runServ } from "../chat/server.ts";
import { LineSplitter } from "../chat/lines.ts";
import { formatChatLine } from "../chat/protocol.ts";
import { defaultConfig } from "../lb/config.ts";
import { type LoadBalancer, runLb } from "../lb/mod.ts";
import { type Conn, formatAddr, type Net } from "../net/mod.ts";

const DEMO_USAGE = "usage: l4chat demo [--port PORT] [--once]";
const DEMO_HELP = `${DEMO_USAGE}

Plays the original run guide on loopback: three chat servers, the load balancer (round
robin) and four scripted clients, jin, susu, jang and sujungwef, joining in that order.
jin and sujungwef land on the same server and see each other; susu and jang are alone.
Then two clients leave (the NAT table shrinks) and the demo stays up so you can join.

Options:
  --port PORT   load balancer port (default: 20000, or the next free one up to 20099)
  --once        leave after the script instead of staying up
  -h, --help    show this help
`;

const decoder = new TextDecoder();

/** A scripted client: sends lines as `[name] ...` and prints what it receives. */
class Bot {
  readonly name: string;
  readonly #conn: Conn;
  #seen: string[] = [];
  #waiters: { text: string; resolve: () => void }[] = [];

  constructor(name: string, conn: Conn) {
    this.name = name;
    this.#conn = conn;
    this.#read();
  }

  say(text: string): Promise<void> {
    process.stdout.write(`${this.name.padEnd(10)} types   ${text}\n`);
    return this.#conn.writeAll(formatChatLine(this.name, text));
  }

  /** Resolves once a line equal to `text` has arrived. */
  sees(text: string): Promise<void> {
    if (this.#seen.includes(text)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ text, resolve }));
  }

  quit(): void {
    process.stdout.write(`${this.name.padEnd(10)} types   q\n`);
    this.#conn.close();
  }

  async #read(): Promise<void> {
    const splitter = new LineSplitter(4096);
    const buf = new Uint8Array(4096);
    try {
      while (true) {
        const n = await this.#conn.read(buf);
        if (n === null) return;
        for (const frame of splitter.push(buf.subarray(0, n))) {
          if (frame.kind !== "line") continue;
          const text = decoder.decode(frame.bytes);
          process.stdout.write(`${this.name.padEnd(10)} sees    ${text}\n`);
          this.#seen.push(text);
          this.#waiters = this.#waiters.filter((waiter) => {
            if (waiter.text !== text) return true;
            waiter.resolve();
            return false;
          });
        }
      }
    } catch {
      // Closed by quit().
    }
  }
}

async function startLb(net: Net, servers: ChatServer[], port: number | undefined) {
  const ports = port === undefined ? Array.from({ length: 100 }, (_, i) => 20000 + i) : [port];
  for (const candidate of ports) {
    try {
      return await runLb(net, {
        ...defaultConfig(
          { hostname: "127.0.0.1", port: candidate },
          servers.map((server) => ({ addr: server.addr })),
        ),
        // Each check is a connect that every chat server logs; keep them rare in the demo.
        hcIntervalMs: 30_000,
        graceMs: 1000,
      });
    } catch (err) {
      if (candidate === ports[ports.length - 1]) {
        throw new FatalError(`Cannot listen on 127.0.0.1:${candidate}: ${(err as Error).message}`);
      }
    }
  }
  throw new FatalError("No free port for the load balancer");
}

/** Waits until the NAT table holds `size` rows (the load balancer logged them). */
async function natReaches(lb: LoadBalancer, size: number): Promise<void> {
  while (lb.nat.size !== size) await new Promise((resolve) => setTimeout(resolve, 10));
}

async function runDemo(net: Net, port: number | undefined, once: boolean): Promise<number> {
  setupLogging("info", "text");
  const servers: ChatServer[] = [];
  for (let i = 0; i < 3; i++) {
    servers.push(
      await runServ(net, {
        listen: { hostname: "127.0.0.1", port: 0 },
        maxClients: 256,
        maxLine: 4096,
        maxOutput: 1024 * 1024,
      }),
    );
  }
  const lb = await startLb(net, servers, port);
  const lbText = formatAddr(lb.addr);
  const stopAll = async () => {
    await lb.stop();
    await Promise.all(servers.map((server) => server.stop()));
  };
  let stopped = false;
  const removeSignals = onStopSignal(() => {
    stopped = true;
    stopAll();
  });

  const bots = new Map<string, Bot>();
  for (const name of ["jin", "susu", "jang", "sujungwef"]) {
    const size = lb.nat.size;
    bots.set(name, new Bot(name, await net.connect(lb.addr, { timeoutMs: 2000 })));
    await natReaches(lb, size + 1);
  }
  const [jin, susu, jang, sujungwef] = [...bots.values()];
  const say = async (bot: Bot, text: string, ...audience: Bot[]) => {
    await bot.say(text);
    await Promise.all([bot, ...audience].map((who) => who.sees(`[${bot.name}] ${text}`)));
  };
  await say(jin, "hello", sujungwef);
  await say(sujungwef, "hi jins", jin);
  await say(jin, "hi sujungwef", sujungwef);
  await say(susu, "hello");
  await say(susu, "asfas");
  await say(jang, "hello");
  await say(jang, "sdfsd");
  process.stdout.write(
    "\njin and sujungwef share a server; susu and jang are each alone. susu and jang leave:\n\n",
  );
  susu.quit();
  await natReaches(lb, 3);
  jang.quit();
  await natReaches(lb, 2);

  if (once) {
    jin.quit();
    sujungwef.quit();
    await natReaches(lb, 0);
    removeSignals();
    await stopAll();
    return 0;
  }
  process.stdout.write(
    `\nThe demo is up: the load balancer is on ${lbText}. Join from another terminal with\n` +
      `  deno task start clnt 127.0.0.1 ${lb.addr.port} <your-name>\n` +
      `from the source tree, or with a release binary,\n` +
      `  ./l4chat clnt 127.0.0.1 ${lb.addr.port} <your-name>\n` +
      `jin and sujungwef are still there. Press Ctrl-C to stop.\n\n`,
  );
  await lb.done;
  await Promise.all(servers.map((server) => server.done));
  removeSignals();
  return stopped ? 0 : 1;
}

/** `l4chat demo`. */
export const demoCommand: Command = {
  usage: DEMO_USAGE,
  help: DEMO_HELP,
  run(args, net) {
    const { values } = parseFlags(args, {
      port: { type: "string" },
      once: { type: "boolean" },
    });
    const port = values.port === undefined ? undefined : parsePort(values.port as string, "--port");
    return runDemo(net, port, values.once === true);
  },
};
