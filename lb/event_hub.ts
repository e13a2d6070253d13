/** One event of the admin endpoint's `/api/events` stream. */
export interface AdminEvent {
  /** What happened: `open`, `close`, `health`, `backend`, `reload`, `refused`, ... */
  type: string;
  /** When, in ms since the epoch. */
  timeMs: number;
  /** The facts, as JSON-ready values. */
  data: Record<string, unknown>;
}

/**
 * What an event says, or how to make it. A function is called once, when the event is first
 * needed: at once if someone subscribes, else only if {@linkcode EventHub.recent} is asked
 * while the event is still kept. Most events of a busy load balancer are neither sent nor
 * read, only overwritten in the history, and formatting them cost more than the rest of the
 * monitor's bookkeeping of a connection.
 */
export type EventData = Record<string, unknown> | (() => object);

/** An event as the history keeps it: its data perhaps not made yet. */
interface KeptEvent {
  type: string;
  timeMs: number;
  data: EventData;
}

/** Options of {@linkcode EventHub}. */
export interface EventHubOptions {
  /** Events queued for one subscriber before it is dropped as too slow (default 512). */
  queueSize?: number;
  /** Time between two keep-alive comments, in ms (default 5000; 0 is none). */
  keepAliveMs?: number;
  /** Events kept for {@linkcode EventHub.recent} (default 100). */
  historySize?: number;
}

interface Subscriber {
  controller: ReadableStreamDefaultController<Uint8Array>;
}

const encoder = new TextEncoder();

/** Formats `event` as one Server-Sent Events message. */
export function formatSse(event: AdminEvent, id: number): string {
  const data = JSON.stringify({ ...event.data, type: event.type, timeMs: event.timeMs });
  return `id: ${id}\nevent: ${event.type}\ndata: ${data}\n\n`;
}

/** `event` with its data made, once: the history keeps what was made. */
function made(event: KeptEvent): AdminEvent {
  if (typeof event.data === "function") event.data = event.data() as Record<string, unknown>;
  return event as AdminEvent;
}

/**
 * Fans events out to Server-Sent Events subscribers. {@linkcode publish} never waits: each
 * subscriber has a bounded queue, and one whose queue is full (a client that stopped
 * reading) is dropped, its stream ended, so a slow subscriber can never slow the load
 * balancer or grow its memory. A keep-alive comment runs only while someone subscribes.
 */
export class EventHub {
  readonly #subscribers = new Set<Subscriber>();
  readonly #queueSize: number;
  readonly #keepAliveMs: number;
  readonly #historySize: number;
  /**
   * The last events, a ring: `#historyNext` is where the next one goes (over the oldest, once
   * full). Every connection publishes two events, and taking the oldest off the front of an
   * array cost more than the rest of the monitor's bookkeeping of a connection.
   */
  readonly #history: KeptEvent[] = [];
  #historyNext = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #nextId = 1;
  #dropped = 0;
  #closed = false;

  constructor(options: EventHubOptions = {}) {
    this.#queueSize = options.queueSize ?? 512;
    this.#keepAliveMs = options.keepAliveMs ?? 5000;
    this.#historySize = options.historySize ?? 100;
  }

  /** Subscribers connected now. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Subscribers dropped for not reading, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The last events, oldest first. */
  recent(): readonly AdminEvent[] {
    // Until the ring is full, the next place is its end, and the first slice is empty.
    const history = this.#history;
    return [...history.slice(this.#historyNext), ...history.slice(0, this.#historyNext)].map(made);
  }

  /** Sends an event of `type` with `data` to every subscriber at `timeMs`. Never blocks. */
  publish(type: string, data: EventData, timeMs: number): void {
    const event = { type, timeMs, data };
    if (this.#historySize > 0) {
      this.#history[this.#historyNext] = event;
      this.#historyNext = (this.#historyNext + 1) % this.#historySize;
    }
    if (this.#subscribers.size === 0) return;
    const bytes = encoder.encode(formatSse(made(event), this.#nextId++));
    for (const subscriber of this.#subscribers) this.#send(subscriber, bytes);
  }

  /**
   * A new subscriber's stream of SSE bytes: a `retry` hint, then every event published from
   * now on. Cancelling the stream (the client went away) unsubscribes.
   */
  subscribe(): ReadableStream<Uint8Array> {
    let subscriber: Subscriber | undefined;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        if (this.#closed) {
          controller.close();
          return;
        }
        subscriber = { controller };
        this.#subscribers.add(subscriber);
        controller.enqueue(encoder.encode("retry: 2000\n: connected\n\n"));
        this.#startKeepAlive();
      },
      cancel: () => {
        if (subscriber !== undefined) this.#remove(subscriber);
      },
    }, new CountQueuingStrategy({ highWaterMark: this.#queueSize }));
  }

  /** Ends every subscriber's stream and takes no more (the admin server is stopping). */
  close(): void {
    this.#closed = true;
    for (const subscriber of [...this.#subscribers]) this.#end(subscriber);
  }

  #send(subscriber: Subscriber, bytes: Uint8Array): void {
    if ((subscriber.controller.desiredSize ?? 0) <= 0) {
      this.#dropped++;
      this.#end(subscriber);
      return;
    }
    subscriber.controller.enqueue(bytes);
  }

  /** Ends a subscriber's stream: what is queued is still delivered, nothing more is. */
  #end(subscriber: Subscriber): void {
    this.#remove(subscriber);
    try {
      subscriber.controller.close();
    } catch {
      // Already closed or cancelled.
    }
  }

  #remove(subscriber: Subscriber): void {
    this.#subscribers.delete(subscriber);
    if (this.#subscribers.size === 0) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #startKeepAlive(): void {
    if (this.#keepAlive !== undefined || this.#keepAliveMs <= 0) return;
    const comment = encoder.encode(": keep-alive\n\n");
    this.#keepAlive = setInterval(() => {
      for (const subscriber of [...this.#subscribers]) this.#send(subscriber, comment);
    }, this.#keepAliveMs);
  }
}
