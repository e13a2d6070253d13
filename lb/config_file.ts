import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import process from "node:process";
import {
  CONFIG_MAX_BYTES,
  formatConfig,
  formatProblem,
  type LbConfig,
  parseConfigText,
} from "./config.ts";

/** The config file cannot be changed: it is unreadable or has problems. Nothing was written. */
export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigFileError";
  }
}

/**
 * Reads the config file at `path`, applies `change` to the config it holds and writes the
 * result back with {@linkcode formatConfig} (JSON: comments and key order of the old file are
 * not kept), atomically: to a temporary file beside it, then renamed over it, keeping its
 * permission bits. Returns the config written, as the file says it (flags given on the
 * command line are not in it). Throws {@linkcode ConfigFileError} when the file cannot be
 * read or parsed, or the changed config does not parse back; `change` may throw to refuse.
 */
export async function updateConfigFile(
  path: string,
  change: (config: LbConfig) => LbConfig,
): Promise<LbConfig> {
  let text: string;
  let mode: number;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CONFIG_MAX_BYTES) throw new Error(`file over ${CONFIG_MAX_BYTES} bytes`);
    text = new TextDecoder().decode(bytes);
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    throw new ConfigFileError(`Cannot read ${path}: ${(err as Error).message}`);
  }
  const parsed = parseConfigText(text);
  if (!parsed.ok) {
    throw new ConfigFileError(
      `Cannot change ${path}, fix it first: ${formatProblem(path, parsed.problems[0])}`,
    );
  }
  const next = change(parsed.config);
  const output = formatConfig(next);
  const check = parseConfigText(output);
  if (!check.ok) {
    throw new ConfigFileError(
      `Cannot change ${path}: the result would not parse: ${check.problems[0].message}`,
    );
  }
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, output, { mode });
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true }).catch(() => {});
    throw new ConfigFileError(`Cannot write ${path}: ${(err as Error).message}`);
  }
  return check.config;
}
