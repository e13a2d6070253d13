/**
 * `deno task bench`: l4chat against HAProxy and nginx on loopback, in one run. See
 * `docs/benchmarks.md` for what it measures and the latest figures.
 *
 * Usage: deno task bench [--quick] [--reps N] [--seconds S] [--only proxy|memory|chat|stalled]
 * [--contender none,l4chat-deno,l4chat-deno-epoll,l4chat-deno-runtime,l4chat-deno-w2,l4chat-bun,
 * l4chat-bun-epoll,l4chat-bun-runtime,haproxy,nginx,reference-c,reference-uring,reference-epoll,
 * reference-c-copy,reference-c-splice]
 * (the reference relays only when named; serv-<name> runs with l4chat-<name> in the chat workloads)
 * [--clients 10,100,1000]
 * deno task bench --report bench-results/<time>.json[,...] (prints the tables of saved runs; of
 * several, pooled: each round is paired within its own run)
 *
 * Every contender is started and stopped by PID, every step has a time limit, repetitions
 * are interleaved across contenders (the order rotates each repetition), and the table gives
 * medians, spreads and ratios to HAProxy measured in the same run. Raw samples go to
 * `bench-results/<time>.json` (git-ignored).
 *
 * @module
 */
import {
  buildC,
  BUN,
  type Contender,
  ensurePackage,
  haproxy,
  L4CHAT_V8_FLAGS,
  L4CHAT_VARIANTS,
  l4chatLb,
  type L4chatVariant,
  nginxStream,
  noProxy,
  referenceCCopy,
  referenceCSplice,
  referenceEpoll,
  referenceUring,
  type Running,
  startFloodBackend,
  startHttpBackend,
  startIperfServer,
  startL4chat,
  versionOf,
} from "./_contenders.ts";
import {
  cpuSeconds,
  fdLimit,
  freePort,
  type Proc,
  rssBytes,
  sleep,
  snapshot,
  start,
  stop,
  stopAll,
  stopAllBut,
  stopAllOnSignal,
  waitForPort,
} from "./_procs.ts";
import { median, signTest, spread } from "./_stats.ts";
import { names, parseOptions, usageFailure, wholeAboveZero } from "./_cli.ts";
import { runIperf, runWrk } from "./_tools.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORKLOADS = ["proxy", "memory", "chat", "stalled"];
const CONTENDER_NAMES = [
  "none",
  ...L4CHAT_VARIANTS.map((v) => `l4chat-${v.name}`),
  "haproxy",
  "nginx",
  "reference-c",
  "reference-uring",
  "reference-epoll",
  "reference-c-copy",
  "reference-c-splice",
];
const USAGE = `usage: deno task bench [--quick] [--reps N] [--seconds S] [--only ${
  WORKLOADS.join("|")
}]
  [--contender NAME,...] [--clients N,...]
  deno task bench --report bench-results/<time>.json[,...]  (the tables of saved runs;
    of several, pooled, each round paired within its own run)
contenders: ${CONTENDER_NAMES.join(", ")}
defaults: 3 repetitions of 5 s (--quick: 1 of 1 s); proxy, memory and chat (stalled only when
named); every contender but the reference relays; chat at 10, 100 and 1000 clients (--quick:
10, 100).
See docs/benchmarks.md.`;

/** The command line's options, or exit 2 with one line on what is wrong, and the usage. */
function options() {
  const fail = usageFailure("bench", USAGE);
  const values = parseOptions({
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    seconds: { type: "string" },
    only: { type: "string", multiple: true },
    contender: { type: "string", multiple: true },
    clients: { type: "string" },
    report: { type: "string", multiple: true },
    help: { type: "boolean", short: "h", default: false },
  }, fail);
  return {
    ...values,
    reps: wholeAboveZero("reps", values.reps, fail),
    seconds: wholeAboveZero("seconds", values.seconds, fail),
    clients: values.clients?.split(",").map((c) => wholeAboveZero("clients", c, fail)),
    only: names(values.only, WORKLOADS, "only", "workload", fail),
    report: values.report?.flatMap((text) => text.split(",")).filter((file) => file !== ""),
    contender: names(values.contender, CONTENDER_NAMES, "contender", "contender", fail),
  };
}

const values = options();
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const QUICK = values.quick;
const REPS = values.reps ?? (QUICK ? 1 : 3);
const SECONDS = values.seconds ?? (QUICK ? 1 : 5);
const CHAT_SECONDS = QUICK ? 1 : 3;
const CHAT_CLIENTS = values.clients !== undefined
  ? values.clients
  : QUICK
  ? [10, 100]
  : [10, 100, 1000];
