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
  run(args: string[], net: Net, env: CommandEnv): Promise<number>;
}

/** What `main.ts` knows that a subcommand may need. */
export interface CommandEnv {
  /**
   * The URL of `main.ts`: modules that must be loaded by URL (the workers of `lb --workers`)
   * are found relative to it, which holds in the source tree and in both kinds of binary
   * (in a Bun-built one, every bundled module's own `import.meta.url` is the executable's).
   */
  mainUrl: string;
}
