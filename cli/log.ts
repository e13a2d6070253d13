import process from "node:process";
import {
  configureSync,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";
import { UsageError } from "./errors.ts";

/** The values of `--log-level`. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
/** One value of `--log-level`. */
export type LogLevelName = typeof LOG_LEVELS[number];
/** The values of `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;
/** One value of `--log-format`. */
export type LogFormat = typeof LOG_FORMATS[number];

const LOGTAPE_LEVELS: Record<LogLevelName, LogLevel> = {
  error: "error",
  warn: "warning",
  info: "info",
  debug: "debug",
};

const LEVEL_LABELS: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

/** Checks a `--log-level` value. */
export function parseLogLevel(text: string): LogLevelName {
  if ((LOG_LEVELS as readonly string[]).includes(text)) return text as LogLevelName;
  throw new UsageError(`Cannot use --log-level "${text}": expected ${LOG_LEVELS.join(", ")}`);
}

/** Checks a `--log-format` value. */
export function parseLogFormat(text: string): LogFormat {
  if ((LOG_FORMATS as readonly string[]).includes(text)) return text as LogFormat;
  throw new UsageError(`Cannot use --log-format "${text}": expected ${LOG_FORMATS.join(", ")}`);
}

function renderValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

/** Templates split once, by their text: literal text and property names in turn. */
const splitTemplates = new Map<string, string[] | null>();
/** Templates kept split at most: a message made afresh each time is split each time. */
const SPLIT_TEMPLATES_MAX = 256;
/** A plain `{name}` placeholder; splitting a template by it keeps the names. */
const PLACEHOLDER = /\{([A-Za-z_$][\w$]*)\}/;

/**
 * `template` as literal text and property names in turn, or null when it needs LogTape's own
 * reading (escaped braces, `{*}`, nested keys). LogTape reads a template afresh for every
 * record, which cost about a sixth of a log line.
 */
function splitTemplate(template: string): string[] | null {
  let parts = splitTemplates.get(template);
  if (parts !== undefined) return parts;
  const split = template.split(PLACEHOLDER);
  const plain = split.every((part, i) => i % 2 === 1 || !/[{}]/.test(part));
  parts = plain ? split : null;
  if (splitTemplates.size < SPLIT_TEMPLATES_MAX) splitTemplates.set(template, parts);
  return parts;
}

/** Renders the message of `record` with its values filled in. */
export function renderMessage(record: LogRecord): string {
  const raw = record.rawMessage;
  // A message with no placeholder, often made afresh each time: nothing to split or keep.
  if (typeof raw === "string" && !raw.includes("{")) return raw;
  const parts = typeof raw === "string" ? splitTemplate(raw) : null;
  if (parts === null) {
    let text = "";
    for (let i = 0; i < record.message.length; i++) {
      const part = record.message[i];
      text += i % 2 === 0 ? part as string : renderValue(part);
    }
    return text;
  }
  return filled(parts, record.properties);
}

/** The text of a split template (see {@linkcode splitTemplate}) with `properties` filled in. */
function filled(parts: string[], properties: Record<string, unknown>): string {
  let text = "";
  for (let i = 0; i < parts.length; i++) {
    text += i % 2 === 0 ? parts[i] : renderValue(properties[parts[i]]);
  }
  return text;
}

/** Whether the format set up writes records' properties (JSON does, text does not). */
let writesProperties = false;
/** Whether info lines are logged at the level set up (nothing is before `setupLogging`). */
let infoLogged = false;

/**
 * Logs `template` with `properties` at info, for lines logged per connection. LogTape copies a
 * record's properties twice (for a snapshot) whatever the format: where the format does not
 * write them (text), the line is filled in here and goes to LogTape alone, its quickest path
 * (0.7 us a line against 2.2 to 2.6 with properties, measured); with JSON, as `logger.info`
 * takes them.
 */
export function infoLine(
  logger: Logger,
  template: string,
  properties: Record<string, unknown>,
): void {
  if (!infoLogged) return;
  const parts = writesProperties ? null : splitTemplate(template);
  if (parts === null) {
    logger.info(template, properties);
    return;
  }
  // LogTape reads braces in a message as placeholders; doubled, they stand for themselves.
  const text = filled(parts, properties);
  logger.info(/[{}]/.test(text) ? text.replaceAll("{", "{{").replaceAll("}", "}}") : text);
}

/** The last timestamp written out, as ISO 8601 and as the text format writes it. */
let timeMs = NaN;
let isoText = "";
let textTime = "";

/** Makes `isoText` and `textTime` those of `ms`: once per millisecond. */
function setTime(ms: number): void {
  if (ms === timeMs) return;
  isoText = new Date(ms).toISOString();
  textTime = isoText.replace("T", " ").slice(0, 23);
  timeMs = ms;
}

/**
 * Formats a record for people: `2026-11-25 20:01:09.123 INFO  <message>`. The message keeps
 * the original program's wording; properties are left to the JSON format.
 */
export function formatText(record: LogRecord): string {
  setTime(record.timestamp);
  return `${textTime} ${LEVEL_LABELS[record.level]} ${renderMessage(record)}\n`;
}

/** Formats a record for machines: one JSON object per line with every property. */
export function formatJson(record: LogRecord): string {
  setTime(record.timestamp);
  const object: Record<string, unknown> = {
    time: isoText,
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record),
  };
  for (const [key, value] of Object.entries(record.properties)) {
    if (!(key in object)) object[key] = value instanceof Error ? value.message : value;
  }
  return JSON.stringify(object) + "\n";
}

