// Real-browser end-to-end tests for sessiongate.
//
// Builds the supertokens-website 4.2.0 bundle, starts `sessiongate demo` (binary from
// $SESSIONGATE_BIN) on free loopback ports with a temporary directory, drives Debian's
// Chromium through playwright-core, and prints `N passed, M failed`. Exit status is non-zero
// on any failure. Screenshots of failing tests go to test-results/<test>.png; with
// $SCREENSHOT_DIR set, the README screenshots are written there too.
//
// Usage: SESSIONGATE_BIN=target/debug/sessiongate node tests/browser/run.mjs [name-filter]

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, "test-results");
const BUNDLE = path.join(HERE, "dist", "supertokens.js");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ? path.resolve(process.env.SCREENSHOT_DIR) : null;
/** The demo's access tokens live 10 s; waiting this long guarantees expiry. */
const PAST_EXPIRY_MS = 11_500;
const TEST_TIMEOUT_MS = 90_000;

const cleanups = [];
let demo = null;

function log(...args) {
  console.log("[browser]", ...args);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function assertEq(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function buildBundle() {
  const esbuild = await import("esbuild");
  await esbuild.build({
    entryPoints: [path.join(HERE, "sdk-entry.cjs")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2017",
    outfile: BUNDLE,
    inject: [path.join(HERE, "process-shim.mjs")],
    logLevel: "warning",
  });
}

/** Starts `sessiongate demo` and resolves once its public listener answers. */
async function startDemo() {
  const bin = process.env.SESSIONGATE_BIN;
  assert(bin, "SESSIONGATE_BIN is not set (path of the sessiongate binary)");
  assert(fs.existsSync(bin), `SESSIONGATE_BIN does not exist: ${bin}`);
  const port = await freePort();
  const adminPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sessiongate-browser-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logPath = path.join(RESULTS, "demo.log");
  const logFile = fs.openSync(logPath, "w");
  const child = spawn(
    bin,
    [
      "demo",
      "--listen", `127.0.0.1:${port}`,
      "--admin-listen", `127.0.0.1:${adminPort}`,
      "--dir", dir,
      "--sdk-bundle", BUNDLE,
    ],
    { stdio: ["ignore", logFile, logFile] },
  );
  demo = child;
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = { code, signal };
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new Error(`sessiongate demo exited early (${JSON.stringify(exited)}); see ${logPath}`);
    }
    try {
      const r = await fetch(`${base}/`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`sessiongate demo did not answer on ${base} within 30 s`);
    await sleep(100);
  }
  return { base, logPath };
}

function stopDemo() {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    demo.kill("SIGTERM");
    const child = demo;
    const t = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, 3000);
    t.unref();
  }
}

process.on("exit", () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) demo.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    stopDemo();
    process.exit(130);
  });
}

// ---------------------------------------------------------------- helpers used by tests

/** Logs in through the demo's form and waits for the protected page. */
async function formLogin(page, base, user) {
  await page.goto(`${base}/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", "demo");
  await Promise.all([page.waitForURL(`${base}/app`), page.click("#login")]);
  await expectLoggedIn(page, user);
}

/** Waits until the page shows the protected content for `user`; returns the session handle. */
async function expectLoggedIn(page, user, timeout = 15_000) {
  const cell = page.locator("#x-user-id");
  await cell.waitFor({ timeout });
  const deadline = Date.now() + timeout;
  let text = await cell.textContent();
  while (text !== user && Date.now() < deadline) {
    await sleep(100);
    text = await cell.textContent();
  }
  assertEq(text, user, `#x-user-id on ${page.url()}`);
  const handle = (await page.locator("#x-session-handle").textContent()) || "";
  assert(handle.length > 0, "#x-session-handle is empty");
  return handle;
}

async function expectApiResult(page, user) {
  const out = page.locator("#api-result");
  const deadline = Date.now() + 15_000;
  let text = "";
  while (Date.now() < deadline) {
    text = (await out.textContent()) || "";
    if (text.includes(`user ${user} `)) return text;
    if (text.startsWith("API refused")) break;
    await sleep(100);
  }
  throw new Error(`#api-result: expected the API to answer for ${user}, got ${JSON.stringify(text)}`);
}

async function cookieValue(context, name) {
  const c = (await context.cookies()).find((c) => c.name === name);
  return c ? c.value : undefined;
}

/** Records (url path, status) of every response to `pathname` on the context's pages. */
function recordResponses(context, pathname) {
  const seen = [];
  context.on("response", (r) => {
    if (new URL(r.url()).pathname === pathname) seen.push({ status: r.status(), method: r.request().method() });
  });
  return seen;
}

async function inPageFetchStatus(page, url, init) {
  return page.evaluate(
    async ([u, i]) => (await window.fetch(u, i)).status,
    [url, init || {}],
  );
}

async function readmeScreenshot(page, name) {
  if (!SCREENSHOT_DIR) return;
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, clip: { x: 60, y: 16, width: 720, height: 410 } });
  log(`saved ${file}`);
}

