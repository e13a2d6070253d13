import { formatAddr } from "../net/mod.ts";
import type { Backend } from "./backend.ts";
import type { HealthChange } from "./health.ts";
import type { NatRow } from "./nat_table.ts";
import type { RefusalReason } from "./proxy.ts";

/** Upper bounds of the connection duration histogram, in seconds. */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.01,
  0.1,
  0.5,
  1,
  5,
  10,
  30,
  60,
  300,
  900,
  3600,
];

/** Upper bounds of the backend connect time histogram, in seconds. */
export const CONNECT_BUCKETS_S: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/** Every reason a client can be refused for, so each has a series from the start. */
const REFUSAL_REASONS: readonly RefusalReason[] = [
  "max-conns",
  "max-conns-per-ip",
  "no-backend",
  "stopping",
];

/** A Prometheus histogram: cumulative bucket counts, a sum and a count. */
export class Histogram {
  /** Upper bounds, ascending; `+Inf` is implied. */
  readonly bounds: readonly number[];
  /** Observations at or below each bound (not cumulative; {@linkcode render} adds up). */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = bounds.map(() => 0);
  }

  /** Records one value. */
  observe(value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.counts[i]++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

/** The counters kept per backend address (they outlive the backend, as counters must). */
interface BackendCounters {
  opened: number;
  closed: number;
  /** Bytes of connections already closed; open ones are read live from the NAT table. */
  closedBytesUp: number;
  closedBytesDown: number;
  connectFailures: number;
  checksOk: number;
  checksFailed: number;
  wentUp: number;
  wentDown: number;
  duration: Histogram;
  connect: Histogram;
}

/** What {@linkcode LbMetrics.render} reads of the running load balancer. */
export interface MetricsSource {
  pool: { all(): readonly Backend[] };
  nat: { rows(): Iterable<NatRow>; readonly size: number };
}

/** Escapes a Prometheus label value. */
export function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Formats a sample value the way Prometheus reads it. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * The load balancer's Prometheus metrics. Fed by the lb hooks (see `monitor.ts`); gauges
 * (active connections, health, state, bytes of open connections) are read from the pool and
 * NAT table at render time, so they are never stale. Pure: no clock, no I/O.
 */
export class LbMetrics {
  readonly #backends = new Map<string, BackendCounters>();
  /**
   * The same counters by address object (a backend keeps its address object for life): found
   * per connection without writing the address out.
   */
  readonly #byAddr = new WeakMap<Backend["addr"], BackendCounters>();
  readonly #refused = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r) => [r, 0]));
  #reloads = 0;

  #counters(backend: Backend): BackendCounters {
    const known = this.#byAddr.get(backend.addr);
    if (known !== undefined) return known;
    const key = formatAddr(backend.addr);
    let counters = this.#backends.get(key);
    if (counters === undefined) {
      counters = {
        opened: 0,
        closed: 0,
        closedBytesUp: 0,
        closedBytesDown: 0,
        connectFailures: 0,
        checksOk: 0,
        checksFailed: 0,
        wentUp: 0,
        wentDown: 0,
        duration: new Histogram(DURATION_BUCKETS_S),
        connect: new Histogram(CONNECT_BUCKETS_S),
      };
      this.#backends.set(key, counters);
    }
    this.#byAddr.set(backend.addr, counters);
    return counters;
  }

  /** A connection to `backend` came up after `connectMs`. */
  opened(backend: Backend, connectMs: number): void {
    const counters = this.#counters(backend);
    counters.opened++;
    counters.connect.observe(connectMs / 1000);
  }

  /** The connection of `row` ended after `durationMs`. */
  closed(row: NatRow, backend: Backend, durationMs: number): void {
    const counters = this.#counters(backend);
    counters.closed++;
    counters.closedBytesUp += row.bytesUp;
    counters.closedBytesDown += row.bytesDown;
    counters.duration.observe(durationMs / 1000);
  }

  /**
   * Bytes relayed for `backend` (by its address) by connections already closed. Add the open
   * rows' counters for a total that only grows.
   */
  closedBytes(backend: Backend): { up: number; down: number } {
    const counters = this.#backends.get(formatAddr(backend.addr));
    return { up: counters?.closedBytesUp ?? 0, down: counters?.closedBytesDown ?? 0 };
  }

  /** A client was refused for `reason`. */
  refused(reason: RefusalReason): void {
    this.#refused.set(reason, (this.#refused.get(reason) ?? 0) + 1);
  }

  /** A proxied connect to `backend` failed. */
  connectFailed(backend: Backend): void {
    this.#counters(backend).connectFailures++;
  }

  /** A health check of `backend` passed or failed. */
  checked(backend: Backend, ok: boolean): void {
    const counters = this.#counters(backend);
    if (ok) counters.checksOk++;
    else counters.checksFailed++;
  }

  /** `backend`'s health changed. */
  health(backend: Backend, change: HealthChange): void {
    const counters = this.#counters(backend);
    if (change === "up") counters.wentUp++;
    else counters.wentDown++;
  }

  /** A config was applied. */
  reloaded(): void {
    this.#reloads++;
  }

  /** The metrics in the Prometheus text exposition format (version 0.0.4). */
  render(source: MetricsSource): string {
    const backends = source.pool.all();
    for (const backend of backends) this.#counters(backend);
    const live = new Map<number, { up: number; down: number }>();
    for (const row of source.nat.rows()) {
      const sums = live.get(row.backendId) ?? { up: 0, down: 0 };
      sums.up += row.bytesUp;
      sums.down += row.bytesDown;
      live.set(row.backendId, sums);
    }
    const liveByKey = new Map<string, { up: number; down: number }>();
    for (const backend of backends) {
      const sums = live.get(backend.id);
      if (sums !== undefined) liveByKey.set(formatAddr(backend.addr), sums);
    }
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    const sample = (name: string, labels: Record<string, string>, value: number) => {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
      lines.push(`${name}${text === "" ? "" : `{${text}}`} ${formatValue(value)}`);
    };
    const perBackend = (
      name: string,
      type: string,
      help: string,
      value: (c: BackendCounters, key: string) => number,
    ) => {
      family(name, type, help);
      for (const [key, counters] of this.#backends) {
        sample(name, { backend: key }, value(counters, key));
      }
    };

    perBackend(
      "l4chat_connections_opened_total",
      "counter",
      "Connections proxied to a backend.",
      (c) => c.opened,
    );
    perBackend(
      "l4chat_connections_closed_total",
      "counter",
      "Proxied connections that ended.",
      (c) => c.closed,
    );
    family("l4chat_connections_active", "gauge", "Connections open now, per backend.");
    for (const backend of backends) {
      sample("l4chat_connections_active", { backend: formatAddr(backend.addr) }, backend.active);
    }
    family("l4chat_nat_rows", "gauge", "Rows in the NAT table.");
    sample("l4chat_nat_rows", {}, source.nat.size);
    family(
      "l4chat_bytes_total",
      "counter",
      "Bytes relayed, up (client to backend) and down (backend to client), open connections included.",
    );
    for (const [key, counters] of this.#backends) {
      const open = liveByKey.get(key) ?? { up: 0, down: 0 };
      sample(
        "l4chat_bytes_total",
        { backend: key, direction: "up" },
        counters.closedBytesUp + open.up,
      );
      sample(
        "l4chat_bytes_total",
        { backend: key, direction: "down" },
        counters.closedBytesDown + open.down,
      );
    }
    perBackend(
      "l4chat_connect_failures_total",
      "counter",
      "Failed connects to a backend for a client (health checks not included).",
      (c) => c.connectFailures,
    );
    family("l4chat_health_checks_total", "counter", "Active health checks, by result.");
    for (const [key, counters] of this.#backends) {
      sample("l4chat_health_checks_total", { backend: key, result: "ok" }, counters.checksOk);
      sample("l4chat_health_checks_total", { backend: key, result: "fail" }, counters.checksFailed);
    }
    family("l4chat_health_transitions_total", "counter", "Health changes, by the new health.");
    for (const [key, counters] of this.#backends) {
      sample("l4chat_health_transitions_total", { backend: key, to: "up" }, counters.wentUp);
      sample("l4chat_health_transitions_total", { backend: key, to: "down" }, counters.wentDown);
    }
    family("l4chat_backend_up", "gauge", "1 when the backend is healthy, 0 when dead.");
    for (const backend of backends) {
      sample("l4chat_backend_up", { backend: formatAddr(backend.addr) }, backend.alive ? 1 : 0);
    }
    family("l4chat_backend_state", "gauge", "1 for the backend's administrative state.");
    for (const backend of backends) {
      for (const state of ["ready", "drain", "maint"]) {
        sample(
          "l4chat_backend_state",
          { backend: formatAddr(backend.addr), state },
          backend.state === state ? 1 : 0,
        );
      }
    }
    family("l4chat_backend_weight", "gauge", "The backend's weight.");
    for (const backend of backends) {
      sample("l4chat_backend_weight", { backend: formatAddr(backend.addr) }, backend.weight);
    }
    this.#histogram(
      lines,
      "l4chat_connection_duration_seconds",
      "How long proxied connections lasted.",
      (c) => c.duration,
    );
    this.#histogram(
      lines,
      "l4chat_backend_connect_seconds",
      "How long the backend connect of a proxied connection took.",
      (c) => c.connect,
    );
    family("l4chat_refused_total", "counter", "Clients turned away, by reason.");
    for (const [reason, count] of this.#refused) {
      sample("l4chat_refused_total", { reason }, count);
    }
    family("l4chat_reloads_total", "counter", "Configs applied (reloads and admin changes).");
    sample("l4chat_reloads_total", {}, this.#reloads);
    return lines.join("\n") + "\n";
  }

  #histogram(
    lines: string[],
    name: string,
    help: string,
    pick: (c: BackendCounters) => Histogram,
  ): void {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const [key, counters] of this.#backends) {
      const histogram = pick(counters);
      const backend = escapeLabel(key);
      let cumulative = 0;
      histogram.bounds.forEach((bound, index) => {
        cumulative += histogram.counts[index];
        lines.push(`${name}_bucket{backend="${backend}",le="${bound}"} ${cumulative}`);
      });
      lines.push(`${name}_bucket{backend="${backend}",le="+Inf"} ${histogram.count}`);
      lines.push(`${name}_sum{backend="${backend}"} ${histogram.sum}`);
      lines.push(`${name}_count{backend="${backend}"} ${histogram.count}`);
    }
  }
}