/**
 * Lines of info and debug records not yet written. They are written together once the
 * microtasks queued before the first of them have run: a load balancer logs four lines per
 * connection, and writing each on its own cost about a quarter of a line's time.
 */
let pending = "";
let flushQueued = false;
/** Pending bytes that are written at once, without waiting for the microtasks. */
const PENDING_MAX = 65536;

/**
 * Writes the log lines not yet written. Call it before exiting, and before writing to stderr
 * other than through LogTape. Warnings and errors are written at once, with what came before.
 */
export function flushLogs(): void {
  flushQueued = false;
  if (pending === "") return;
  const text = pending;
  pending = "";
  if (!stderrBroken) process.stderr.write(text);
}

/**
 * Set once stderr has failed, as a pipe does when whatever read it went away (`l4chat lb |&
 * head`, a log shipper that died): lines are dropped from then on and the process goes on
 * serving. Node's streams report the failure as an `error` event, which with no listener ends
 * the process (measured: Deno exited 1 at its next line).
 */
let stderrBroken = false;
let stderrWatched = false;

/** Listens for stderr's failure, once per process. */
function watchStderr(): void {
  if (stderrWatched) return;
  stderrWatched = true;
  process.stderr.on("error", () => {
    stderrBroken = true;
  });
}

/** Writes `line` to stderr: at once if `now`, else with the other lines of this task. */
function writeLine(line: string, now: boolean): void {
  pending += line;
  if (now || pending.length >= PENDING_MAX) {
    flushLogs();
  } else if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flushLogs);
  }
}

/**
 * Configures LogTape once for the whole process: records of category `l4chat` at `level` or
 * above go to stderr in `format`. Library modules only call `getLogger`, and
 * {@linkcode infoLine} for the lines they log per connection.
 */
export function setupLogging(level: LogLevelName, format: LogFormat): void {
  const formatter = format === "json" ? formatJson : formatText;
  writesProperties = format === "json";
  infoLogged = level === "info" || level === "debug";
  const sink = (record: LogRecord) => {
    writeLine(formatter(record), record.level !== "info" && record.level !== "debug");
  };
  watchStderr();
  resetSync();
  configureSync({
    sinks: { stderr: sink },
    loggers: [
      { category: ["l4chat"], lowestLevel: LOGTAPE_LEVELS[level], sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["stderr"] },
    ],
  });
}
