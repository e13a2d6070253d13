import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BLACK_HOLE_OK, denoBlackHole } from "./_black_hole.ts";

/** The Bun that `deno install` brings (the pinned `bun` npm package; its postinstall links it). */
export const BUN_PATH = fileURLToPath(new URL("../node_modules/bun/bin/bun.exe", import.meta.url));

// Bun's kinds of sockets: the engine on `bun:ffi` (auto: on io_uring where it can be), on
// epoll alone, and Bun's own.
for (const io of ["auto", "epoll", "runtime"]) {
  Deno.test({
    name: `bunNet (--io ${io}) passes the Net contract under Bun (net/bun_contract.ts)`,
    // Without `deno install` there is no Bun to run it with.
    ignore: !existsSync(BUN_PATH),
    fn: async () => {
      // The black hole lives here, in Deno: Bun's listeners accept at once, so cannot be one.
      using hole = BLACK_HOLE_OK ? await denoBlackHole() : undefined;
      const env: Record<string, string> = hole === undefined
        ? {}
        : { L4CHAT_BLACK_HOLE: `${hole.addr.hostname}:${hole.addr.port}` };
      const child = new Deno.Command(BUN_PATH, {
        args: [fileURLToPath(new URL("bun_contract.ts", import.meta.url)), io],
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const output = await Promise.race([
        child.output(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            child.kill("SIGKILL");
            reject(new Error("bun net/bun_contract.ts did not finish within 120 s"));
          }, 120_000);
        }),
      ]).finally(() => clearTimeout(timer));
      const text = new TextDecoder().decode(output.stdout) +
        new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, text);
      // The engine's wait worker started (its fallback says so on stderr).
      assert.doesNotMatch(text, /wait worker failed/, text);
      // Only the timeout and reusePort cases may be skipped, and only off Linux.
      assert.match(
        text,
        BLACK_HOLE_OK
          ? /^\d+ passed, 0 failed, 0 skipped$/m
          : /^\d+ passed, 0 failed, [012] skipped$/m,
        text,
      );
    },
  });
}
