/**
 * Flame graphs of a profile: stacks folded from `perf script` output or a V8 `.cpuprofile`
 * (`deno run --cpu-prof`), drawn as a self-contained SVG, and summed up by where the time went.
 * Pure: text in, text out.
 *
 * Folded stacks map `root;caller;callee` to a weight (samples, or microseconds for a
 * `.cpuprofile`). A frame's kind rides in its name as a suffix: `_[k]` the kernel, `_[j]`
 * JavaScript; anything else is native code (the runtime's binary, libc, HAProxy).
 *
 * @module
 */

/** Folded stacks: `root;...;leaf` to its weight. */
export type Folded = Map<string, number>;

/** Where a frame's code lives. */
export type FrameKind = "kernel" | "js" | "native";

const KERNEL = "_[k]";
const JS = "_[j]";

/** The kind of a folded frame, from its suffix. */
export function kindOf(frame: string): FrameKind {
  if (frame.endsWith(KERNEL)) return "kernel";
  if (frame.endsWith(JS)) return "js";
  return "native";
}

/** `file:///work/main/net/epoll.ts` -> `net/epoll.ts`, relative to `root` when under it. */
function shortUrl(url: string, root: string): string {
  const path = url.startsWith("file://") ? url.slice("file://".length) : url;
  return root !== "" && path.startsWith(root) ? path.slice(root.length) : path;
}

/**
 * Where V8's built-in code lies in a binary, by offset in its file. The binary (Deno's) has no
 * symbols, but its builtins are one block of it that V8 maps again elsewhere and can log
 * (`--log-code`), so `perf` samples in them can be named after all.
 */
export interface Builtins {
  /** The binary's path, as `perf script` prints it. */
  binary: string;
  /** Each builtin's first byte as an offset in the file, ascending. */
  starts: number[];
  /** Each builtin's end (the offset past its last byte), in the order of `starts`. */
  ends: number[];
  /** Each builtin's name, in the order of `starts`. */
  names: string[];
}

/**
 * The builtins (and bytecode handlers) that V8's code log `log` (`--log-code`) says it placed in
 * memory, found in their binary's file through the process's memory map `maps` (the text of
 * `/proc/<pid>/maps`). Undefined when the log holds none, or the map shows no file they came from.
 */
export function builtinsOf(log: string, maps: string): Builtins | undefined {
  const code: { at: number; size: number; name: string }[] = [];
  for (const line of log.split("\n")) {
    // "code-creation,Builtin,<tag>,<time>,<address>,<size>,<name>"
    const m = line.match(
      /^code-creation,(?:Builtin|BytecodeHandler),[^,]*,[^,]*,0x([0-9a-f]+),(\d+),(.+)$/,
    );
    if (m) code.push({ at: parseInt(m[1], 16), size: Number(m[2]), name: m[3] });
  }
  if (code.length === 0) return undefined;
  // The mapping of a file that holds the first of them: "start-end perms offset dev inode path".
  let home: { start: number; end: number; offset: number; path: string } | undefined;
  const first = code[0].at;
  for (const line of maps.split("\n")) {
    const m = line.match(/^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+([0-9a-f]+)\s+\S+\s+\d+\s+(\/\S.*)$/);
    if (m === null) continue;
    const start = parseInt(m[1], 16);
    const end = parseInt(m[2], 16);
    if (start <= first && first < end) {
      home = { start, end, offset: parseInt(m[3], 16), path: m[4].trim() };
      break;
    }
  }
  if (home === undefined) return undefined;
  const { start, end, offset, path } = home;
  const placed = code
    .filter(({ at }) => start <= at && at < end)
    .map(({ at, size, name }) => ({ start: at - start + offset, size, name }))
    .sort((a, b) => a.start - b.start);
  return {
    binary: path,
    starts: placed.map((b) => b.start),
    ends: placed.map((b) => b.start + b.size),
    names: placed.map((b) => b.name),
  };
}

