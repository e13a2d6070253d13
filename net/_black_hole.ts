/**
 * A test fixture for the connect timeout case of `_contract.ts`, under Deno only.
 *
 * @module
 */
import type { BlackHole } from "./_contract.ts";

/**
 * Whether {@linkcode denoBlackHole} works here: Linux drops a SYN to a full backlog; macOS and
 * Windows answer it with a reset or queue more, so there the timeout case is ignored.
 */
export const BLACK_HOLE_OK = Deno.build.os === "linux";

/**
 * A loopback listener that is never accepted from: once its backlog (511) is full, Linux drops
 * further SYNs, so a connect to it can only time out. Dispose of it to close it.
 */
export function denoBlackHole(): Promise<BlackHole> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const addr = listener.addr as Deno.NetAddr;
  return Promise.resolve({
    addr: { hostname: addr.hostname, port: addr.port },
    [Symbol.dispose]: () => listener.close(),
  });
}
