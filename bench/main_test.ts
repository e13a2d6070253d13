import assert from "node:assert/strict";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/** Runs `deno task bench` with `args`: its exit code, and its output's lines. */
async function bench(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = (bytes: Uint8Array) => new TextDecoder().decode(bytes).split("\n");
  return { code, out: lines(stdout), err: lines(stderr) };
}

const BAD: [string[], string][] = [
  [["--bogus"], "bench: Unknown option '--bogus'"],
  [["--reps", "abc"], 'bench: --reps wants a whole number above 0, not "abc"'],
  [["--seconds", "0"], 'bench: --seconds wants a whole number above 0, not "0"'],
  [["--clients", "10,x"], 'bench: --clients wants a whole number above 0, not "x"'],
  [["--only", "proxy,disk"], 'bench: --only: no workload "disk"'],
  [["--contender", "haproxy,envoy"], 'bench: --contender: no contender "envoy"'],
];

for (const [args, message] of BAD) {
  Deno.test(`bench ${args.join(" ")}: one line on what is wrong, the usage, exit 2`, async () => {
    // Nothing started: it stops before any contender or package.
    const { code, err } = await bench(args);
    assert.equal(code, 2);
    assert.equal(err[0], message);
    assert.match(err[1], /^usage: deno task bench /);
    assert.ok(!err.some((line) => /^\s+at /.test(line)), err.join("\n"));
  });
}

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
