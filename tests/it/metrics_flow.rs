//! `/metrics` after a scripted browser flow, with exact counter values (SPEC §11): login,
//! authenticated requests, a refresh, a token theft (time driven by the injected clock), a
//! logout. The exposition is parsed, not grepped. Run with `--nocapture` to see the excerpt.

use std::collections::BTreeMap;
use std::time::Duration;

use sessiongate::clock::Clock;

use crate::support::db;
use crate::support::{start_gateway, test_config, Browser, TestUpstream};

/// One sample: metric name and sorted labels.
type Key = (String, BTreeMap<String, String>);

/// Parses the Prometheus text format (0.0.4): comments skipped, `name{l="v",...} value`.
fn parse(text: &str) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').unwrap_or_else(|| panic!("bad line {line}"));
                (&line[..=close], line[close + 1..].trim())
            }
            None => {
                let (n, v) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("bad line {line}"));
                (n, v.trim())
            }
        };
        // A timestamp may follow the value.
        let value = value.split_whitespace().next().unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => (name.to_string(), parse_labels(&rest[..rest.len() - 1])),
        };
        assert!(
            out.insert((name, labels), value).is_none(),
            "duplicate series {line}"
        );
    }
    out
}

/// `a="x",b="y\"z"` → map, honouring the `\\`, `\"` and `\n` escapes.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} value must be quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next().expect("dangling escape") {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim().to_string(), value);
    }
    out
}

struct Scrape(BTreeMap<Key, f64>);

impl Scrape {
    /// The value of `name` with exactly `labels`, or 0 when the series does not exist (a
    /// labelled counter that was never incremented is not exported).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Every series of `name` (any labels).
    fn series(&self, name: &str) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l, *v))
            .collect()
    }
}

#[test]
fn parser_handles_escapes_and_plain_series() {
    let s = parse(
        "# HELP x y\n# TYPE x counter\nx 3\ny{a=\"1\",b=\"q\\\"z\"} 4.5\nh_bucket{le=\"+Inf\"} 7 1700000000\n",
    );
    let sc = Scrape(s);
    assert_eq!(sc.get("x", &[]), 3.0);
    assert_eq!(sc.get("y", &[("a", "1"), ("b", "q\"z")]), 4.5);
    assert_eq!(sc.get("h_bucket", &[("le", "+Inf")]), 7.0);
    assert_eq!(sc.get("y", &[("a", "1")]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_after_a_scripted_flow() {
    let up = TestUpstream::start().await;
    let db = db::TestSqlite::new();
    let clock = Clock::system();
    let gw = start_gateway(test_config(&db.url(), &up.url(), ""), clock.clone()).await;
    let mut b = Browser::new(gw.public_addr);

    // 1. No session yet: one refusal (auth outcome no_session, api 401).
    assert_eq!(b.get("/api/me").await.status, 401);
    // 2. Login through the upstream's sessiongate-create (route "login", public).
    b.login("alice").await;
    // 3. Three authenticated requests.
    for _ in 0..3 {
        let r = b.get("/api/me").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // 4. A refresh, then one more authenticated request with the new token.
    let stolen = b.clone();
    let r = b.refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.get("/api/me").await.status, 200);
    // 5. Theft: the pre-refresh refresh token replayed after the 10 s grace window.
    clock.advance(Duration::from_secs(11));
    let mut thief = stolen;
    let r = thief.refresh().await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"], "token_theft_detected");
    // 6. Logout (the session is already revoked by the theft; the endpoint still answers 200
    //    and clears the cookies, but revokes nothing more).
    let r = b.post("/auth/logout").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let admin = gw.admin_addr;
    let mut scraper = Browser::new(admin);
    let resp = scraper.get("/metrics").await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    let m = Scrape(parse(&text));

    // The excerpt, to be quoted.
    println!("---- /metrics excerpt after the scripted flow ----");
    for line in text.lines() {
        let wanted = [
            "sessiongate_sessions_created_total",
            "sessiongate_refresh_total",
            "sessiongate_auth_decisions_total",
            "sessiongate_requests_total",
            "sessiongate_sessions_revoked_total",
            "sessiongate_token_theft_total",
        ];
        if !line.starts_with('#') && wanted.iter().any(|w| line.starts_with(w)) {
            println!("{line}");
        }
    }
    println!("---- end ----");

    assert_eq!(m.get("sessiongate_sessions_created_total", &[]), 1.0);
    assert_eq!(
        m.get("sessiongate_refresh_total", &[("outcome", "rotated")]),
        1.0
    );
    assert_eq!(
        m.get("sessiongate_refresh_total", &[("outcome", "theft")]),
        1.0
    );
    assert_eq!(
        m.series("sessiongate_refresh_total").len(),
        2,
        "no other refresh outcome: {:?}",
        m.series("sessiongate_refresh_total")
    );
    assert_eq!(m.get("sessiongate_token_theft_total", &[]), 1.0);
    // 3 + 1 valid; the first request and the login (its route has session control, so
    // the session is read as on an optional route) had no session; nothing else was checked.
    assert_eq!(
        m.get("sessiongate_auth_decisions_total", &[("outcome", "valid")]),
        4.0
    );
    assert_eq!(
        m.get(
            "sessiongate_auth_decisions_total",
            &[("outcome", "no_session")]
        ),
        2.0
    );
    assert_eq!(m.series("sessiongate_auth_decisions_total").len(), 2);
    let req = |route: &str, code: &str| {
        m.get(
            "sessiongate_requests_total",
            &[("route", route), ("code", code)],
        )
    };
    assert_eq!(req("api", "200"), 4.0);
    assert_eq!(req("api", "401"), 1.0);
    assert_eq!(req("login", "200"), 1.0);
    assert_eq!(req("refresh", "200"), 1.0);
    assert_eq!(req("refresh", "401"), 1.0);
    assert_eq!(req("logout", "200"), 1.0);
    assert_eq!(
        m.series("sessiongate_requests_total").len(),
        6,
        "no other route/code: {:?}",
        m.series("sessiongate_requests_total")
    );
    let total: f64 = m
        .series("sessiongate_requests_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 9.0, "every request counted once");
    assert_eq!(
        m.get("sessiongate_sessions_revoked_total", &[("reason", "theft")]),
        1.0
    );
    assert_eq!(
        m.series("sessiongate_sessions_revoked_total").len(),
        1,
        "the logout of an already revoked session revokes nothing: {:?}",
        m.series("sessiongate_sessions_revoked_total")
    );
    // Histograms: one observation per request, labelled by route name, never a raw path.
    assert_eq!(
        m.get(
            "sessiongate_request_duration_seconds_count",
            &[("route", "api")]
        ),
        5.0
    );
    assert_eq!(
        m.get(
            "sessiongate_upstream_duration_seconds_count",
            &[("route", "api")]
        ),
        4.0,
        "only forwarded requests reach the upstream"
    );
    for (labels, _) in m.series("sessiongate_requests_total") {
        assert!(
            !labels["route"].starts_with('/'),
            "raw path label {labels:?}"
        );
    }
    gw.stop().await;
}
