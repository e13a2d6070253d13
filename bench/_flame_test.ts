import assert from "node:assert/strict";
import {
  builtinsOf,
  type CpuProfile,
  flameGraphSvg,
  foldCpuProfile,
  foldedText,
  foldPerfScript,
  kindOf,
  summarize,
} from "./_flame.ts";

// Three samples as `perf script` prints them (innermost frame first), cut short.
const PERF_SCRIPT = `deno  2080 39304.676576:    1003009 cpu-clock:ppp: 
\tffffffff816d5379 __x64_sys_close+0x39 ([kernel.kallsyms])
\tffffffff8225a0d5 do_syscall_64+0x45 ([kernel.kallsyms])
\t           f8a1a __close+0x3a (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    7f8c7003648f JS:*'close file:///work/main/net/epoll.ts:1435:8+0x34f (/tmp/perf-2080.map)
\t    7f8c70054a12 JS:+'#loop file:///work/main/net/epoll.ts:612:14+0x2352 (/tmp/perf-2080.map)
\t         362187a [unknown] (/opt/deno/deno)
\t         3724e35 [unknown] (/opt/deno/deno)
\t           2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)

deno  2080 39304.677646:    1003009 cpu-clock:ppp: 
\tffffffff816d5379 __x64_sys_close+0x39 ([kernel.kallsyms])
\tffffffff8225a0d5 do_syscall_64+0x45 ([kernel.kallsyms])
\t           f8a1a __close+0x3a (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    7f8c7003648f JS:*'close file:///work/main/net/epoll.ts:1435:8+0x34f (/tmp/perf-2080.map)
\t    7f8c70054a12 JS:+'#loop file:///work/main/net/epoll.ts:612:14+0x2352 (/tmp/perf-2080.map)
\t         362187a [unknown] (/opt/deno/deno)
\t           2724a __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)

tokio-runtime-w  2085/2090 39304.678000:    1003009 cpu-clock:ppp: 
\t    7f8c70012345 JS:~' file:///work/main/lb/mod.ts:10:3+0x10 (/tmp/perf-2080.map)
\t    7f8c70012300 Builtin:PromiseFulfillReactionJob+0x20 (/tmp/perf-2080.map)
\t    7f8c70012200 [unknown] (/tmp/perf-2080.map)
`;

const CLOSE_STACK = [
  "deno",
  "__libc_start_call_main",
  "[deno]",
  "#loop net/epoll.ts_[j]",
  "close net/epoll.ts_[j]",
  "__close",
  "do_syscall_64_[k]",
  "__x64_sys_close_[k]",
].join(";");

Deno.test("foldPerfScript() folds samples root first, by thread, runs of [binary] as one", () => {
  const folded = foldPerfScript(PERF_SCRIPT, "/work/main/");
  assert.deepEqual(
    [...folded],
    [
      [CLOSE_STACK, 2],
      [
        "tokio-runtime-w;[jit]_[j];Builtin:PromiseFulfillReactionJob_[j];(anonymous) lb/mod.ts_[j]",
        1,
      ],
    ],
  );
});

// V8's code log (`--log-code`) and the memory map of the process it ran in: the builtins are
// mapped from offset 0x35cf000 of the binary's file, a second mapping of it.
const CODE_LOG = `v8-version,15,0,245,2,0,0
code-creation,Builtin,3,4877,0x7f4ee7dc0000,1016,DeoptimizationEntry_Eager
code-creation,Builtin,3,4888,0x7f4ee7dc0400,1020,RunMicrotasks
code-creation,BytecodeHandler,0,18007,0x7f4ee7dc1000,24,Wide
code-creation,JS,1,20000,0x7f4ee8000100,40,close file:///work/main/net/epoll.ts:1:1
`;
const MAPS = `5620e2453000-5620e6147000 r-xp 01b8e000 fe:00 1441962    /opt/deno/deno
7f4ee7dc0000-7f4ee7fe6000 r-xp 035cf000 fe:00 1441962    /opt/deno/deno
7f4ee8000000-7f4ee8100000 rwxp 00000000 00:00 0
`;

Deno.test("builtinsOf() places the logged builtins in their binary's file, by offset", () => {
  assert.deepEqual(builtinsOf(CODE_LOG, MAPS), {
    binary: "/opt/deno/deno",
    starts: [0x35cf000, 0x35cf400, 0x35d0000],
    ends: [0x35cf000 + 1016, 0x35cf400 + 1020, 0x35d0000 + 24],
    names: ["DeoptimizationEntry_Eager", "RunMicrotasks", "Wide"],
  });
  // No builtins logged (a log of something else), or none in a mapping of a file.
  assert.equal(builtinsOf("v8-version,15\n", MAPS), undefined);
  assert.equal(
    builtinsOf(CODE_LOG, "7f4ee7dc0000-7f4ee7fe6000 r-xp 00000000 00:00 0\n"),
    undefined,
  );
});