const CHAT_RATE = 5000;
/** Connections of the memory workload's warm-up, before its baseline. */
const WARMUP_CONNECTIONS = 20;
/** Seconds of unmeasured load before each measured wrk run. */
const WARMUP_SECONDS = 1;
const WRK_CONNECTIONS = 50;
/** Seconds of each HTTP workload per contender per round. */
const HTTP_ROUND_SECONDS = 1;
/** Rounds of the HTTP workloads per repetition: as many seconds in all as a bulk run. */
const HTTP_ROUNDS = Math.max(1, Math.round(SECONDS / HTTP_ROUND_SECONDS));
/** Clients of the stalled-download workload, and how long after they connect it measures. */
const STALLED_CLIENTS = 200;
const STALLED_WAIT_MS = 5000;
/** The workloads run; `stalled` only when named. */
const ONLY = new Set(values.only ?? ["proxy", "memory", "chat"]);

/** One measurement: metric name to value. */
type Sample = Record<string, number>;
/** Samples per contender per group. */
const samples: Record<string, Record<string, Sample[]>> = {};

function record(group: string, contender: string, sample: Sample): void {
  ((samples[group] ??= {})[contender] ??= []).push(sample);
  const text = Object.entries(sample).map(([k, v]) => `${k}=${format(v)}`).join(" ");
  console.error(`  ${group} ${contender}: ${text}`);
}

