/**
 * `deno task profile`: flame graphs of proxies under one of the benchmark's loads, side by side.
 * Each contender runs in front of the same nginx HTTP backend; while `wrk` loads it, `perf
 * record -g` samples its processes (kernel and user space, every thread); the samples are
 * folded and drawn as an SVG flame graph, and summed up by where the time went. l4chat on Deno
 * runs with V8's `--perf-basic-prof`, so its JavaScript frames have names, and `--log-code`, so
 * that V8's builtins (promises, `Map`, calls) have theirs too.
 *
 * Usage: deno task profile [--contender l4chat-deno-epoll,haproxy] [--load close|keep-alive]
 * [--seconds S] [--out DIR]
 * deno task profile --draw FILE [--out DIR] (a flame graph of `perf script` output or of a V8
 * `.cpuprofile` from `deno run --cpu-prof`)
 *
 * @module
 */
import {
  ensurePackage,
  haproxy,
  L4CHAT_V8_FLAGS,
  L4CHAT_VARIANTS,
  l4chatLb,
  type L4chatVariant,
  nginxStream,
  startHttpBackend,
} from "./_contenders.ts";
import { runCapture, sleep, stopAll, stopAllOnSignal } from "./_procs.ts";
import { runWrk } from "./_tools.ts";
import { names, parseOptions, usageFailure, wholeAboveZero } from "./_cli.ts";
import {
  type Builtins,
  builtinsOf,
  type CpuProfile,
  flameGraphSvg,
  foldCpuProfile,
  type Folded,
  foldedText,
  foldPerfScript,
  summarize,
} from "./_flame.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const LOADS = ["close", "keep-alive"];
const SAMPLE_HZ = 997;

/** Where V8 logs the code of process `pid` (`%p` for V8 to fill in; see {@linkcode withPerfMap}). */
const codeLog = (pid: number | "%p") => `/tmp/l4chat-v8-code-${pid}.log`;

/**
 * l4chat as `variant` runs it, with V8 writing the names of compiled code for perf, and where it
 * put its builtins (to {@linkcode codeLog}), which perf cannot name in Deno's stripped binary.
 */
function withPerfMap(variant: L4chatVariant): L4chatVariant {
  const prefix = variant.prefix.map((arg) =>
    arg === L4CHAT_V8_FLAGS
      ? `${L4CHAT_V8_FLAGS},--perf-basic-prof,--log-code,--no-logfile-per-isolate,` +
        `--logfile=${codeLog("%p")}`
      : arg
  );
  return { ...variant, prefix };
}

/**
 * The builtins V8 placed in `pids`' binary, from their code logs and memory maps, if any of them
 * logged its code (l4chat on Deno).
 */
