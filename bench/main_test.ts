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

Deno.test("bench --report of two runs: pooled, each round paired within its own run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "l4chat-bench-report-" });
  try {
    const run = (haproxy: number, l4chat: number) => ({
      samples: {
        http: {
          "haproxy": [{ round: 0, keepaliveRps: haproxy, keepaliveP99Ms: 1, newConnPerSec: 10 }],
          "l4chat-deno": [{ round: 0, keepaliveRps: l4chat, keepaliveP99Ms: 2, newConnPerSec: 20 }],
        },
      },
    });
    // Better in the first run's round (1.10x), worse in the second's (0.95x): paired across
    // runs instead, the second run's HAProxy would stand for both (0.55x and 0.95x).
    await Deno.writeTextFile(`${dir}/a.json`, JSON.stringify(run(100, 110)));
    await Deno.writeTextFile(`${dir}/b.json`, JSON.stringify(run(200, 190)));
    const { code, out } = await bench(["--report", `${dir}/a.json,${dir}/b.json`]);
    assert.equal(code, 0);
    const text = out.join("\n");
    assert.match(text, /^Pooled over 2 saved runs: /);
    const row = out.find((line) => line.startsWith("| l4chat-deno | 1.02x (0.95-1.10x), 1 of 2"));
    assert.ok(row, text);
    // p99 twice HAProxy's in both rounds, new connections twice its rate in both.
    assert.match(
      row,
      /\| 2\.00x \(2\.00-2\.00x\), 0 of 2, p 1\.000 \| 2\.00x \(2\.00-2\.00x\), 2 of 2, p 0\.250 \|$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench --report of a file that is not a saved run: one line, exit 1", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify({ samples: "none" }));
    const { code, err } = await bench(["--report", file]);
    assert.equal(code, 1);
    assert.equal(err.filter((line) => line !== "").length, 1, err.join("\n"));
    assert.match(err[0], /^bench: .* is not a saved run of deno task bench \(no samples\)$/);
  } finally {
    await Deno.remove(file);
  }
});