/** The builtin of `builtins` at `offset` in its file, if one is there. */
function builtinAt(builtins: Builtins, offset: number): string | undefined {
  const { starts } = builtins;
  let low = 0;
  let high = starts.length - 1;
  // The last builtin that starts at or before the offset.
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (starts[mid] <= offset) low = mid;
    else high = mid - 1;
  }
  if (starts.length === 0 || starts[low] > offset || offset >= builtins.ends[low]) return undefined;
  return builtins.names[low];
}

/**
 * The folded name of one `perf script` frame: `sym` as printed, in `dso`, at `ip` (for a binary
 * without symbols, the offset in its file).
 */
function perfFrame(
  ip: string,
  sym: string,
  dso: string,
  root: string,
  builtins: Builtins | undefined,
): string {
  if (dso === "[kernel.kallsyms]") return sym.replace(/\+0x[0-9a-f]+$/, "") + KERNEL;
  const bare = sym.replace(/\+0x[0-9a-f]+$/, "");
  if (bare === "[unknown]" && builtins !== undefined && dso === builtins.binary) {
    const builtin = builtinAt(builtins, parseInt(ip, 16));
    if (builtin !== undefined) return `Builtin:${builtin}${JS}`;
  }
  // V8's perf map (`--perf-basic-prof`): "JS:*'name file:///...:line:col", the mark saying
  // how the function was compiled; the line and column are of the transpiled source.
  const js = bare.match(/^JS:[*+~^]?'?(\S*) (\S+?)(?::\d+:\d+)?$/);
  if (js) return `${js[1] === "" ? "(anonymous)" : js[1]} ${shortUrl(js[2], root)}${JS}`;
  // V8's own code in the map: built-ins, bytecode handlers, stubs.
  if (/^[A-Z][A-Za-z]*:/.test(bare) && dso.includes("perf-")) return bare + JS;
  if (bare === "[unknown]") {
    // perf names anonymous executable memory after the map it looked for: compiled JavaScript
    // with no name (Bun writes no map), or V8 code the map does not hold.
    return /^\/tmp\/perf-\d+\.map$/.test(dso) ? `[jit]${JS}` : `[${dso.split("/").pop()}]`;
  }
  return bare;
}

/**
 * Folds `perf script` output (samples recorded with `-g`) into stacks rooted at the thread's
 * name. Frames in V8's builtins are named from `builtins` when given (as V8 names them in its
 * perf map, `Builtin:<name>`, JavaScript's kind); other frames of code without symbols in one
 * binary in a row become one `[binary]` frame; paths under `root` are shown relative to it.
 */
export function foldPerfScript(text: string, root = "", builtins?: Builtins): Folded {
  const folded: Folded = new Map();
  let comm: string | undefined;
  let frames: string[] = [];
  const flush = () => {
    if (comm === undefined) return;
    const stack = [comm];
    for (let i = frames.length - 1; i >= 0; i--) {
      if (frames[i] !== stack[stack.length - 1] || !frames[i].startsWith("[")) {
        stack.push(frames[i]);
      }
    }
    const key = stack.map((frame) => frame.replaceAll(";", ":")).join(";");
    folded.set(key, (folded.get(key) ?? 0) + 1);
    comm = undefined;
    frames = [];
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      flush();
    } else if (!/^\s/.test(line)) {
      flush();
      // "comm  pid/tid  time:  period event:": the name may hold spaces, the PID follows.
      comm = line.match(/^(.*?)\s+\d+(?:\/\d+)?\s+\d+\.\d+:/)?.[1];
    } else if (comm !== undefined) {
      const frame = line.match(/^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$/);
      if (frame) frames.push(perfFrame(frame[1], frame[2], frame[3], root, builtins));
    }
  }
  flush();
  return folded;
}

/** What of a V8 `.cpuprofile` the folding reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Folds a V8 `.cpuprofile` (`deno run --cpu-prof`) into stacks weighted in microseconds,
 * rooted at `(root)`'s children: JavaScript, `(program)` (the runtime's own code) and
 * `(garbage collector)`.
 */
