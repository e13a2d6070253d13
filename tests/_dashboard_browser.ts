/**
 * The browser half of `dashboard_test.ts`, run as its own process because Playwright needs
 * permissions (`--allow-all`: it probes `/proc/sys`) that the test suite does not grant:
 * `deno run -A tests/_dashboard_browser.ts <admin-port> <lb-port> <backend,...> <out-dir>`.
 *
 * Drives Debian's Chromium (`/usr/bin/chromium`, headless, background networking off, a
 * fresh user-data dir) at the dashboard of a running `l4chat lb --admin`: checks that the
 * page loads without console errors and shows every backend, that a new client connection
 * (made here, on loopback) shows in the table within 2 s and goes when it closes, then clicks
 * backend 1's drain button. Saves screenshots in `<out-dir>`. Prints `ok` and exits 0, or
 * throws (exit 1). Each wait is bounded.
 *
 * @module
 */
import net from "node:net";
import process from "node:process";
import { chromium } from "playwright-core";

const [adminPort, lbPort, backendList, outDir] = process.argv.slice(2);
const backends = backendList.split(",");
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

/** Connects to the load balancer, sends `text` + newline and waits for the echo. */
function echo(text: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: Number(lbPort) });
    let got = "";
    const timer = setTimeout(() => reject(new Error(`no echo of ${text.slice(0, 20)}`)), 5000);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`${text}\n`));
    socket.on("data", (chunk: string) => {
      got += chunk;
      if (got.includes("\n")) {
        clearTimeout(timer);
        socket.removeAllListeners("data");
        resolve(socket);
      }
    });
    socket.on("error", reject);
  });
}

function fail(message: string): never {
  throw new Error(message);
}

const profile = await Deno.makeTempDir({ prefix: "l4chat-chromium-" });
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
  viewport: { width: 1280, height: 800 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) => {
    // The event stream is cut when the page goes away; anything else is a problem.
    if (!request.url().endsWith("/api/events")) problems.push(`request failed: ${request.url()}`);
  });

  await page.goto(`http://127.0.0.1:${adminPort}/`, { timeout: 10_000 });
  const cards = page.locator('[data-testid="backend-card"]');
  await cards.nth(backends.length - 1).waitFor({ timeout: 5000 });
  if (await cards.count() !== backends.length) fail(`${await cards.count()} cards`);
  for (const [index, address] of backends.entries()) {
    const text = await cards.nth(index).innerText();
    if (!text.includes(address)) fail(`card ${index} lacks ${address}: ${text}`);
  }
  await page.locator("#live.on").waitFor({ timeout: 5000 });

  // Some traffic first, so that the throughput graphs have something to draw.
  (await echo("x".repeat(20_000))).destroy();

  // A new client shows in the table within 2 s, and goes when it closes.
  const client = await echo("hello dashboard");
  const row = page.locator(`#connections tbody tr[data-client="127.0.0.1:${client.localPort}"]`);
  await row.waitFor({ state: "visible", timeout: 2000 });
  if (!/\bopen\b/.test(await row.innerText())) fail(`row: ${await row.innerText()}`);
  // One more poll of /api/backends feeds the graphs before the picture is taken.
  await page.waitForResponse((res) => res.url().endsWith("/api/backends"), { timeout: 5000 });
  await page.locator("#events li").first().waitFor({ timeout: 5000 });
  await page.screenshot({ path: `${outDir}/dashboard.png` });
  client.destroy();
  await row.waitFor({ state: "detached", timeout: 2000 });

  // The drain button of backend 1; the test confirms the state through the API.
  await page.locator('button[data-action="drain"][data-backend="1"]').click();
  await page.locator('[data-testid="backend-card"][data-id="1"] .state[data-state="drain"]')
    .waitFor({ timeout: 5000 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: `${outDir}/dashboard-dark.png` });
  if (problems.length > 0) fail(`the page reported problems:\n${problems.join("\n")}`);
  console.log("ok");
} finally {
  await context.close();
  await Deno.remove(profile, { recursive: true });
}
