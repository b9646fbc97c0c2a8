// The application sessiongate takes over: the original `supertokens-node-mysql-ref-jwt` 5.0.4
// library (unmodified, from npm) in a small Express app, used by tests/it/legacy.rs and the
// browser test tests/browser/legacy.mjs to create real library sessions on a real MariaDB.
//
// Configuration (environment):
//   LEGACY_PORT            port on 127.0.0.1 (0 = any free port)            default 0
//   LEGACY_MYSQL_HOST / _PORT / _USER / _PASSWORD / _DATABASE               127.0.0.1 / 3306 / root / "" / required
//   LEGACY_REFRESH_TABLE   the library's mysql.tables.refreshTokens         default refresh_token
//   LEGACY_SIGNING_TABLE   the library's mysql.tables.signingKey            default signing_key
//   LEGACY_AT_VALIDITY_SECS  tokens.accessToken.validity (seconds); below 10 sets TEST_MODE=testing,
//                          the library's own switch that lifts its range checks   default 10
//   LEGACY_RENEW_PATH      tokens.refreshToken.renewTokenPath (= the gateway's renew_path)  default /auth/refresh
//   LEGACY_COOKIE_DOMAIN   cookie.domain                                    default 127.0.0.1
//   LEGACY_SDK_BUNDLE      a browser bundle of supertokens-website 4.x served at /sdk/supertokens.js
//
// Routes (auth errors answer with the status the SDK 4.2.0 expects, 401, and a JSON body):
//   POST /login            JSON {userId, payload?, sessionData?}: createNewSession → {userId, handle, payload}
//   GET  /api/me           getSession (no CSRF check for GET) → {userId, handle, payload}
//   POST /api/me           getSession with CSRF protection → same
//   POST <renew path>      refreshSession → {userId, handle}
//   POST /auth/logout      getSession + revokeSession
//   POST /revoke/:handle   revokeSessionUsingSessionHandle → {revoked: bool} (an operator action)
//   GET  /sdk              a page driving the unmodified SDK (helpers sdkLogin/sdkCall/sdkLogout)
//   GET  /sdk/supertokens.js  LEGACY_SDK_BUNDLE
// On success it prints `listening <port>` on stdout; on a failed init it exits 1.

"use strict";

const env = process.env;
const atValidity = Number(env.LEGACY_AT_VALIDITY_SECS || "10");
if (!(atValidity > 0)) {
  console.error(`LEGACY_AT_VALIDITY_SECS must be a positive number, got ${env.LEGACY_AT_VALIDITY_SECS}`);
  process.exit(2);
}
if (atValidity < 10) {
  // The library refuses validities below 10 s unless its test switch is on; it changes nothing else.
  process.env.TEST_MODE = "testing";
}
if (!env.LEGACY_MYSQL_DATABASE) {
  console.error("LEGACY_MYSQL_DATABASE is required");
  process.exit(2);
}

const fs = require("fs");
const express = require("express");
const cookieParser = require("cookie-parser");
const SuperTokens = require("supertokens-node-mysql-ref-jwt/express");

const renewPath = env.LEGACY_RENEW_PATH || "/auth/refresh";
const config = {
  mysql: {
    host: env.LEGACY_MYSQL_HOST || "127.0.0.1",
    port: Number(env.LEGACY_MYSQL_PORT || "3306"),
    user: env.LEGACY_MYSQL_USER || "root",
    password: env.LEGACY_MYSQL_PASSWORD || "",
    database: env.LEGACY_MYSQL_DATABASE,
    connectionLimit: 5,
    tables: {
      signingKey: env.LEGACY_SIGNING_TABLE || "signing_key",
      refreshTokens: env.LEGACY_REFRESH_TABLE || "refresh_token",
    },
  },
  tokens: {
    accessToken: { validity: atValidity },
    refreshToken: { renewTokenPath: renewPath },
  },
  cookie: {
    domain: env.LEGACY_COOKIE_DOMAIN || "127.0.0.1",
    secure: false,
    // "none" (the library's default) without Secure is dropped by browsers.
    sameSite: "lax",
  },
};