function format(value: number): string {
  if (!Number.isFinite(value)) return "-";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Runs `step`, killing its processes if it fails or passes `timeoutMs`. */
async function bounded<T>(
  what: string,
  timeoutMs: number,
  step: () => Promise<T>,
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const kept = snapshot();
  try {
    return await Promise.race([
      step(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    console.error(`bench: ${what} failed: ${(err as Error).message}`);
    return undefined;
  } finally {
    clearTimeout(timer);
    await stopAllBut(kept);
  }
}

/** Rotates `list` by `by` places, so each repetition starts with another contender. */
function rotate<T>(list: readonly T[], by: number): T[] {
  const k = by % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

async function bulk(contender: Contender, iperfPort: number, dir: string) {
  const proxy = await contender.start(iperfPort, dir);
  try {
    const cpu0 = cpuSeconds(proxy.pids());
    const one = await runIperf(proxy.port, 1, SECONDS);
    const cpu = cpuSeconds(proxy.pids()) - cpu0;
    const four = await runIperf(proxy.port, 4, SECONDS);
    record("bulk", contender.name, {
      gbps1: one.bitsPerSecond / 1e9,
      gbps4: four.bitsPerSecond / 1e9,
      cpuSecPerGB: contender === noProxy ? NaN : cpu / (one.bytes / 1e9),
    });
  } finally {
    await proxy.stop();
  }
}

/**
 * The HTTP workloads of repetition `rep`: every contender runs at once in front of the same
 * backend, and each round gives each of them, one after the other, {@linkcode HTTP_ROUND_SECONDS}
 * of keep-alive, of new connections and of keep-alive over one connection (one request at a
 * time: the latency the proxy adds). This machine's speed drifts by tens of percent within
 * minutes; contenders measured seconds apart, round after round, see the same drift, so the
 * targets compare them round by round (see {@linkcode pairedRatio}).
 */
async function httpRounds(contenders: Contender[], httpPort: number, dir: string, rep: number) {
  const proxies: [Contender, Running][] = [];
  try {
    for (const contender of contenders) {
      proxies.push([contender, await contender.start(httpPort, dir)]);
    }
    const keepAlive = { seconds: HTTP_ROUND_SECONDS, connections: WRK_CONNECTIONS };
    const newConns = { ...keepAlive, close: true };
    // One request at a time: what the proxy adds to each request's latency.
    const oneConn = { ...keepAlive, connections: 1 };
    // An unmeasured second of each load first, for every contender: a runtime that compiles
    // its hot paths on first use is measured warm, as it would serve.
    for (const [, proxy] of proxies) {
      await runWrk(proxy.port, { ...keepAlive, seconds: WARMUP_SECONDS });
      await runWrk(proxy.port, { ...newConns, seconds: WARMUP_SECONDS });
    }
    for (let round = 0; round < HTTP_ROUNDS; round++) {
      for (const [contender, proxy] of rotate(proxies, rep + round)) {
        const keep = await runWrk(proxy.port, keepAlive);
        const fresh = await runWrk(proxy.port, newConns);
        const single = await runWrk(proxy.port, oneConn);
        record("http", contender.name, {
          round: rep * HTTP_ROUNDS + round,
          keepaliveRps: keep.requestsPerSecond,
          keepaliveP50Ms: keep.p50Ms,
          keepaliveP99Ms: keep.p99Ms,
          newConnPerSec: fresh.requestsPerSecond,
          oneConnRps: single.requestsPerSecond,
          oneConnP50Ms: single.p50Ms,
          errors: keep.errors + fresh.errors + single.errors,
        });
      }
    }
  } finally {
    for (const [, proxy] of proxies) await proxy.stop();
  }
}

/** Reads `holder`'s stdout lines. */
function lineReader(proc: Proc): () => Promise<string | undefined> {
  const reader = proc.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return async () => {
    while (!buffered.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) return undefined;
      buffered += value;
    }
    const at = buffered.indexOf("\n");
    const out = buffered.slice(0, at);
    buffered = buffered.slice(at + 1);
    return out;
  };
}

async function say(proc: Proc, text: string): Promise<void> {
  const writer = proc.child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  writer.releaseLock();
}

/** Starts `bench/idle_client.ts`, holding `counts` connections to `port` in turn. */
function startHolder(port: number, counts: number[], mode?: "send"): Promise<Proc> {
  const args = ["run", "--quiet", "--allow-net", `${ROOT}bench/idle_client.ts`, String(port)];
  args.push(counts.join(","), ...(mode === undefined ? [] : [mode]));
  return start("idle-client", Deno.execPath(), args, { pipeStdout: true, pipeStdin: true });
}

async function idleMemory(contender: Contender, httpPort: number, dir: string, counts: number[]) {
  const proxy: Running = await contender.start(httpPort, dir);
  let holder: Proc | undefined;
  try {
    // What is paid once, not per connection (code compiled on first use, buffer pools, tables
    // sized on first insert), belongs in the baseline: a second of traffic over a few
    // connections first, then a pause for the runtime to settle (JIT, GC).
    await runWrk(proxy.port, { seconds: WARMUP_SECONDS, connections: WARMUP_CONNECTIONS });
    await sleep(1500);
    const rss0 = rssBytes(proxy.pids());
    holder = await startHolder(proxy.port, counts);
    const next = lineReader(holder);
    const sample: Sample = { idleRssMB: rss0 / 1e6 };
    for (const count of counts) {
      const line = await next();
      if (line !== `held ${count}`) throw new Error(`idle client: ${line} (${holder.stderr()})`);
      await sleep(1500);
      sample[`bytesPerConn${count}`] = (rssBytes(proxy.pids()) - rss0) / count;
      await say(holder, "next\n");
    }
    record("memory", contender.name, sample);
  } finally {
    if (holder !== undefined) await stop(holder);
    await proxy.stop();
  }
}

/**
 * Clients that start a download and stop reading it: `STALLED_CLIENTS` connections through
 * `contender` to the flood backend each send a byte and read nothing; `STALLED_WAIT_MS` later
 * (the backend has filled every buffer between them by then), the proxy's RSS less its RSS
 * before, per client.
 */
async function stalledMemory(contender: Contender, floodPort: number, dir: string) {
  const proxy: Running = await contender.start(floodPort, dir);
  let holder: Proc | undefined;
  try {
    await sleep(1500);
    const rss0 = rssBytes(proxy.pids());
    holder = await startHolder(proxy.port, [STALLED_CLIENTS], "send");
    const line = await lineReader(holder)();
    if (line !== `held ${STALLED_CLIENTS}`) {
      throw new Error(`stalled client: ${line} (${holder.stderr()})`);
    }
    // What is measured is where memory stands after a while: nothing to wait for but time.
    await sleep(STALLED_WAIT_MS);
    const rss = rssBytes(proxy.pids());
    record("stalled", contender.name, {
      stalledRssMB: rss / 1e6,
      bytesPerStalledClient: (rss - rss0) / STALLED_CLIENTS,
    });
    await say(holder, "next\n");
  } finally {
    if (holder !== undefined) await stop(holder);
    await proxy.stop();
  }
}

async function chatLoad(
  port: number,
  clients: number,
  options: { rate: number; stalled: boolean },
  onJoined?: () => void,
) {
  const args = [
    "run",
    "--quiet",
    "--allow-net",
    "--allow-ffi",
    // As l4chat runs: the generator's own collections and cache misses count in every latency.
    L4CHAT_V8_FLAGS,
    `${ROOT}bench/chat_load.ts`,
    "--port",
    String(port),
    "--clients",
    String(clients),
    "--seconds",
    String(CHAT_SECONDS),
    "--rate",
    String(options.rate),
  ];
  if (options.stalled) args.push("--stalled");
  const proc = await start("chat-load", Deno.execPath(), args, {
    pipeStdout: true,
    pipeStdin: true,
  });
  try {
    const next = lineReader(proc);
    const joined = await next();
    if (joined !== "joined") throw new Error(`chat load: ${joined} ${proc.stderr()}`);
    onJoined?.();
    await say(proc, "go\n");
    const result = await next();
    if (result === undefined) throw new Error(`chat load ended: ${proc.stderr()}`);
    return JSON.parse(result);
  } finally {
    await stop(proc);
  }
}

/** A chat server of the chat workloads: `l4chat serv` one way or another, or the reference. */
interface ChatServer {
  name: string;
  start(port: number): Promise<Proc>;
}

/** `l4chat serv` as `variant` runs it. */
function servOf(variant: L4chatVariant): ChatServer {
  const name = `serv-${variant.name}`;
  return {
    name,
    start: (port) =>
      startL4chat(name, variant, [
        "serv",
        String(port),
        "--max-clients",
        "5000",
        "--log-level",
        "warn",
      ]),
  };
}

/**
 * The reference chat server, built the original's way (`bench/reference/chat_server.c`: a
 * thread per client, blocking writes to every client under one lock), compiled with gcc into
 * `dir`; undefined, and said, when it cannot be.
 */
async function referenceChat(dir: string): Promise<ChatServer | undefined> {
  const binary = await buildC("chat_server.c", dir, "chat_server", ["-pthread"]);
  if (binary === undefined) return undefined;
  return { name: "reference-c", start: (port) => start("reference-c", binary, [String(port)]) };
}

async function chat(server: ChatServer, clients: number) {
  const port = freePort();
  const name = server.name;
  const proc = await server.start(port);
  try {
    await waitForPort(port);
    await sleep(500);
    const rss0 = rssBytes([proc.pid]);
    let rssJoined = NaN;
    const saturated = await chatLoad(port, clients, { rate: 0, stalled: false }, () => {
      rssJoined = rssBytes([proc.pid]);
    });
    const saturatedStalled = await chatLoad(port, clients, { rate: 0, stalled: true });
    const paced = await chatLoad(port, clients, { rate: CHAT_RATE, stalled: false });
    const pacedStalled = await chatLoad(port, clients, { rate: CHAT_RATE, stalled: true });
    record(`chat-${clients}`, name, {
      linesPerSec: saturated.linesPerSecond,
      linesPerSecStalled: saturatedStalled.linesPerSecond,
      p50Ms: paced.p50Ms,
      p99Ms: paced.p99Ms,
      p99MsStalled: pacedStalled.p99Ms,
      deliveredAtRate: paced.linesPerSecond,
      rssPerClientKB: (rssJoined - rss0) / clients / 1e3,
      stalledEvicted: saturatedStalled.stalledEvicted ? 1 : 0,
    });
  } finally {
    await stop(proc);
  }
}

async function machine(): Promise<Record<string, string>> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "";
  const load = (await Deno.readTextFile("/proc/loadavg")).trim();
  return {
    nproc: String(navigator.hardwareConcurrency),
    cpu,
    kernel: Deno.osRelease(),
    loadavgAtStart: load,
    deno: Deno.version.deno,
    bun: await versionOf(BUN, ["--version"]),
    haproxy: await versionOf("haproxy", ["-v"]),
    nginx: await versionOf("nginx", ["-v"]),
    iperf3: await versionOf("iperf3", ["--version"]),
    wrk: await versionOf("wrk", ["--version"]),
  };
}

function table(
  groups: string[],
  metrics: [string, string, "higher" | "lower"][],
  reference?: string,
): string {
  const rows: string[] = [];
  const contenders = [...new Set(groups.flatMap((g) => Object.keys(samples[g] ?? {})))];
  rows.push(`| contender | ${metrics.map(([, label]) => label).join(" | ")} |`);
  rows.push(`|---|${metrics.map(() => "---:").join("|")}|`);
  for (const name of contenders) {
    const cells = metrics.map(([key]) => {
      const group = groups.find((g) => samples[g]?.[name]?.some((s) => key in s));
      if (group === undefined) return "-";
      const list = samples[group][name].map((s) => s[key]).filter(Number.isFinite);
      if (list.length === 0) return "-";
      const m = median(list);
      let cell = `${format(m)} ±${(spread(list) * 50).toFixed(0)}%`;
      if (reference !== undefined && name !== reference) {
        const ratio = pairedRatio(group, name, reference, key);
        if (Number.isFinite(ratio)) cell += ` (${ratio.toFixed(2)}x)`;
      }
      return cell;
    });
    rows.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  return rows.join("\n");
}

/** The median of `key` in `group` for `contender`, NaN if none. */
function med(group: string, contender: string, key: string): number {
  return median((samples[group]?.[contender] ?? []).map((s) => s[key]).filter(Number.isFinite));
}

/**
 * `contender`'s `key` in `group` as ratios to `reference`'s in the same round, one per round
 * both were measured in (the HTTP workloads, whose samples say their round); empty otherwise.
 */
function pairedRatios(group: string, contender: string, reference: string, key: string): number[] {
  const ofReference = new Map<number, number>();
  for (const s of samples[group]?.[reference] ?? []) {
    if (s.round !== undefined && Number.isFinite(s[key]) && s[key] !== 0) {
      ofReference.set(s.round, s[key]);
    }
  }
  const ratios: number[] = [];
  for (const s of samples[group]?.[contender] ?? []) {
    const ref = s.round === undefined ? undefined : ofReference.get(s.round);
    if (ref !== undefined && Number.isFinite(s[key])) ratios.push(s[key] / ref);
  }
  return ratios;
}

/**
 * `contender`'s `key` in `group` as a ratio to `reference`'s: the median of the ratios within
 * each round (see {@linkcode pairedRatios}), else the ratio of the medians. NaN if either has
 * none.
 */
function pairedRatio(group: string, contender: string, reference: string, key: string): number {
  const ratios = pairedRatios(group, contender, reference, key);
  if (ratios.length > 0) return median(ratios);
  const ref = med(group, reference, key);
  return ref === 0 ? NaN : med(group, contender, key) / ref;
}

/**
 * The HTTP workloads round by round against `reference`: for each contender and metric, the
 * median ratio, its range, in how many rounds the contender did better, and the sign test's
 * chance of that many from noise alone. A median above 1.0x with p well under 0.05 is a lead
 * this machine's noise does not explain; one at 0.3 is not a lead yet.
 */
function roundTable(metrics: [string, string, "higher" | "lower"][], reference: string): string {
  const rows: string[] = [];
  rows.push(`| contender | ${metrics.map(([, label]) => label).join(" | ")} |`);
  rows.push(`|---|${metrics.map(() => "---").join("|")}|`);
  for (const name of Object.keys(samples.http ?? {})) {
    if (name === reference) continue;
    const cells = metrics.map(([key, , better]) => {
      const ratios = pairedRatios("http", name, reference, key);
      if (ratios.length === 0) return "-";
      const wins = ratios.filter((r) => better === "higher" ? r > 1 : r < 1).length;
      const range = `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x`;
      const p = signTest(wins, ratios.length);
      return `${median(ratios).toFixed(2)}x (${range}), ${wins} of ${ratios.length}, p ${
        p < 0.001 ? "<0.001" : p.toFixed(3)
      }`;
    });
    rows.push(`| ${name} | ${cells.join(" | ")} |`);
  }
  return rows.join("\n");
}

/** One target line: `value` against `limit`, met or not. */
function target(label: string, value: number, op: ">=" | "<=", limit: number, unit = "x"): string {
  if (!Number.isFinite(value)) {
    return `| ${label} | - | ${op} ${format(limit)}${unit} | not measured |`;
  }
  const met = op === ">=" ? value >= limit : value <= limit;
  return `| ${label} | ${format(value)}${unit} | ${op} ${format(limit)}${unit} | ${
    met ? "met" : "**not met**"
  } |`;
}

/** Whether `value` has the shape of a saved run's samples: group to contender to a list. */
function isSamples(value: unknown): value is Record<string, Record<string, Sample[]>> {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null;
  return isObject(value) &&
    Object.values(value).every((group) =>
      isObject(group) && Object.values(group).every(Array.isArray)
    );
}

/**
 * Adds the samples of saved run number `index` to {@linkcode samples}: each run's rounds stay
 * its own (a round is paired with the same run's round only), medians are of all runs' samples.
 */
function pool(saved: Record<string, Record<string, Sample[]>>, index: number): void {
  for (const [group, byContender] of Object.entries(saved)) {
    const into = samples[group] ??= {};
    for (const [contender, list] of Object.entries(byContender)) {
      (into[contender] ??= []).push(
        ...list.map((s) => s.round === undefined ? s : { ...s, round: s.round + index * 1e6 }),
      );
    }
  }
}

/** The tables of everything in `samples`, and the targets checked against them. */
function render(): string {
  const ref = "haproxy";
  const proxyTable = table(["bulk", "http"], [
    ["gbps1", "bulk 1 stream Gbit/s", "higher"],
    ["gbps4", "bulk 4 streams Gbit/s", "higher"],
    ["cpuSecPerGB", "CPU-s/GB", "lower"],
    ["keepaliveRps", "keep-alive req/s", "higher"],
    ["keepaliveP50Ms", "p50 ms", "lower"],
    ["keepaliveP99Ms", "p99 ms", "lower"],
    ["newConnPerSec", "new conn/s", "higher"],
    ["oneConnRps", "1 conn req/s", "higher"],
    ["oneConnP50Ms", "1 conn p50 ms", "lower"],
  ], ref);
  const rounds = samples.http === undefined ? "" : roundTable([
    ["keepaliveRps", "keep-alive req/s", "higher"],
    ["keepaliveP99Ms", "p99 ms", "lower"],
    ["newConnPerSec", "new conn/s", "higher"],
  ], ref);
  const counts = [
    ...new Set(
      Object.values(samples.memory ?? {}).flatMap((list) =>
        list.flatMap((s) => Object.keys(s).filter((k) => k.startsWith("bytesPerConn")))
      ),
    ),
  ].map((key) => Number(key.slice("bytesPerConn".length))).sort((a, b) => a - b);
  const memoryTable = table(["memory"], [
    ["idleRssMB", "RSS at rest MB", "lower"],
    ...counts.map((n) =>
      [`bytesPerConn${n}`, `bytes/conn at ${n}`, "lower"] as [string, string, "lower"]
    ),
  ], ref);
  const stalledTable = samples.stalled === undefined ? "" : table(["stalled"], [
    ["stalledRssMB", `RSS MB, ${STALLED_CLIENTS} clients`, "lower"],
    ["bytesPerStalledClient", "bytes per client", "lower"],
  ], ref);
  const chatGroups = Object.keys(samples).filter((g) => g.startsWith("chat-"))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const chatRows = chatGroups.map((group) =>
    `\n${group.replace("chat-", "")} clients:\n\n` + table([group], [
      ["linesPerSec", "lines/s delivered (saturated)", "higher"],
      ["linesPerSecStalled", "same, 1 client not reading", "higher"],
      ["p50Ms", `p50 ms at ${CHAT_RATE}/s`, "lower"],
      ["p99Ms", `p99 ms at ${CHAT_RATE}/s`, "lower"],
      ["p99MsStalled", "p99 ms, 1 not reading", "lower"],
      ["rssPerClientKB", "RSS/client KB", "lower"],
    ])
  ).join("\n");
  const targets: string[] = ["| target | measured | limit | |", "|---|---:|---:|---|"];
  for (const variant of L4CHAT_VARIANTS) {
    const name = `l4chat-${variant.name}`;
    if (samples.bulk?.[name] === undefined && samples.memory?.[name] === undefined) continue;
    const ratio = (group: string, key: string) => pairedRatio(group, name, ref, key);
    targets.push(target(`${name} bulk 1 stream / HAProxy`, ratio("bulk", "gbps1"), ">=", 1.5));
    targets.push(
      target(
        `${name} bulk 1 stream / no proxy`,
        med("bulk", name, "gbps1") / med("bulk", "none", "gbps1"),
        ">=",
        0.7,
      ),
    );
    targets.push(target(`${name} CPU-s/GB / HAProxy`, ratio("bulk", "cpuSecPerGB"), "<=", 0.6));
    targets.push(
      target(`${name} keep-alive req/s / HAProxy`, ratio("http", "keepaliveRps"), ">=", 1),
    );
    targets.push(
      target(`${name} keep-alive p99 / HAProxy`, ratio("http", "keepaliveP99Ms"), "<=", 1.5),
    );
    targets.push(target(`${name} new conn/s / HAProxy`, ratio("http", "newConnPerSec"), ">=", 1));
    for (const n of counts) {
      targets.push(
        target(
          `${name} bytes per idle connection at ${n}`,
          med("memory", name, `bytesPerConn${n}`) / 1000,
          "<=",
          variant.runtime === "deno" ? 20 : 6,
          " KB",
        ),
      );
    }
  }
  for (const variant of L4CHAT_VARIANTS) {
    const name = `serv-${variant.name}`;
    if (samples["chat-100"]?.[name] === undefined) continue;
    targets.push(
      target(`${name} lines/s to 100 clients`, med("chat-100", name, "linesPerSec"), ">=", 3e6, ""),
    );
    targets.push(
      target(
        `${name} same, 1 not reading`,
        med("chat-100", name, "linesPerSecStalled"),
        ">=",
        3e6,
        "",
      ),
    );
    targets.push(
      target(`${name} p99 at ${CHAT_RATE}/s`, med("chat-100", name, "p99Ms"), "<=", 5, " ms"),
    );
    targets.push(
      target(`${name} same, 1 not reading`, med("chat-100", name, "p99MsStalled"), "<=", 5, " ms"),
    );
    if (samples["chat-100"]?.["reference-c"] === undefined) continue;
    // The same targets as ratios to the reference C server of this run: the issue measured
    // it at 620,000 lines/s and p99 12 ms, and set 3 million lines/s and 5 ms.
    const vsReference = (key: string) =>
      med("chat-100", name, key) / med("chat-100", "reference-c", key);
    targets.push(
      target(`${name} lines/s / reference C server`, vsReference("linesPerSec"), ">=", 3e6 / 62e4),
    );
    targets.push(target(`${name} p99 / reference C server`, vsReference("p99Ms"), "<=", 5 / 12));
  }
  return `Proxies (median ±half-spread; ratio to HAProxy, for the HTTP workloads the median of\n` +
    `the ratios within each round):\n\n${proxyTable}\n\n` +
    (rounds === ""
      ? ""
      : `The HTTP workloads round by round against HAProxy (the ratio within each round: median,\n` +
        `lowest-highest; the rounds where the contender did better, of all; the one-sided sign\n` +
        `test's chance of that many from noise alone):\n\n${rounds}\n\n`) +
    `Memory per idle proxied connection (bytes of RSS per connection held):\n\n${memoryTable}\n\n` +
    (stalledTable === ""
      ? ""
      : `Clients that stop reading a download (RSS ${STALLED_WAIT_MS / 1000} s after they ` +
        `connect, less RSS before):\n\n${stalledTable}\n\n`) +
    `Chat fan-out (l4chat serv):\n${chatRows}\n\nTargets (issue 8):\n\n${targets.join("\n")}\n`;
}

async function main(): Promise<void> {
  const command = `deno task bench ${Deno.args.join(" ")}`.trim();
  const dir = await Deno.makeTempDir({ prefix: "l4chat-bench-" });
  const limit = await fdLimit();
  // Each proxied connection holds two descriptors in the proxy.
  const most = Math.min(10_000, Math.floor((limit - 200) / 2));
  const counts = QUICK ? [500, 2000] : [2000, most];
  if (most < 10_000) {
    console.error(
      `bench: file-descriptor hard limit ${limit}: holding ${most}, not 10,000, idle connections`,
    );
  }
  const haveIperf = await ensurePackage("iperf3", { cmd: "iperf3" });
  const haveWrk = await ensurePackage("wrk", { cmd: "wrk" });
  const haveNginx = await ensurePackage("nginx", { cmd: "nginx" });
  const haveStream = haveNginx &&
    await ensurePackage("libnginx-mod-stream", {
      path: "/usr/lib/nginx/modules/ngx_stream_module.so",
    });
  const haveHaproxy = await ensurePackage("haproxy", { cmd: "haproxy" });
  const haveBun = await Deno.stat(BUN).then(() => true, () => false);
  if (!haveBun) {
    console.error("bench: no Bun in node_modules (run deno install); skipping l4chat-bun");
  }
  const contenders = [
    noProxy,
    ...L4CHAT_VARIANTS.filter((v) => haveBun || v.runtime !== "bun").map(l4chatLb),
    ...(haveHaproxy ? [haproxy] : []),
    ...(haveStream ? [nginxStream] : []),
  ];
  if (values.contender !== undefined) {
    const wanted = new Set(values.contender);
    for (const reference of [referenceUring, referenceEpoll, referenceCCopy, referenceCSplice]) {
      if (wanted.has(reference.name)) contenders.push(reference);
    }
    contenders.splice(0, contenders.length, ...contenders.filter((c) => wanted.has(c.name)));
  }
  const info = await machine();
  console.error(`bench: ${JSON.stringify(info)}`);
  console.error(
    `bench: ${REPS} repetition(s), ${SECONDS} s per proxy run, ${CHAT_SECONDS} s per chat run`,
  );

  const chatServers: ChatServer[] = L4CHAT_VARIANTS.filter((variant) =>
    variant.serv && contenders.some((c) => c.name === `l4chat-${variant.name}`)
  ).map(servOf);
  if (
    ONLY.has("chat") &&
    (values.contender === undefined || values.contender.includes("reference-c"))
  ) {
    const reference = await referenceChat(dir);
    if (reference !== undefined) chatServers.push(reference);
  }

  const backends: Running[] = [];
  try {
    const iperf = haveIperf ? await startIperfServer() : undefined;
    if (iperf) backends.push(iperf);
    const http = haveNginx ? await startHttpBackend(dir) : undefined;
    if (http) backends.push(http);
    const flood = ONLY.has("stalled") ? await startFloodBackend() : undefined;
    if (flood) backends.push(flood);
    for (let rep = 0; rep < REPS; rep++) {
      console.error(`bench: repetition ${rep + 1} of ${REPS}`);
      if (ONLY.has("proxy") && iperf && http && haveWrk) {
        for (const contender of rotate(contenders, rep)) {
          await bounded(
            `${contender.name} bulk`,
            (SECONDS * 2 + 60) * 1000,
            () => bulk(contender, iperf.port, dir),
          );
        }
        await bounded(
          "http",
          (contenders.length * (2 * WARMUP_SECONDS + HTTP_ROUNDS * 3 * HTTP_ROUND_SECONDS) + 120) *
            1000,
          () => httpRounds(contenders, http.port, dir, rep),
        );
      }
      if (ONLY.has("memory") && http) {
        for (const contender of rotate(contenders.filter((c) => c !== noProxy), rep)) {
          await bounded(
            `${contender.name} memory`,
            120_000,
            () => idleMemory(contender, http.port, dir, counts),
          );
        }
      }
      if (ONLY.has("stalled") && flood) {
        for (const contender of rotate(contenders.filter((c) => c !== noProxy), rep)) {
          await bounded(
            `${contender.name} stalled`,
            120_000,
            () => stalledMemory(contender, flood.port, dir),
          );
        }
      }
      if (ONLY.has("chat")) {
        for (const clients of CHAT_CLIENTS) {
          for (const server of rotate(chatServers, rep)) {
            await bounded(`${server.name} chat ${clients}`, 180_000, () => chat(server, clients));
          }
        }
      }
    }
  } finally {
    for (const backend of backends) await backend.stop();
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  const report = render();
  console.log(report);
  await Deno.mkdir(`${ROOT}bench-results`, { recursive: true });
  const file = `${ROOT}bench-results/${new Date().toISOString().replaceAll(":", "-")}.json`;
  info.loadavgAtEnd = (await Deno.readTextFile("/proc/loadavg")).trim();
  await Deno.writeTextFile(
    file,
    JSON.stringify(
      { command, machine: info, reps: REPS, seconds: SECONDS, samples, report },
      null,
      2,
    ),
  );
  console.error(`bench: results in ${file}`);
}

const unwatch = stopAllOnSignal();
try {
  if (values.report !== undefined) {
    for (const [index, file] of values.report.entries()) {
      const saved = await Deno.readTextFile(file).then(JSON.parse).catch((err) => {
        console.error(`bench: cannot read ${file}: ${(err as Error).message}`);
        Deno.exit(1);
      });
      if (!isSamples(saved?.samples)) {
        console.error(`bench: ${file} is not a saved run of deno task bench (no samples)`);
        Deno.exit(1);
      }
      pool(saved.samples, index);
    }
    if (values.report.length > 1) {
      console.log(`Pooled over ${values.report.length} saved runs: ${values.report.join(", ")}\n`);
    }
    console.log(render());
  } else {
    await main();
  }
} finally {
  await stopAll();
  unwatch();
}
