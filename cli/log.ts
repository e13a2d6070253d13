import process from "node:process";
import { configureSync, type LogLevel, type LogRecord, resetSync } from "@logtape/logtape";
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

/** Renders the message of `record` with its values filled in. */
export function renderMessage(record: LogRecord): string {
  let text = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    text += i % 2 === 0 ? part as string : renderValue(part);
  }
  return text;
}

/**
 * Formats a record for people: `2026-11-25 20:01:09.123 INFO  <message>`. The message keeps
 * the original program's wording; properties are left to the JSON format.
 */
export function formatText(record: LogRecord): string {
  const time = new Date(record.timestamp).toISOString().replace("T", " ").slice(0, 23);
  return `${time} ${LEVEL_LABELS[record.level]} ${renderMessage(record)}\n`;
}

/** Formats a record for machines: one JSON object per line with every property. */
export function formatJson(record: LogRecord): string {
  const object: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
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
 * Configures LogTape once for the whole process: records of category `l4chat` at `level` or
 * above go to stderr in `format`. Library modules only call `getLogger`.
 */
export function setupLogging(level: LogLevelName, format: LogFormat): void {
  const formatter = format === "json" ? formatJson : formatText;
  const sink = (record: LogRecord) => {
    process.stderr.write(formatter(record));
  };
  resetSync();
  configureSync({
    sinks: { stderr: sink },
    loggers: [
      { category: ["l4chat"], lowestLevel: LOGTAPE_LEVELS[level], sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: ["stderr"] },
    ],
  });
}