/** Answers an error from the library: auth errors as 401 + {message, type}, others as 500. */
function fail(res, err) {
  if (SuperTokens.Error.isErrorFromAuth(err) && err.errType !== SuperTokens.Error.GENERAL_ERROR) {
    const type = {
      [SuperTokens.Error.UNAUTHORISED]: "unauthorised",
      [SuperTokens.Error.TRY_REFRESH_TOKEN]: "try_refresh_token",
      [SuperTokens.Error.UNAUTHORISED_AND_TOKEN_THEFT_DETECTED]: "token_theft_detected",
    }[err.errType];
    res.status(401).json({ message: type, type, detail: String((err.err && err.err.message) || "") });
  } else {
    console.error("library error:", err);
    res.status(500).json({ message: "internal error", detail: String((err && err.err) || err) });
  }
}

function sessionJson(session) {
  // The Express Session has no getter for its handle; the field is public at runtime.
  return { userId: session.getUserId(), handle: session.sessionHandle, payload: session.getJWTPayload() };
}

const SDK_PAGE = `<!doctype html><meta charset="utf-8"><title>legacy app · SDK</title>
<p>SDK: <span id="sdk-status">loading…</span></p><pre id="sdk-result"></pre>
<script src="/sdk/supertokens.js"></script>
<script>
async function asResult(r){const t=await r.text();let b;try{b=JSON.parse(t);}catch(e){b=t;}return {status:r.status,body:b};}
async function sdkCall(url,init){try{return await asResult(await fetch(url,init));}catch(e){return {status:0,error:String(e)};}}
function sdkLogin(userId,payload,sessionData){return sdkCall('/login',{method:'POST',headers:{'content-type':'application/json'},
  body:JSON.stringify({userId,payload,sessionData})});}
function sdkLogout(){return sdkCall('/auth/logout',{method:'POST'});}
if(window.supertokens){supertokens.init({refreshTokenUrl:${JSON.stringify(renewPath)},sessionExpiredStatusCode:401});document.getElementById('sdk-status').textContent='ready';}
else{document.getElementById('sdk-status').textContent='bundle failed to load';}
</script>`;

async function main() {
  await SuperTokens.init(config);
  const app = express();
  app.use(cookieParser());
  app.use(express.json());

  app.post("/login", async (req, res) => {
    const { userId, payload, sessionData } = req.body || {};
    if (typeof userId !== "string" && typeof userId !== "number") {
      res.status(400).json({ message: "body must be JSON with userId (string or number)" });
      return;
    }
    try {
      const session = await SuperTokens.createNewSession(res, userId, payload, sessionData);
      res.json(sessionJson(session));
    } catch (err) {
      fail(res, err);
    }
  });

  const me = (csrf) => async (req, res) => {
    try {
      const session = await SuperTokens.getSession(req, res, csrf);
      res.json(sessionJson(session));
    } catch (err) {
      fail(res, err);
    }
  };
  app.get("/api/me", me(false));
  app.post("/api/me", me(true));

  app.post(renewPath, async (req, res) => {
    try {
      const session = await SuperTokens.refreshSession(req, res);
      res.json(sessionJson(session));
    } catch (err) {
      fail(res, err);
    }
  });

  app.post("/auth/logout", async (req, res) => {
    try {
      const session = await SuperTokens.getSession(req, res, true);
      await session.revokeSession();
      res.json({ loggedOut: true });
    } catch (err) {
      fail(res, err);
    }
  });

  app.post("/revoke/:handle", async (req, res) => {
    try {
      res.json({ revoked: await SuperTokens.revokeSessionUsingSessionHandle(req.params.handle) });
    } catch (err) {
      fail(res, err);
    }
  });

  app.get("/sdk", (req, res) => res.type("html").send(SDK_PAGE));
  app.get("/sdk/supertokens.js", (req, res) => {
    if (!env.LEGACY_SDK_BUNDLE || !fs.existsSync(env.LEGACY_SDK_BUNDLE)) {
      res.status(404).type("text").send("LEGACY_SDK_BUNDLE is not set or missing");
      return;
    }
    res.type("application/javascript").send(fs.readFileSync(env.LEGACY_SDK_BUNDLE));
  });

  const server = app.listen(Number(env.LEGACY_PORT || "0"), "127.0.0.1", () => {
    console.log(`listening ${server.address().port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error("legacy app failed to start:", err);
  process.exit(1);
});