async function builtinsOfPids(pids: number[]): Promise<Builtins | undefined> {
  for (const pid of pids) {
    const log = await Deno.readTextFile(codeLog(pid)).catch(() => "");
    const maps = await Deno.readTextFile(`/proc/${pid}/maps`).catch(() => "");
    const found = builtinsOf(log, maps);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Removes what V8 left in /tmp for `pids`: its perf map and its code log, where it wrote them. */
async function removeV8Files(pids: number[]): Promise<void> {
  for (const pid of pids) {
    for (const file of [`/tmp/perf-${pid}.map`, codeLog(pid)]) {
      await Deno.remove(file).catch(() => {});
    }
  }
}

const CONTENDERS = [
  ...L4CHAT_VARIANTS.map((variant) => l4chatLb(withPerfMap(variant))),
  haproxy,
  nginxStream,
];
const NAMES = CONTENDERS.map((c) => c.name);

const USAGE = `usage: deno task profile [--contender NAME,...] [--load ${LOADS.join("|")}]
  [--seconds S] [--out DIR]
  deno task profile --draw FILE [--out DIR]  (perf script output, or a V8 .cpuprofile)
contenders: ${NAMES.join(", ")}
defaults: l4chat-deno-epoll and haproxy, load close (new connections: wrk -c50 with
Connection: close; keep-alive: wrk -c50), 5 s sampled at ${SAMPLE_HZ} Hz, out bench-results.
Writes <out>/flame-<contender>-<load>.svg and .folded. See docs/benchmarks.md.`;

/** The command line's options, or exit 2 with one line on what is wrong, and the usage. */
function options() {
  const fail = usageFailure("profile", USAGE);
  const values = parseOptions({
    contender: { type: "string", multiple: true },
    load: { type: "string", default: "close" },
    seconds: { type: "string", default: "5" },
    out: { type: "string", default: `${ROOT}bench-results` },
    draw: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  }, fail);
  const contenders = names(values.contender, NAMES, "contender", "contender", fail) ??
    ["l4chat-deno-epoll", "haproxy"];
  if (!LOADS.includes(values.load)) fail(`--load: no load "${values.load}"`);
  return { ...values, contenders, seconds: wholeAboveZero("seconds", values.seconds, fail) };
}

function percent(share: number): string {
  return `${(100 * share).toFixed(1)}%`;
}

/** Writes the flame graph and the folded stacks of `name`, and prints where the time went. */
async function publish(
  folded: Folded,
  name: string,
  out: string,
  text: { title: string; subtitle: string; unit: string },
): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/${name}.svg`, flameGraphSvg(folded, text));
  await Deno.writeTextFile(`${out}/${name}.folded`, foldedText(folded));
  const summary = summarize(folded);
  const { kernel, js, native } = summary.byKind;
  console.log(
    `${out}/${name}.svg: ${summary.total} ${text.unit}; innermost frame in the ` +
      `kernel ${percent(kernel)}, JavaScript ${percent(js)}, native ${percent(native)}`,
  );
  if (kernel > 0) {
    const calls = summary.bySyscall.map(({ frame, share }) => `${frame} ${percent(share)}`);
    console.log(`  by system call: ${calls.join(", ")}`);
  }
  console.log("  heaviest innermost frames:");
  for (const { frame, share } of summary.top) console.log(`    ${percent(share)}  ${frame}`);
  if (summary.topJs.length > 0) {
    console.log("  JavaScript functions, with what they call:");
    for (const { frame, share } of summary.topJs) console.log(`    ${percent(share)}  ${frame}`);
  }
}

/** `--draw FILE`: a flame graph of a profile made elsewhere. */
async function draw(file: string, out: string): Promise<void> {
  let text;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    console.error(`profile: cannot read ${file}: ${(err as Error).message}`);
    Deno.exit(1);
  }
  const base = file.split("/").pop()!.replace(/\.[^.]*$/, "");
  if (text.trimStart().startsWith("{")) {
    let profile: CpuProfile;
    try {
      profile = JSON.parse(text);
      if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples)) throw new Error();
    } catch {
      console.error(`profile: ${file} is not a V8 .cpuprofile (JSON with nodes and samples)`);
      Deno.exit(1);
    }
    return publish(foldCpuProfile(profile, ROOT), `flame-${base}`, out, {
      title: `${base} (V8 CPU profile)`,
      subtitle: "JavaScript only: (program) is the runtime's own code and system calls",
      unit: "µs",
    });
  }
  const folded = foldPerfScript(text, ROOT);
  if (folded.size === 0) {
    console.error(`profile: ${file} holds no samples (perf script output of perf record -g?)`);
    Deno.exit(1);
  }
  return publish(folded, `flame-${base}`, out, {
    title: base,
    subtitle: "perf script",
    unit: "samples",
  });
}

/** Profiles each contender in turn under the load; one backend for all. */
async function profile(values: ReturnType<typeof options>): Promise<void> {
  const needed: [string, string][] = [["linux-perf", "perf"], ["wrk", "wrk"], ["nginx", "nginx"]];
  for (const [pkg, cmd] of needed) {
    if (!(await ensurePackage(pkg, { cmd }))) {
      console.error(`profile: ${cmd} is needed`);
      Deno.exit(1);
    }
  }
  if (values.contenders.includes("haproxy")) await ensurePackage("haproxy", { cmd: "haproxy" });
  if (values.contenders.includes("nginx")) {
    await ensurePackage("libnginx-mod-stream", {
      path: "/usr/lib/nginx/modules/ngx_stream_module.so",
    });
  }
  const dir = await Deno.makeTempDir({ prefix: "l4chat-profile-" });
  const close = values.load === "close";
  try {
    const backend = await startHttpBackend(dir);
    for (const name of values.contenders) {
      const contender = CONTENDERS.find((c) => c.name === name)!;
      const proxy = await contender.start(backend.port, dir);
      try {
        // Warm up as the benchmark does: code compiled, pools made, before sampling.
        await runWrk(proxy.port, { seconds: 1, connections: 50, close });
        const data = `${dir}/${name}.data`;
        const load = runWrk(proxy.port, { seconds: values.seconds + 2, connections: 50, close });
        await sleep(1_000);
        const record = await runCapture("perf", [
          "record",
          "-F",
          String(SAMPLE_HZ),
          "-g",
          "-p",
          proxy.pids().join(","),
          "-o",
          data,
          "--",
          "sleep",
          String(values.seconds),
        ], (values.seconds + 30) * 1000);
        const wrk = await load;
        // While it runs: its memory map says where its builtins came from.
        const builtins = await builtinsOfPids(proxy.pids());
        const rate = close ? "new connections/s" : "requests/s";
        console.log(`${name}: ${Math.round(wrk.requestsPerSecond)} ${rate} while sampled`);
        if (record.code !== 0) {
          throw new Error(`perf record exited ${record.code}: ${record.stderr}`);
        }
        const script = await runCapture("perf", ["script", "-i", data], 120_000);
        if (script.code !== 0) {
          throw new Error(`perf script exited ${script.code}: ${script.stderr}`);
        }
        await publish(
          foldPerfScript(script.stdout, ROOT, builtins),
          `flame-${name}-${values.load}`,
          values.out,
          {
            title: `${name} under ${values.load} load: ${
              Math.round(wrk.requestsPerSecond)
            } ${rate}`,
            subtitle: `perf record -F ${SAMPLE_HZ} -g, ${values.seconds} s of wrk -t1 -c50` +
              (close ? ' -H "Connection: close"' : "") + " to a tiny nginx HTTP backend",
            unit: "samples",
          },
        );
      } finally {
        // V8 leaves the names of its code behind (perf script has read them by now).
        await removeV8Files(proxy.pids());
        await proxy.stop();
      }
    }
    await backend.stop();
  } finally {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const values = options();
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const unwatch = stopAllOnSignal();
try {
  if (values.draw !== undefined) await draw(values.draw, values.out);
  else await profile(values);
} catch (err) {
  console.error(`profile: ${(err as Error).message}`);
  await stopAll();
  Deno.exit(1);
} finally {
  unwatch();
}
