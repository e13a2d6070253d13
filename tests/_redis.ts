/**
 * A real `redis-server` for the cluster tests, on a free loopback port, with no persistence.
 * Fails with a clear message when the Debian package `redis-server` is missing (`.ci/run`
 * installs it): these tests never skip silently.
 *
 * @module
 */
import { deadline } from "./_helpers.ts";

const READY_TIMEOUT_MS = 15_000;

/** A free TCP port on 127.0.0.1 (bound then released; redis-server takes it right after). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Waits until `stream` has printed `text`; resolves to a promise of the rest being drained
 * (so the process never blocks on a full pipe), which ends when the process does.
 */
async function waitForText(
  stream: ReadableStream<Uint8Array>,
  text: string,
  log: string[],
): Promise<{ drained: Promise<void> }> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  let seen = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`redis-server exited before "${text}":\n${log.join("")}`);
    const chunk = decoder.decode(value, { stream: true });
    log.push(chunk);
    seen += chunk;
    if (seen.includes(text)) break;
  }
  const drained = (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
    } catch {
      // Killed.
    }
  })();
  return { drained };
}

/** A running redis-server. Dispose of it (`await using`) to kill it and reap it. */
export class RedisServer implements AsyncDisposable {
  readonly port: number;
  #child: Deno.ChildProcess | undefined;
  #drained: Promise<void> = Promise.resolve();

  private constructor(port: number) {
    this.port = port;
  }

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server on a free loopback port and waits until it accepts connections. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer(freePort());
    await server.restart();
    return server;
  }

  /** Starts it again on the same port (after {@linkcode kill}). */
  async restart(): Promise<void> {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("redis-server", {
        args: [
          "--port",
          String(this.port),
          "--bind",
          "127.0.0.1",
          "--save",
          "",
          "--appendonly",
          "no",
          "--loglevel",
          "notice",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(
          "redis-server is not installed: the cluster tests need a real Redis " +
            "(apt-get install redis-server; .ci/run installs it)",
        );
      }
      throw err;
    }
    this.#child = child;
    const log: string[] = [];
    try {
      ({ drained: this.#drained } = await deadline(
        waitForText(child.stdout, "Ready to accept connections", log),
        READY_TIMEOUT_MS,
        `redis-server on port ${this.port} never became ready:\n${log.join("")}`,
      ));
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Kills it at once (SIGKILL: no goodbye to its clients) and waits until it has exited. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    await this.#drained;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}
