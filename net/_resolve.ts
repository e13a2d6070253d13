import { lookup } from "node:dns/promises";
import { NetError } from "./mod.ts";

/**
 * Resolves `hostname` to every address it has, through the system resolver (`node:dns`
 * `lookup`, which both runtimes implement, so /etc/hosts counts). Rejects with
 * {@linkcode NetError} `NotFound` when the name does not resolve.
 */
export async function resolveAll(hostname: string): Promise<string[]> {
  try {
    const found = await lookup(hostname, { all: true });
    return [...new Set(found.map((entry) => entry.address))];
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new NetError(
      code === "ENOTFOUND" || code === "EAI_AGAIN" ? "NotFound" : "Other",
      `cannot resolve ${hostname}`,
      { cause: err },
    );
  }
}