// ---------------------------------------------------------------- the tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("a-form-login", async ({ base, newPage }) => {
  const { page } = await newPage();
  await formLogin(page, base, "alice");
  assertEq(new URL(page.url()).pathname, "/app", "landed on");
  const payload = await page.locator("#x-jwt-payload").textContent();
  assert(payload.includes('"name":"alice"'), `#x-jwt-payload lacks the name: ${payload}`);
  await readmeScreenshot(page, "logged-in.png");
});

test("b-expiry-refresh-and-reload", async ({ base, newPage }) => {
  const { page, context } = await newPage();
  await formLogin(page, base, "bob");
  const handle = await expectLoggedIn(page, "bob");
  const accessBefore = await cookieValue(context, "sAccessToken");
  assert(accessBefore, "no sAccessToken cookie after login");
  const refreshes = recordResponses(context, "/auth/refresh");
  const appLoads = recordResponses(context, "/app");
  await sleep(PAST_EXPIRY_MS);
  await page.reload();
  const handleAfter = await expectLoggedIn(page, "bob");
  assertEq(handleAfter, handle, "session handle after refresh (same session)");
  assertEq(JSON.stringify(refreshes), JSON.stringify([{ status: 200, method: "POST" }]), "refresh calls");
  assertEq(appLoads[0] && appLoads[0].status, 401, "first /app load after expiry (refresh page)");
  assertEq(appLoads.at(-1).status, 200, "final /app load");
  const accessAfter = await cookieValue(context, "sAccessToken");
  assert(accessAfter && accessAfter !== accessBefore, "the access token was not rotated");
  await page.click("#call-api");
  await expectApiResult(page, "bob");
  await readmeScreenshot(page, "after-refresh.png");
});

test("c-two-tabs-refresh-at-once", async ({ base, newPage }) => {
  const { page: one, context } = await newPage();
  await formLogin(one, base, "carol");
  const two = await context.newPage();
  await two.goto(`${base}/app`);
  const handle = await expectLoggedIn(two, "carol");
  const refreshes = recordResponses(context, "/auth/refresh");

  // Round 1: both tabs reload after expiry at the same moment (refresh-and-reload pages).
  await sleep(PAST_EXPIRY_MS);
  await Promise.all([one.reload(), two.reload()]);
  assertEq(await expectLoggedIn(one, "carol"), handle, "tab 1 session handle after round 1");
  assertEq(await expectLoggedIn(two, "carol"), handle, "tab 2 session handle after round 1");
  log(`  round 1 refresh statuses: ${refreshes.map((r) => r.status).join(", ")}`);
  assert(refreshes.some((r) => r.status === 200), "no successful refresh in round 1");

  // Round 2: both tabs call the API after expiry at the same moment (in-page refresh).
  refreshes.length = 0;
  await sleep(PAST_EXPIRY_MS);
  await Promise.all([one.click("#call-api"), two.click("#call-api")]);
  await expectApiResult(one, "carol");
  await expectApiResult(two, "carol");
  log(`  round 2 refresh statuses: ${refreshes.map((r) => r.status).join(", ")}`);
  assert(refreshes.some((r) => r.status === 200), "no successful refresh in round 2");
  for (const [i, p] of [one, two].entries()) {
    await p.reload();
    assertEq(new URL(p.url()).pathname, "/app", `tab ${i + 1} still on /app`);
    assertEq(await expectLoggedIn(p, "carol"), handle, `tab ${i + 1} session handle at the end`);
  }
});

