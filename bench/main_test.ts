import assert from "node:assert/strict";
import { runScript, testBadArgs } from "./_script.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const bench = (args: string[]) => runScript(MAIN, args);

testBadArgs("bench", MAIN, [
  [["--bogus"], "bench: Unknown option '--bogus'"],
  [["--reps", "abc"], 'bench: --reps wants a whole number above 0, not "abc"'],
  [["--seconds", "0"], 'bench: --seconds wants a whole number above 0, not "0"'],
  [["--clients", "10,x"], 'bench: --clients wants a whole number above 0, not "x"'],
  [["--only", "proxy,disk"], 'bench: --only: no workload "disk"'],
  [["--contender", "haproxy,envoy"], 'bench: --contender: no contender "envoy"'],
]);

Deno.test("bench --report of a file that is not there: one line, exit 1", async () => {
  const { code, err } = await bench(["--report", "/nonexistent/run.json"]);
  assert.equal(code, 1);
  assert.match(err[0], /^bench: cannot read \/nonexistent\/run\.json: /);
  assert.equal(err.filter((line) => line !== "").length, 1, err.join("\n"));
});

Deno.test("bench --help: the usage, with every contender, exit 0", async () => {
  const { code, out } = await bench(["--help"]);
  assert.equal(code, 0);
  assert.match(out[0], /^usage: deno task bench /);
  for (const name of ["l4chat-deno", "l4chat-bun-epoll", "haproxy", "nginx", "reference-c"]) {
    assert.ok(out.join("\n").includes(name), `${name} in the usage`);
  }
});
