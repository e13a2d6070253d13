/**
 * Runs the {@linkcode netContract} under Bun, which has no `Deno.test`:
 * `bun net/bun_contract.ts`. `bun_test.ts` starts it from `deno test`, handing it a black hole
 * in `L4CHAT_BLACK_HOLE` (`127.0.0.1:<port>`) for the connect timeout case. Prints one line per
 * case and a closing `N passed, N failed, N skipped`; exits 1 if any case failed.
 *
 * @module
 */
import process from "node:process";
import { type BlackHole, netContract } from "./_contract.ts";
import { loadNet } from "./mod.ts";

const net = await loadNet();
if (!net.runtime.startsWith("bun ")) {
  process.stderr.write(`bun_contract.ts: expected Bun, runs on ${net.runtime}\n`);
  process.exit(2);
}

const hole = process.env.L4CHAT_BLACK_HOLE?.match(/^(.+):(\d+)$/);
const blackHole = hole
  ? (): Promise<BlackHole> =>
    Promise.resolve({
      addr: { hostname: hole[1], port: Number(hole[2]) },
      [Symbol.dispose]: () => {},
    })
  : undefined;

let passed = 0, failed = 0, skipped = 0;
for (const c of netContract(net, { blackHole })) {
  if (c.ignore !== undefined) {
    skipped++;
    process.stdout.write(`bunNet: ${c.name} ... skipped (${c.ignore})\n`);
    continue;
  }
  try {
    await c.fn();
    passed++;
    process.stdout.write(`bunNet: ${c.name} ... ok\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`bunNet: ${c.name} ... FAILED\n${(err as Error).stack ?? err}\n`);
  }
}
process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exit(failed > 0 ? 1 : 0);