export function foldCpuProfile(profile: CpuProfile, root = ""): Folded {
  const parents = new Map<number, number>();
  const byId = new Map<number, CpuProfile["nodes"][number]>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  // A sample's weight is the time until the next one.
  const weights = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0;
    weights.set(profile.samples[i], (weights.get(profile.samples[i]) ?? 0) + Math.max(delta, 0));
  }
  const folded: Folded = new Map();
  for (const [id, weight] of weights) {
    if (weight === 0) continue;
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const { functionName, url } = byId.get(at)!.callFrame;
      if (functionName === "(root)") break;
      stack.push(
        url === ""
          ? functionName
          : `${functionName === "" ? "(anonymous)" : functionName} ${shortUrl(url, root)}${JS}`,
      );
    }
    const key = stack.reverse().map((frame) => frame.replaceAll(";", ":")).join(";");
    folded.set(key, (folded.get(key) ?? 0) + weight);
  }
  return folded;
}

/** Folded stacks as text, one `stack weight` per line (the format other flame graph tools read). */
export function foldedText(folded: Folded): string {
  return [...folded].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    .map(([stack, weight]) => `${stack} ${weight}\n`).join("");
}

/** Where the time went: shares of the total by the kind of the innermost frame, and the top. */
export interface FlameSummary {
  total: number;
  /** Share (0 to 1) of the weight whose innermost frame is of each kind. */
  byKind: Record<FrameKind, number>;
  /** The innermost frames with the most weight: name and share, largest first. */
  top: { frame: string; share: number }[];
  /**
   * JavaScript functions by the weight of stacks they are on (with what they call), V8's
   * builtins left out.
   */
  topJs: { frame: string; share: number }[];
  /**
   * By system call the stack is in (`recvfrom`, `io_uring_enter`), else `user` (the innermost
   * frame is not the kernel's) or `kernel` (interrupts, page faults): name and share, largest
   * first.
   */
  bySyscall: { frame: string; share: number }[];
}

/** The system call a stack is in (its entry frame, `__x64_sys_<name>`), if any. */
function syscallOf(frames: string[]): string | undefined {
  for (const frame of frames) {
    const entry = frame.match(/^__(?:x64|arm64|se|do)_sys_(\w+)_\[k\]$/);
    if (entry) return entry[1];
  }
  return undefined;
}

/** Sums `folded` up: by kind of innermost frame, the `count` heaviest frames and JS functions. */
export function summarize(folded: Folded, count = 10): FlameSummary {
  let total = 0;
  const byKind: Record<FrameKind, number> = { kernel: 0, js: 0, native: 0 };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const syscalls = new Map<string, number>();
  for (const [stack, weight] of folded) {
    total += weight;
    const frames = stack.split(";");
    const leaf = frames[frames.length - 1];
    byKind[kindOf(leaf)] += weight;
    self.set(leaf, (self.get(leaf) ?? 0) + weight);
    const call = syscallOf(frames) ?? (kindOf(leaf) === "kernel" ? "kernel" : "user");
    syscalls.set(call, (syscalls.get(call) ?? 0) + weight);
    // The program's functions: V8's builtins under them (promises, calls) are theirs.
    const functions = frames.filter((f) => kindOf(f) === "js" && !f.startsWith("Builtin:"));
    for (const frame of new Set(functions)) {
      inclusive.set(frame, (inclusive.get(frame) ?? 0) + weight);
    }
  }
  const share = (weight: number) => total === 0 ? 0 : weight / total;
  const heaviest = (weights: Map<string, number>) =>
    [...weights].sort((a, b) => b[1] - a[1]).slice(0, count)
      .map(([frame, weight]) => ({ frame, share: share(weight) }));
  return {
    total,
    byKind: { kernel: share(byKind.kernel), js: share(byKind.js), native: share(byKind.native) },
    top: heaviest(self),
    topJs: heaviest(inclusive),
    bySyscall: heaviest(syscalls),
  };
}

interface Node {
  name: string;
  weight: number;
  children: Map<string, Node>;
}

