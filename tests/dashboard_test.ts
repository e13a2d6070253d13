/**
 * The dashboard page in a real headless Chromium (Debian's `chromium`, driven by
 * `playwright-core`; `.ci/run` installs the browser when missing). The browser steps run in
 * `_dashboard_browser.ts`, a process of their own, because Playwright needs more permissions
 * than this suite has. Leaves screenshots in `test-output/`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { api, startAdminLb } from "./_admin.ts";
import { deadline, EchoBackend } from "./_helpers.ts";

const OUTPUT = new URL("../test-output/", import.meta.url);

Deno.test("dashboard: backends, live NAT table and the drain button in Chromium", async () => {
  await using a = new EchoBackend();
  await using b = new EchoBackend();
  const { proc, adminPort, port } = await startAdminLb([
    "127.0.0.1",
    "127.0.0.1",
    String(a.port),
    "127.0.0.1",
    `${b.port},weight=3`,
    "--port",
    "0",
  ]);
  await using _proc = proc;
  await Deno.mkdir(OUTPUT, { recursive: true });
  const browser = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-all",
      new URL("_dashboard_browser.ts", import.meta.url).pathname,
      String(adminPort),
      String(port),
      [a.addr, b.addr].join(","),
      OUTPUT.pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await deadline(browser.output(), 90_000, "the browser steps did not finish");
  const decoder = new TextDecoder();
  assert.equal(
    output.code,
    0,
    `browser steps failed:\n${decoder.decode(output.stdout)}${decoder.decode(output.stderr)}`,
  );
  assert.equal(decoder.decode(output.stdout).trim(), "ok");
  const backends = (await api(adminPort, "GET", "/api/backends")).json.backends;
  assert.deepEqual(
    backends.map((x: { address: string; state: string }) => [x.address, x.state]),
    [[a.addr, "drain"], [b.addr, "ready"]],
  );
  assert.ok((await Deno.stat(new URL("dashboard.png", OUTPUT))).size > 0);
});
