// Browser test of the switch from the original library to sessiongate (issue 14), run by
// tests/it/legacy.rs (`legacy::browser_page_survives_the_switch`), which starts the pieces:
// the library's app (tests/legacy/server.js, short access tokens, serving /sdk), and a
// sessiongate with [legacy] on the same database. This script puts a switchable TCP front on
// one origin, opens the SDK page through it in Chromium, logs in against the library, switches
// the front to sessiongate and checks that the page keeps working through an access-token
// expiry (the refresh that converts the session) and a second, native, expiry — without a
// new login. Prints `HANDLE <session handle>` for the Rust side and `N passed, M failed`.
//
// Environment: LEGACY_PORT, GATEWAY_PORT (where the two listen), BUNDLE (where to build the
// supertokens-website 4.2.0 bundle that the library's app serves), LEGACY_AT_SECS (the
// library's access-token validity), NATIVE_AT_SECS (the gateway's), CHROMIUM_BIN (optional).

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, "test-results");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...args) => console.log("[legacy-browser]", ...args);

function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function assertEq(actual, expected, what) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** A TCP front on a free port forwarding every new connection to `target`; `switchTo`
 * changes the target and drops the open connections (the browser reconnects). */
async function startFront(target) {
  const open = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    switchTo(port) {
      target = port;
      for (const s of open) s.destroy();
      open.clear();
    },
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

async function buildBundle(outfile) {
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [path.join(HERE, "sdk-entry.cjs")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2017",
    outfile,
    inject: [path.join(HERE, "process-shim.mjs")],
    logLevel: "warning",
  });
}

async function main() {
  const legacyPort = Number(env("LEGACY_PORT"));
  const gatewayPort = Number(env("GATEWAY_PORT"));
  const legacyAtMs = Number(env("LEGACY_AT_SECS")) * 1000;
  const nativeAtMs = Number(env("NATIVE_AT_SECS")) * 1000;
  fs.mkdirSync(RESULTS, { recursive: true });
  await buildBundle(env("BUNDLE"));
  const front = await startFront(legacyPort);
  const base = `http://127.0.0.1:${front.port}`;
  log(`front ${base} -> library app :${legacyPort}`);
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  let page = null;
  try {
    const context = await browser.newContext();
    page = await context.newPage();
    const seen = [];
    context.on("response", (r) => {
      const u = new URL(r.url());
      seen.push({ path: u.pathname, method: r.request().method(), status: r.status() });
    });
    const refreshes = () => seen.filter((s) => s.path === "/auth/refresh");
    await page.goto(`${base}/sdk`);
    await page.locator("#sdk-status", { hasText: "ready" }).waitFor({ timeout: 10_000 });
    const sdk = (fn, ...args) => page.evaluate(([f, a]) => window[f](...a), [fn, args]);
    const exists = () => page.evaluate(() => window.supertokens.doesSessionExist());

    // 1. Log in against the library, through the SDK-wrapped fetch.
    let r = await sdk("sdkLogin", "browser-user", { plan: "pro" }, { theme: "dark" });
    assertEq(r.status, 200, "login at the library");
    const handle = r.body.handle;
    assert(typeof handle === "string" && handle.length > 0, `no handle in ${JSON.stringify(r.body)}`);
    console.log(`HANDLE ${handle}`);
    assertEq(await exists(), true, "doesSessionExist() after the library login");
    r = await sdk("sdkCall", "/api/me");
    assertEq([r.status, r.body.userId, r.body.handle], [200, "browser-user", handle], "library /api/me");
    log(`logged in at the library: session ${handle}`);

    // 2. The operator switches the origin to sessiongate.
    front.switchTo(gatewayPort);
    log(`front switched -> sessiongate :${gatewayPort}`);
    const identity = (res) => {
      const h = (res.body && res.body.headers) || {};
      return [res.status, h["x-user-id"]?.[0], h["x-session-handle"]?.[0], h["x-jwt-payload"]?.[0]];
    };
    const expected = [200, "browser-user", handle, JSON.stringify({ plan: "pro" })];
    r = await sdk("sdkCall", "/api/me");
    assertEq(identity(r), expected, "sessiongate serves the library's access token");
    assertEq(refreshes().length, 0, "no refresh before expiry");

    // 3. The library's access token expires: one refresh (the conversion), no new login.
    await sleep(legacyAtMs + 1500);
    r = await sdk("sdkCall", "/api/me");
    assertEq(identity(r), expected, "after the library token expired (converted by the refresh)");
    assertEq(refreshes(), [{ path: "/auth/refresh", method: "POST", status: 200 }], "refresh calls");
    assertEq(await exists(), true, "doesSessionExist() after the conversion");
    r = await sdk("sdkCall", "/api/me", { method: "POST" });
    assertEq(identity(r), expected, "POST (anti-csrf from the conversion)");
    log("converted on refresh");

    // 4. The native access token expires too: a native refresh, still the same session.
    await sleep(nativeAtMs + 1500);
    r = await sdk("sdkCall", "/api/me");
    assertEq(identity(r), expected, "after the native token expired");
    assertEq(refreshes().map((x) => x.status), [200, 200], "refresh statuses");
    assertEq(await exists(), true, "doesSessionExist() at the end");
    assertEq(seen.filter((s) => s.path === "/login").length, 1, "logins");
    log("native refresh ok");
  } catch (e) {
    if (page) {
      const file = path.join(RESULTS, "legacy-switch.png");
      await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).catch(() => {});
      log(`screenshot: ${file}`);
    }
    throw e;
  } finally {
    await browser.close().catch(() => {});
    front.close();
  }
}

try {
  await main();
  console.log("ok   legacy-switch");
  console.log("1 passed, 0 failed");
} catch (e) {
  console.log(`FAIL legacy-switch: ${e.stack || e}`);
  console.log("0 passed, 1 failed");
  process.exitCode = 1;
}
