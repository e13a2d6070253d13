import type { Addr } from "../net/mod.ts";
import type { Backend } from "./backend.ts";

/** What a balancer may know of a new client connection: data, not a socket. */
export interface ConnInfo {
  /** Unique per connection within this load balancer. */
  readonly id: number;
  /** The client's address. */
  readonly remote: Addr;
}

/** Chooses a backend for each new client connection. */
export interface Balancer {
  /**
   * Returns one of `backends` (the candidates: healthy, accepting, not yet tried for this
   * connection; in configuration order) or undefined when there is none. Never throws.
   */
  pick(conn: ConnInfo, backends: readonly Backend[]): Backend | undefined;
  /** Called once the connection to `backend` is up. */
  onOpen?(backend: Backend): void;
  /** Called exactly once per `onOpen`, however the connection ended. */
  onClose?(backend: Backend): void;
}
