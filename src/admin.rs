//! The admin listener (`server.admin_listen`), separate from the public one.
//!
//! Endpoints:
//! - `GET /healthz` — 200 while the process runs.
//! - `GET /readyz` — 200 while access tokens can be checked (signing keys loaded and, with
//!   blacklisting, the revocation feed read) and the gateway is not draining; 503 otherwise,
//!   with the reason. It does not depend on the store answering now (authenticated traffic
//!   needs no store), and it queries nothing: the body reports the store as `up` or `down`
//!   from the `store_up` gauge (`{"status":"ready","store":"down"}`); a 503 body is the usual
//!   admin error (`error`, `message` saying why) plus `store`.
//! - `GET /metrics` — Prometheus text.
//! - `GET /.well-known/jwks.json` — public EdDSA keys (503 before the keys are loaded).
//! - `HEAD` on each of these: the same status and headers, no body.
//! - `/v1/...` — the session API of SPEC §9, behind `Authorization: Bearer <admin key>`
//!   (compared in constant time; 403 when no key is configured). Bodies are bounded to
//!   [`MAX_BODY_BYTES`] (413 beyond).
//! - `POST /v1/jobs/purge` (beyond SPEC §9, same bearer key) — runs one purge of expired
//!   sessions now, exactly as the `removal_cron` job does (same job lock, same metrics), and
//!   answers `{"deleted": n, "skipped": false}`, or `{"deleted": 0, "skipped": true}` when
//!   another instance holds the purge lock. For operators and tests that cannot wait for cron.
//!
//! It uses the same session operations as the gateway (`Sessions`, which also counts and
//! blacklists revocations); no store calls here. Failures become responses through the one
//! rescue in `error.rs`.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use crate::body::{self, Body};
use crate::error::{json_response, Reject};
use crate::events::{Event, Origin};
use crate::metrics::RevokeReason;
use crate::server::Peer;
use crate::state::AppState;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// [`handle`] for a request from `peer`: a `/v1` call is a security event (`admin.call`), and
/// the events it causes carry the peer's address.
pub async fn handle_from(state: AppState, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let v1 = req.uri().path().starts_with("/v1/");
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let origin = Origin {
        client_ip: peer.addr.ip(),
        request_id: None,
    };
    let events = state.sessions.events().clone();
    crate::events::scope(origin, async move {
        let resp = handle(state, req).await;
        if v1 {
            events.emit(Event::AdminCall {
                method: method.as_str(),
                path: &path,
                status: resp.status().as_u16(),
            });
        }
        resp
    })
    .await
}

pub async fn handle(state: AppState, req: Request<Incoming>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let resp = match route(&state, req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    if head {
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, body::empty());
    }
    resp
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, Reject> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // HEAD is answered like GET outside `/v1`; `handle` drops the body.
    match (method.clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/healthz") => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        (Method::GET | Method::HEAD, "/readyz") => Ok(readiness(state)),
        (Method::GET | Method::HEAD, "/metrics") => Ok(text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics_text(state),
        )),
        (Method::GET | Method::HEAD, "/.well-known/jwks.json") => crate::gateway::jwks(state),
        (_, p) if p.starts_with("/v1/") => {
            authorize(state, &req)?;
            v1(state, req).await
        }
        _ => Err(Reject::NotFound(format!(
            "no admin endpoint {method} {path}"
        ))),
    }
}

/// `/readyz`: from memory only (no store query per probe).
fn readiness(state: &AppState) -> Response<Body> {
    let store = if state.metrics.store_up.get() == 1 {
        "up"
    } else {
        "down"
    };
    let blocker = if state.is_draining() {
        Some("draining")
    } else {
        state.verification_blocker()
    };
    match blocker {
        None => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "store": store}),
        ),
        Some(why) => {
            let reject = Reject::NotReady(why.into());
            json_response(
                reject.status(),
                &serde_json::json!({
                    "error": reject.code(),
                    "message": reject.to_string(),
                    "store": store,
                }),
            )
        }
    }
}

