/**
 * The Web Worker that makes `epoll_wait` for `_libc_bun.ts` while the epoll engine's loop is
 * parked: told a {@linkcode WaitSetup} once, then for each {@linkcode WaitRequest} it blocks
 * in `epoll_wait`, copies the events into the shared buffer and posts their count (or -1).
 *
 * @module
 */
import { LIBC_FUNCTIONS } from "./_libc.ts";
import { bunBind, bunFfi, type WaitRequest, type WaitSetup } from "./_libc_bun.ts";

/** The worker side of `postMessage`, which Deno's window types do not declare. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<WaitSetup | WaitRequest>) => void) | null;
  postMessage(message: unknown): void;
};

const { epoll_wait: epollWait } = bunBind(bunFfi(), { epoll_wait: LIBC_FUNCTIONS.epoll_wait });

let setup: WaitSetup | undefined;
let events: Uint8Array | undefined;

scope.onmessage = (event) => {
  if (setup === undefined) {
    setup = event.data as WaitSetup;
    events = new Uint8Array(setup.events);
    return;
  }
  const { maxEvents, timeoutMs } = event.data as WaitRequest;
  scope.postMessage(epollWait(setup.epfd, events, maxEvents, timeoutMs));
};
