/**
 * Presence: who is online, as `* ` notices, and the arithmetic of cluster-wide counts.
 *
 * With `--redis`, each server keeps one field in the Redis hash `<channel>:online`: its id
 * maps to `"<clients> <expiresAtMs>"`. A server rewrites its field on every join and leave
 * and every third of `--presence-ttl`; the cluster-wide count is the sum of the fields that
 * have not expired, so a server that died without cleaning up stops counting after the TTL.
 */

/** The notice sent when a client joins: `127.0.0.1:53422 joined, 3 online`. */
export function joinedNotice(client: string, online: number): string {
  return `${client} joined, ${online} online`;
}

/** The notice sent when a client leaves: `127.0.0.1:53422 left, 2 online`. */
export function leftNotice(client: string, online: number): string {
  return `${client} left, ${online} online`;
}

/** The value of one server's field: its client count and when it expires (ms since epoch). */
export function formatPresenceEntry(clients: number, expiresAtMs: number): string {
  return `${clients} ${expiresAtMs}`;
}

/** The sum of {@linkcode sumPresence}, and the fields to delete. */
export interface PresenceSum {
  /** Clients online in the cluster: the sum of the live fields. */
  online: number;
  /** Fields that have expired or cannot be read; the caller deletes them. */
  stale: string[];
}

/**
 * Sums the live entries of a presence hash (field -> value of
 * {@linkcode formatPresenceEntry}) at `nowMs`. Never throws: a malformed value is stale.
 */
export function sumPresence(fields: Record<string, string>, nowMs: number): PresenceSum {
  let online = 0;
  const stale: string[] = [];
  for (const [field, value] of Object.entries(fields)) {
    const match = /^(\d{1,9}) (\d{1,16})$/.exec(value);
    if (match === null || Number(match[2]) <= nowMs) {
      stale.push(field);
      continue;
    }
    online += Number(match[1]);
  }
  return { online, stale };
}

/**
 * Clients waiting out the presence delay before they are announced, in the order they joined.
 * Every client waits the same delay, so the first one in is the first one due. The server runs
 * one timer for the whole queue and announces everything due when it fires, in one go: a
 * thousand clients joining within a few milliseconds then cost each client one write of many
 * notices, not a thousand writes of one (with one timer per client, each firing was a separate
 * task and each notice went out as its own write to every client).
 */
export class PresenceQueue<T> {
  readonly #delayMs: number;
  readonly #dueMs = new Map<T, number>();

  constructor(delayMs: number) {
    this.#delayMs = delayMs;
  }

  /** Clients waiting. */
  get size(): number {
    return this.#dueMs.size;
  }

  /** Queues `client`, joined at `nowMs`. */
  add(client: T, nowMs: number): void {
    this.#dueMs.set(client, nowMs + this.#delayMs);
  }

  /** Drops `client` (it left before its announcement); whether it was waiting. */
  remove(client: T): boolean {
    return this.#dueMs.delete(client);
  }

  /** When the first client is due (ms), or undefined when none waits. */
  nextDueMs(): number | undefined {
    for (const dueMs of this.#dueMs.values()) return dueMs;
    return undefined;
  }

  /** Removes and returns the clients due at `nowMs`, in the order they joined. */
  takeDue(nowMs: number): T[] {
    const due: T[] = [];
    for (const [client, dueMs] of this.#dueMs) {
      if (dueMs > nowMs) break;
      this.#dueMs.delete(client);
      due.push(client);
    }
    return due;
  }
}
