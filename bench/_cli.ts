/**
 * The command lines of the benchmark's scripts (`deno task bench`, `deno task profile`): a bad
 * one is one line on what is wrong and the usage, exit 2, before anything starts.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** What a script calls on a bad command line; never returns. */
export type Fail = (message: string) => never;

/** A {@linkcode Fail} that prints `<tool>: <message>` and `usage` to stderr and exits 2. */
export function usageFailure(tool: string, usage: string): Fail {
  return (message) => {
    console.error(`${tool}: ${message}\n${usage}`);
    Deno.exit(2);
  };
}

/** `Deno.args` parsed with `options` (strict: an unknown option fails). */
export function parseOptions<T extends ParseArgsOptionsConfig>(options: T, fail: Fail) {
  try {
    return parseArgs({ args: Deno.args, options }).values;
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** `text` as a whole number above 0 (undefined stays undefined), or a failure naming `--flag`. */
export function wholeAboveZero(flag: string, text: string, fail: Fail): number;
export function wholeAboveZero(
  flag: string,
  text: string | undefined,
  fail: Fail,
): number | undefined;
export function wholeAboveZero(
  flag: string,
  text: string | undefined,
  fail: Fail,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isInteger(n) && n > 0
    ? n
    : fail(`--${flag} wants a whole number above 0, not "${text}"`);
}

/**
 * The names of a repeatable option, each of which may be a comma list; each must be one of
 * `known`, or a failure says `--<flag>: no <what> "<name>"`.
 */
export function names(
  texts: string[] | undefined,
  known: readonly string[],
  flag: string,
  what: string,
  fail: Fail,
): string[] | undefined {
  const all = texts?.flatMap((text) => text.split(",")).filter((name) => name !== "");
  for (const name of all ?? []) {
    if (!known.includes(name)) fail(`--${flag}: no ${what} "${name}"`);
  }
  return all;
}