Deno.test("foldPerfScript() names the frames in V8's builtins, and only those", () => {
  const builtins = builtinsOf(
    CODE_LOG.replace("0x7f4ee7dc0400,1020", "0x7f4ee7e12800,256"),
    MAPS,
  );
  // 0x362187a is 0x7a into RunMicrotasks (at 0x35cf000 + 0x52800); 0x3724e35 is in no builtin.
  const folded = foldPerfScript(PERF_SCRIPT, "/work/main/", builtins);
  const stacks = [...folded.keys()];
  assert.equal(
    stacks[0],
    [
      "deno",
      "__libc_start_call_main",
      "[deno]",
      "Builtin:RunMicrotasks_[j]",
      "#loop net/epoll.ts_[j]",
      "close net/epoll.ts_[j]",
      "__close",
      "do_syscall_64_[k]",
      "__x64_sys_close_[k]",
    ].join(";"),
  );
  assert.equal(folded.get(stacks[0]), 1);
  // The sample without the unnamed frame: RunMicrotasks straight under main.
  assert.equal(folded.get(stacks[1]), 1);
  assert.match(stacks[1], /^deno;__libc_start_call_main;Builtin:RunMicrotasks_\[j\];#loop/);
  assert.equal(kindOf("Builtin:RunMicrotasks_[j]"), "js");
  // A builtin counts as JavaScript where it is innermost, but is not one of the program's
  // functions: the microtask loop would head that list, above what it runs.
  const summary = summarize(folded);
  assert.ok(summary.topJs.every(({ frame }) => !frame.startsWith("Builtin:")));
  assert.deepEqual(summary.topJs[0], { frame: "#loop net/epoll.ts_[j]", share: 2 / 3 });
  // Another binary at the same offsets is not V8's.
  const other = foldPerfScript(
    PERF_SCRIPT.replaceAll("/opt/deno/deno", "/usr/bin/x"),
    "",
    builtins,
  );
  assert.ok([...other.keys()].every((stack) => !stack.includes("Builtin:RunMicrotasks")));
});

Deno.test("foldPerfScript() of text without samples is empty", () => {
  assert.equal(foldPerfScript("").size, 0);
  assert.equal(foldPerfScript("not a profile\n\tat all\n").size, 0);
});

Deno.test("kindOf() tells the kernel, JavaScript and native code apart", () => {
  const cases: [string, string][] = [
    ["do_syscall_64_[k]", "kernel"],
    ["close net/epoll.ts_[j]", "js"],
    ["__close", "native"],
    ["[deno]", "native"],
  ];
  for (const [frame, kind] of cases) assert.equal(kindOf(frame), kind, frame);
});

Deno.test("summarize() shares by innermost frame's kind, heaviest first, JS inclusive", () => {
  const summary = summarize(foldPerfScript(PERF_SCRIPT, "/work/main/"));
  assert.equal(summary.total, 3);
  assert.deepEqual(summary.byKind, { kernel: 2 / 3, js: 1 / 3, native: 0 });
  assert.deepEqual(summary.top[0], { frame: "__x64_sys_close_[k]", share: 2 / 3 });
  assert.deepEqual(summary.bySyscall, [
    { frame: "close", share: 2 / 3 },
    { frame: "user", share: 1 / 3 },
  ]);
  // #loop is on both samples of the close, so it counts them, though neither ends in it.
  assert.deepEqual(summary.topJs.slice(0, 2), [
    { frame: "#loop net/epoll.ts_[j]", share: 2 / 3 },
    { frame: "close net/epoll.ts_[j]", share: 2 / 3 },
  ]);
});

Deno.test("foldCpuProfile() weighs each sample by the time to the next, JS frames marked", () => {
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: "(root)", url: "" }, children: [2, 4] },
      { id: 2, callFrame: { functionName: "run", url: "file:///app/net/epoll.ts" }, children: [3] },
      { id: 3, callFrame: { functionName: "", url: "file:///app/lb/mod.ts" } },
      { id: 4, callFrame: { functionName: "(garbage collector)", url: "" } },
    ],
    samples: [3, 3, 4, 2],
    timeDeltas: [0, 100, 250, 50],
  };
  assert.deepEqual(
    [...foldCpuProfile(profile, "/app/")],
    [
      ["run net/epoll.ts_[j];(anonymous) lb/mod.ts_[j]", 350],
      ["(garbage collector)", 50],
    ],
  );
});

Deno.test("foldedText() writes one sorted `stack weight` line per stack", () => {
  assert.equal(foldedText(new Map([["b;c", 2], ["a", 1]])), "a 1\nb;c 2\n");
});

Deno.test("flameGraphSvg() draws each frame as wide as its share, callers under callees", () => {
  const svg = flameGraphSvg(new Map([["main;work", 3], ["main;idle<>", 1]]), {
    title: "t & u",
    width: 1000,
  });
  const box = (name: string) => {
    const match = svg.match(
      new RegExp(`<title>${name} [^<]*</title><rect x="([\\d.]+)" y="(\\d+)" width="([\\d.]+)"`),
    );
    assert.ok(match, `a box for ${name}`);
    return { x: Number(match[1]), y: Number(match[2]), width: Number(match[3]) };
  };
  assert.deepEqual(box("all"), { x: 0, y: box("all").y, width: 1000 });
  assert.equal(box("main").width, 1000);
  // Children left to right by name, each as wide as its weight.
  assert.deepEqual(box("idle&lt;&gt;"), { x: 0, y: box("work").y, width: 250 });
  assert.deepEqual(box("work"), { x: 250, y: box("work").y, width: 750 });
  assert.ok(box("work").y < box("main").y && box("main").y < box("all").y, "flames grow up");
  assert.match(svg, /<title>work \(3 samples, 75\.00%\)<\/title>/);
  assert.match(svg, />t &amp; u</);
});

Deno.test("flameGraphSvg() leaves out boxes too thin to see, and labels what fits", () => {
  const svg = flameGraphSvg(new Map([["a", 1_000_000], ["b", 1]]), {
    title: "thin",
    width: 100,
  });
  assert.ok(!svg.includes("<title>b "), "b is 0.0001 px wide");
  assert.match(svg, /<text [^>]*>a<\/text>/);
});
