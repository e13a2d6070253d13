/**
 * A command line that cannot be used: an unknown flag, a missing argument, a value out of
 * range. `main.ts` prints its message and the usage line, and exits with code 2.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * A failure the user can act on but that is not a usage mistake, such as a port already in
 * use. `main.ts` prints its message on one line and exits with code 1.
 */
export class FatalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FatalError";
  }
}
