/**
 * A client for the end-to-end tests that connects from chosen loopback source addresses,
 * which `Deno.connect` cannot bind: `deno run --allow-net tests/_dial.ts <host> <port>
 * <source-ip>...` connects to `<host>:<port>` once from each source IP in turn, reads the
 * first line the far end sends, and prints `<source-ip> <line>` (or `<source-ip> ERROR
 * <message>`) on stdout. Each connection is bounded by a 5 s timeout. Linux only: it relies on
 * every 127.0.0.0/8 address being local.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";

const [host, port, ...sources] = process.argv.slice(2);

function dial(localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    let pending = "";
    const socket = net.connect({ host, port: Number(port), localAddress });
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve("ERROR timed out");
    });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      pending += chunk;
      const newline = pending.indexOf("\n");
      if (newline === -1) return;
      socket.destroy();
      resolve(pending.slice(0, newline));
    });
    socket.on("error", (err) => resolve(`ERROR ${err.message}`));
    socket.on("close", () => resolve("ERROR closed"));
  });
}

for (const source of sources) console.log(`${source} ${await dial(source)}`);
