/**
 * The few Bun globals that `bun.ts` uses, declared by hand (cf. hono
 * `src/adapter/deno/deno.d.ts`) so that Deno's type check covers `bun.ts` without
 * `bun-types`. Exported as types, not as globals, so nothing outside `bun.ts` sees `Bun`.
 *
 * @module
 */

/** The server that `Bun.serve` returns. */
export interface BunServer {
  readonly hostname: string | undefined;
  readonly port: number | undefined;
  /** Stops listening; with `closeActiveConnections` false it lets requests in flight finish. */
  stop(closeActiveConnections?: boolean): Promise<void>;
}

/** The options of `Bun.serve` that l4chat passes. */
export interface BunServeOptions {
  hostname: string;
  port: number;
  fetch(req: Request): Response | Promise<Response>;
  error(err: Error): Response | Promise<Response>;
}

/** The part of the `Bun` global that l4chat uses. */
export interface BunGlobal {
  /** Bun's version, e.g. `1.4.5`. */
  readonly version: string;
  serve(options: BunServeOptions): BunServer;
}
