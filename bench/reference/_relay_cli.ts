/**
 * The command line of the reference relays (`<name>.ts <port> <backend port>`) and how they
 * stop when they cannot run.
 *
 * @module
 */

/** The listening and backend ports from the command line, or exit 2 with the usage. */
export function relayPorts(name: string): [listenPort: number, backendPort: number] {
  const [listenPort, backendPort] = Deno.args.map(Number);
  if (!(listenPort > 0 && backendPort > 0)) {
    console.error(`usage: ${name}.ts <port> <backend port>`);
    Deno.exit(2);
  }
  return [listenPort, backendPort];
}

/** A function that says why relay `name` cannot run, and stops it (exit 1). */
export function fatalFor(name: string): (message: string) => never {
  return (message) => {
    console.error(`${name}: ${message}`);
    Deno.exit(1);
  };
}