test("d-logout", async ({ base, newPage }) => {
  const { page, context } = await newPage();
  await formLogin(page, base, "dave");
  await Promise.all([page.waitForURL(`${base}/`), page.click("#logout")]);
  assertEq(await cookieValue(context, "sAccessToken"), undefined, "sAccessToken after logout");
  await page.goto(`${base}/app`);
  const url = new URL(page.url());
  assertEq(url.pathname, "/login", "/app after logout redirects to");
  assertEq(url.searchParams.get("next"), "/app", "login redirect next");
  assertEq(await inPageFetchStatus(page, "/api/me"), 401, "/api/me after logout");
});

test("e-cross-site-refresh-refused", async ({ base, newPage }) => {
  const { page, context } = await newPage();
  await formLogin(page, base, "erin");
  const handle = await expectLoggedIn(page, "erin");
  // A second site: `localhost` on another port is cross-site to `127.0.0.1`.
  const target = `${base}/auth/refresh`;
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      `<!doctype html><title>evil</title><form id="f" method="post" action="${target}">` +
        `<input name="x" value="1"></form><script>document.getElementById("f").submit()</script>`,
    );
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  cleanups.push(() => evil.close());
  const evilUrl = `http://localhost:${evil.address().port}/`;
  const attacker = await context.newPage();
  const [resp] = await Promise.all([
    attacker.waitForResponse((r) => r.url() === target, { timeout: 15_000 }),
    attacker.goto(evilUrl),
  ]);
  assertEq(resp.status(), 403, "cross-site form POST to the refresh path");
  const origin = await resp.request().headerValue("origin");
  log(`  refused request had Origin: ${origin}`);
  evil.close();
  // The session is untouched: the protected page and the API still work.
  await page.goto(`${base}/app`);
  assertEq(await expectLoggedIn(page, "erin"), handle, "session handle after the attack");
  await page.click("#call-api");
  await expectApiResult(page, "erin");
  assertEq(await inPageFetchStatus(page, "/auth/refresh", { method: "POST" }), 200, "same-origin refresh");
});

test("f-supertokens-website-4.2.0-sdk", async ({ base, newPage }) => {
  const { page, context } = await newPage();
  const refreshes = recordResponses(context, "/auth/refresh");
  const sdkHeaders = [];
  context.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname === "/api/me" || u.pathname === "/auth/logout") {
      sdkHeaders.push({ path: u.pathname, headers: r.headers() });
    }
  });
  await formLogin(page, base, "frank");
  await page.goto(`${base}/sdk`);
  await page.locator("#sdk-status", { hasText: "ready" }).waitFor({ timeout: 10_000 });
  const sdk = (fn, ...args) => page.evaluate(([f, a]) => window[f](...a), [fn, args]);
  const exists = () => page.evaluate(() => window.supertokens.doesSessionExist());

  // After a form login the SDK has not seen the creation response (the redirect hides its
  // headers), so by 4.2.0's definition no session exists yet, although the cookies work.
  let r = await sdk("sdkCall", "/api/me");
  assertEq(r.status, 200, `GET /api/me through the SDK after a form login (${r.error || ""})`);
  assertEq(await exists(), false, "doesSessionExist() after a form login (SDK never saw it)");

  // Log in through the SDK-wrapped fetch: it sees id-refresh-token and anti-csrf.
  r = await sdk("sdkLogin", "frank");
  assertEq(r.status, 200, "SDK login");
  assertEq(await exists(), true, "doesSessionExist() after the SDK login");
  const csrf = await page.evaluate(() => localStorage.getItem("anti-csrf-localstorage"));
  assert(csrf, "the SDK did not store the anti-csrf token");

  r = await sdk("sdkCall", "/api/me");
  assertEq(r.status, 200, "GET /api/me through the SDK");
  assertEq(r.body.user_id, "frank", "/api/me user");
  const handle = r.body.session_handle;
  const last = sdkHeaders.at(-1).headers;
  assertEq(last["supertokens-sdk-name"], "website", "the interceptor's sdk-name header");
  assertEq(last["supertokens-sdk-version"], "4.2.0", "the interceptor's sdk-version header");
  assertEq(refreshes.length, 0, "refresh calls before expiry");

  await sleep(PAST_EXPIRY_MS);
  r = await sdk("sdkCall", "/api/me");
  assertEq(r.status, 200, "GET /api/me through the SDK after expiry (transparent refresh)");
  assertEq(r.body.user_id, "frank", "/api/me user after refresh");
  assertEq(r.body.session_handle, handle, "same session after refresh");
  assertEq(JSON.stringify(refreshes), JSON.stringify([{ status: 200, method: "POST" }]), "refresh calls");
  assertEq(await exists(), true, "doesSessionExist() after refresh");

  r = await sdk("sdkLogout");
  assertEq(r.status, 200, "POST /auth/logout through the SDK");
  const logoutReq = sdkHeaders.filter((x) => x.path === "/auth/logout").at(-1);
  assert(logoutReq && logoutReq.headers["anti-csrf"], "the SDK sent no anti-csrf header on logout");
  assertEq(await exists(), false, "doesSessionExist() after logout");
  r = await sdk("sdkCall", "/api/me");
  assertEq(r.status, 401, "GET /api/me through the SDK after logout");
  assertEq(refreshes.length, 1, "no refresh attempted after logout");
});

