import type { Net } from "../net/mod.ts";

/** One subcommand of l4chat, as `main.ts` dispatches it. */
export interface Command {
  /** The one-line usage, printed after a usage error. */
  readonly usage: string;
  /** The full `--help` text. */
  readonly help: string;
  /**
   * Runs the subcommand with its arguments (after the subcommand's name). Resolves to the
   * exit code. Throws `UsageError` for a bad command line, `FatalError` for a failure the
   * user can act on (a port in use); anything else is a bug.
   */
  run(args: string[], net: Net): Promise<number>;
}