function treeOf(folded: Folded): Node {
  const root: Node = { name: "all", weight: 0, children: new Map() };
  for (const [stack, weight] of folded) {
    root.weight += weight;
    let node = root;
    for (const name of stack.split(";")) {
      let child = node.children.get(name);
      if (child === undefined) {
        child = { name, weight: 0, children: new Map() };
        node.children.set(name, child);
      }
      child.weight += weight;
      node = child;
    }
  }
  return root;
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** A colour for `frame`: orange for the kernel, green for JavaScript, yellow for native code. */
function colourOf(frame: string): string {
  let hash = 0;
  for (let i = 0; i < frame.length; i++) hash = (hash * 31 + frame.charCodeAt(i)) >>> 0;
  const vary = hash % 60;
  switch (kindOf(frame)) {
    case "kernel":
      return `rgb(235,${110 + vary},60)`;
    case "js":
      return `rgb(${80 + vary},190,${80 + (vary >> 1)})`;
    default:
      return `rgb(225,${190 + (vary >> 1)},${50 + vary})`;
  }
}

const FRAME_PX = 16;
const CHAR_PX = 6.6;
const TOP_PX = 48;

/** Options of {@linkcode flameGraphSvg}. */
export interface FlameOptions {
  title: string;
  /** A second line under the title: what was measured, how. */
  subtitle?: string;
  /** Width in pixels (default 1200). */
  width?: number;
  /** What a unit of weight is, for the tooltips (default "samples"). */
  unit?: string;
}

/**
 * Draws `folded` as a flame graph: one box per frame, as wide as its share of the total, callers
 * below callees, a tooltip with the weight and share on each. Boxes under 0.5 px are left out.
 * Self-contained SVG (no script).
 */
export function flameGraphSvg(folded: Folded, options: FlameOptions): string {
  const width = options.width ?? 1200;
  const unit = options.unit ?? "samples";
  const root = treeOf(folded);
  const boxes: string[] = [];
  let depthMax = 0;
  const scale = root.weight === 0 ? 0 : width / root.weight;
  // Depth first, children left to right by name, so that two graphs of one program line up.
  const place = (node: Node, x: number, depth: number) => {
    const w = node.weight * scale;
    if (w < 0.5) return;
    depthMax = Math.max(depthMax, depth);
    boxes.push(box(node, x, depth, w));
    let at = x;
    for (const child of [...node.children.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
      place(child, at, depth + 1);
      at += child.weight * scale;
    }
  };
  const box = (node: Node, x: number, depth: number, w: number) => {
    const percent = root.weight === 0 ? 0 : (100 * node.weight) / root.weight;
    const tip = `${node.name} (${node.weight} ${unit}, ${percent.toFixed(2)}%)`;
    const fits = Math.floor((w - 4) / CHAR_PX);
    const label = fits < 3
      ? ""
      : node.name.length <= fits
      ? node.name
      : node.name.slice(0, fits - 2) + "..";
    // y is filled in once the depth is known (flames grow upwards).
    return `<g><title>${escapeXml(tip)}</title><rect x="${x.toFixed(1)}" y="@${depth}@" ` +
      `width="${w.toFixed(1)}" height="${FRAME_PX - 1}" fill="${
        depth === 0 ? "rgb(200,200,200)" : colourOf(node.name)
      }"/>` +
      (label === ""
        ? ""
        : `<text x="${(x + 3).toFixed(1)}" y="@${depth}@t">${escapeXml(label)}</text>`) +
      "</g>";
  };
  place(root, 0, 0);
  const height = TOP_PX + (depthMax + 1) * FRAME_PX + 8;
  const yOf = (depth: number) => height - 8 - (depth + 1) * FRAME_PX;
  const body = boxes.map((b) =>
    b.replace(/"@(\d+)@"/, (_, d) => `"${yOf(Number(d))}"`)
      .replace(/"@(\d+)@t"/, (_, d) => `"${yOf(Number(d)) + FRAME_PX - 4}"`)
  );
  return `<?xml version="1.0" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="11">
<rect width="100%" height="100%" fill="rgb(250,250,245)"/>
<text x="${width / 2}" y="18" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>
<text x="${width / 2}" y="36" text-anchor="middle" fill="rgb(90,90,90)">${
      escapeXml(options.subtitle ?? "")
    }</text>
${body.join("\n")}
</svg>
`;
}
