import process from "node:process";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["l4chat"]);
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * A Ctrl-C reaches every process of the terminal's foreground group, and wrappers such as
 * `deno task` and `npx` forward it to their child as well: one key press can arrive twice
 * within milliseconds. A repeated SIGINT this soon after the first is that same press.
 */
const SIGINT_ECHO_MS = 500;

/**
 * Calls `stop` on the first SIGINT or SIGTERM; a second one exits at once. Returns a
 * function that removes the handlers.
 */
export function onStopSignal(stop: (signal: string) => void): () => void {
  let received = false;
  let firstAtMs = 0;
  const handler = (signal: string) => {
    if (received && signal === "SIGINT" && Date.now() - firstAtMs < SIGINT_ECHO_MS) return;
    if (received) {
      log.warn("{signal} again: stopping now", { signal });
      process.exit(0);
    }
    received = true;
    firstAtMs = Date.now();
    log.info("{signal} received: stopping", { signal });
    stop(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
}