fn authorize(state: &AppState, req: &Request<Incoming>) -> Result<(), Reject> {
    let Some(key) = state.cfg.admin.api_key.as_deref() else {
        return Err(Reject::AdminForbidden(
            "the admin API is disabled: set admin.api_key_file or admin.api_key".into(),
        ));
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Reject::AdminUnauthorised("missing bearer token".into()))?;
    if bool::from(presented.as_bytes().ct_eq(key.as_bytes())) {
        Ok(())
    } else {
        Err(Reject::AdminUnauthorised("invalid bearer token".into()))
    }
}

async fn json_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Reject> {
    let bytes = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Reject::PayloadTooLarge
            } else {
                Reject::BadRequest(format!("reading body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Reject::BadRequest(format!("invalid JSON: {e}")))
}

async fn v1(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, Reject> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .trim_start_matches("/v1/")
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let sessions = &state.sessions;
    let not_found = |handle: &str| Reject::NotFound(format!("no live session {handle}"));
    let ok = |v: serde_json::Value| Ok(json_response(StatusCode::OK, &v));
    match (method, segs.as_slice()) {
        (Method::POST, ["sessions"]) => {
            let s = sessions.create(json_body(req).await?).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &serde_json::json!({
                    "handle": s.handle,
                    "user_id": s.user_id,
                    "access_token": s.access_token,
                    "access_token_expires_at": s.access_expires_at,
                    "refresh_token": s.refresh_token,
                    "session_expires_at": s.session_expires_at,
                    "id_refresh_token": s.id_refresh_token,
                    "anti_csrf": s.anti_csrf,
                }),
            ))
        }
        (Method::GET, ["sessions", handle]) => {
            let rec = sessions
                .session(handle)
                .await?
                .ok_or_else(|| not_found(handle))?;
            ok(serde_json::json!({
                "handle": rec.handle,
                "user_id": rec.user_id,
                "created_at": rec.created_at,
                "expires_at": rec.expires_at,
                "jwt_payload": rec.jwt_payload,
                "session_data": rec.session_data,
            }))
        }
        (Method::DELETE, ["sessions", handle]) => {
            if !sessions.revoke(handle, RevokeReason::Admin).await? {
                return Err(not_found(handle));
            }
            ok(serde_json::json!({ "revoked": true }))
        }
        (Method::PUT, ["sessions", handle, "data"]) => {
            let handle = handle.to_string();
            let data = json_body(req).await?;
            if !sessions.update_session_data(&handle, data).await? {
                return Err(not_found(&handle));
            }
            ok(serde_json::json!({ "updated": true }))
        }
        (Method::PUT, ["sessions", handle, "jwt-payload"]) => {
            let handle = handle.to_string();
            let payload = json_body(req).await?;
            if !sessions.set_jwt_payload(&handle, payload).await? {
                return Err(not_found(&handle));
            }
            ok(serde_json::json!({ "updated": true }))
        }
        (Method::GET, ["users", user, "sessions"]) => {
            let handles = sessions.user_sessions(user).await?;
            ok(serde_json::json!({ "user_id": user, "sessions": handles }))
        }
        (Method::DELETE, ["users", user, "sessions"]) => {
            let n = sessions.revoke_user(user, RevokeReason::Admin).await?;
            ok(serde_json::json!({ "revoked": n }))
        }
        (Method::POST, ["keys", "rotate"]) => {
            let kid = sessions.keys().force_rotate().await?;
            state.metrics.key_rotations_total.inc();
            sessions.events().emit(Event::KeyRotated {
                kid: &kid,
                scheduled: false,
            });
            ok(serde_json::json!({ "kid": kid }))
        }
        (Method::POST, ["jobs", "purge"]) => {
            let deleted = crate::jobs::purge_job_once(state).await?;
            ok(serde_json::json!({
                "deleted": deleted.unwrap_or(0),
                "skipped": deleted.is_none(),
            }))
        }
        (m, _) => Err(Reject::NotFound(format!("no admin endpoint {m} {path}"))),
    }
}

/// The Prometheus text, with the gauges that are read at scrape time brought up to date.
fn metrics_text(state: &AppState) -> String {
    let age = match state.sessions.keys().ring() {
        Ok(ring) if !ring.is_static() => ring
            .signing_key()
            .map(|k| (state.clock.now_ms() - k.created_at).max(0) / 1000)
            .unwrap_or(0),
        _ => 0,
    };
    state.metrics.signing_key_age_seconds.set(age);
    state.metrics.render()
}
