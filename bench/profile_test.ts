import assert from "node:assert/strict";
import { runScript, testBadArgs } from "./_script.ts";

const PROFILE = new URL("./profile.ts", import.meta.url).pathname;
const profile = (args: string[]) => runScript(PROFILE, args);

testBadArgs("profile", PROFILE, [
  [["--bogus"], "profile: Unknown option '--bogus'"],
  [["--contender", "haproxy,envoy"], 'profile: --contender: no contender "envoy"'],
  [["--load", "bulk"], 'profile: --load: no load "bulk"'],
  [["--seconds", "1.5"], 'profile: --seconds wants a whole number above 0, not "1.5"'],
]);

Deno.test("profile --draw of a file that is not a profile: one line, exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [text, message] of [["{}", /is not a V8 \.cpuprofile/], ["hello\n", /no samples/]]) {
      await Deno.writeTextFile(`${dir}/bad.txt`, text as string);
      const { code, err } = await profile(["--draw", `${dir}/bad.txt`, "--out", dir]);
      assert.equal(code, 1);
      assert.match(err[0], message as RegExp);
      assert.equal(err.filter((line) => line !== "").length, 1, err.join("\n"));
    }
    const missing = await profile(["--draw", `${dir}/none.txt`]);
    assert.equal(missing.code, 1);
    assert.match(missing.err[0], /^profile: cannot read /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("profile --draw of a V8 .cpuprofile writes its flame graph and folded stacks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: "(root)", url: "" }, children: [2] },
        { id: 2, callFrame: { functionName: "relay", url: "file:///x/net/epoll.ts" } },
      ],
      samples: [2, 2],
      timeDeltas: [0, 125],
      startTime: 0,
      endTime: 125,
    };
    await Deno.writeTextFile(`${dir}/lb.cpuprofile`, JSON.stringify(cpuProfile));
    const { code, out } = await profile(["--draw", `${dir}/lb.cpuprofile`, "--out", dir]);
    assert.equal(code, 0);
    assert.match(
      out[0],
      /flame-lb\.svg: 125 µs; innermost frame in the kernel 0\.0%, JavaScript 100\.0%/,
    );
    assert.equal(
      await Deno.readTextFile(`${dir}/flame-lb.folded`),
      "relay /x/net/epoll.ts_[j] 125\n",
    );
    assert.match(
      await Deno.readTextFile(`${dir}/flame-lb.svg`),
      /<title>relay \/x\/net\/epoll\.ts_\[j\] \(125 µs, 100\.00%\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("profile --help: the usage, with every contender, exit 0", async () => {
  const { code, out } = await profile(["--help"]);
  assert.equal(code, 0);
  assert.match(out[0], /^usage: deno task profile /);
  for (const name of ["l4chat-deno-epoll", "l4chat-bun", "haproxy", "nginx"]) {
    assert.ok(out.join("\n").includes(name), `${name} in the usage`);
  }
});