// ---------------------------------------------------------------- runner

async function runTest(t, browser, base) {
  const contexts = [];
  const newPage = async () => {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    contexts.push(context);
    const page = await context.newPage();
    return { context, page };
  };
  const started = Date.now();
  let error = null;
  let timer;
  try {
    await Promise.race([
      t.fn({ base, newPage }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
      }),
    ]);
  } catch (e) {
    error = e;
  } finally {
    clearTimeout(timer);
  }
  if (error) {
    const pages = contexts.flatMap((c) => c.pages());
    for (const [i, p] of pages.entries()) {
      const file = path.join(RESULTS, i === 0 ? `${t.name}.png` : `${t.name}-${i + 1}.png`);
      try {
        await p.screenshot({ path: file, fullPage: true, timeout: 5000 });
        log(`  screenshot: ${file} (${p.url()})`);
      } catch (e) {
        log(`  could not screenshot ${p.url()}: ${e.message}`);
      }
    }
  }
  for (const c of contexts) await c.close().catch(() => {});
  return { error, ms: Date.now() - started };
}

async function main() {
  const filter = process.argv[2];
  fs.mkdirSync(RESULTS, { recursive: true });
  const suiteStart = Date.now();
  let passed = 0;
  let failed = 0;
  let browser = null;
  try {
    assert(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    await buildBundle();
    log(`built ${BUNDLE}`);
    const { base, logPath } = await startDemo();
    log(`sessiongate demo at ${base} (log: ${logPath})`);
    const { chromium } = await import("playwright-core");
    // A fresh --user-data-dir: playwright-core refuses that argument in launch() and instead
    // always starts the browser on a new temporary profile directory of its own, removed on
    // close, which is what we want.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    log(`Chromium ${browser.version()}`);
    for (const t of tests) {
      if (filter && !t.name.includes(filter)) continue;
      const { error, ms } = await runTest(t, browser, base);
      if (error) {
        failed++;
        console.log(`FAIL ${t.name} (${(ms / 1000).toFixed(1)} s): ${error.stack || error}`);
      } else {
        passed++;
        console.log(`ok   ${t.name} (${(ms / 1000).toFixed(1)} s)`);
      }
    }
  } catch (e) {
    failed++;
    console.log(`FAIL setup: ${e.stack || e}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    stopDemo();
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch {
        // best effort
      }
    }
  }
  log(`suite took ${((Date.now() - suiteStart) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
}

await main();
