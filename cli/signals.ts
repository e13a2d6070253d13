import process from "node:process";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["l4chat"]);
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Calls `stop` on the first SIGINT or SIGTERM; a second one exits at once. Returns a
 * function that removes the handlers.
 */
export function onStopSignal(stop: (signal: string) => void): () => void {
  let received = false;
  const handler = (signal: string) => {
    if (received) {
      log.warn("{signal} again: stopping now", { signal });
      process.exit(0);
    }
    received = true;
    log.info("{signal} received: stopping", { signal });
    stop(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
}
