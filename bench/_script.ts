/**
 * For the tests of the benchmark's scripts: run one as `deno task` does, and check how it
 * takes a bad command line.
 *
 * @module
 */
import assert from "node:assert/strict";

/** What a script run said: its exit code, and its output's lines. */
export interface ScriptRun {
  code: number;
  out: string[];
  err: string[];
}

/** Runs the script at `path` (a file URL's path) with `args` and every permission. */
export async function runScript(path: string, args: string[]): Promise<ScriptRun> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", path, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = (bytes: Uint8Array) => new TextDecoder().decode(bytes).split("\n");
  return { code, out: lines(stdout), err: lines(stderr) };
}

/**
 * One test per case: `deno task <task>` with the case's arguments prints the case's line, then
 * its usage, no stack trace, and exits 2 (before it starts anything).
 */
export function testBadArgs(task: string, path: string, cases: [string[], string][]): void {
  for (const [args, message] of cases) {
    Deno.test(`${task} ${args.join(" ")}: one line on what is wrong, the usage, exit 2`, async () => {
      const { code, err } = await runScript(path, args);
      assert.equal(code, 2);
      assert.equal(err[0], message);
      assert.ok(err[1].startsWith(`usage: deno task ${task} `), err[1]);
      assert.ok(!err.some((line) => /^\s+at /.test(line)), err.join("\n"));
    });
  }
}
