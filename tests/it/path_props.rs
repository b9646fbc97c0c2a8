//! Property tests for path normalisation, routing and the upstream URI (issue 8, item 13).
//!
//! Inputs are built from nasty pieces (`/`, `.`, `..`, `;`, `%`, stray hex digits, `%25`,
//! `%2e`, `%2f`, `%3b`, overlong and valid UTF-8 escapes, raw non-ASCII, `?`, `#`, …) rather
//! than only random strings, so the interesting cases are hit in every run.
//!
//! `cargo test --test it path_props::` runs 10,000 cases per property (a few seconds in debug).
//! For millions: `PROPTEST_CASES=1000000 cargo test --release --test it path_props::`.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use sessiongate::config::{AntiCsrfMode, AuthMode, PathParams, Route};
use sessiongate::proxy::route::{join_upstream_uri, normalise_path, Router};

/// 10,000 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces normalisation accepts (structure, params, harmless escapes, raw bytes to encode).
const PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "//",
    ".",
    "..",
    "..",
    "...",
    ";",
    ";x",
    ";a=1",
    "..;",
    ".;x",
    "%25",
    "%2e",
    "%2E",
    "%41",
    "%7e",
    "%20",
    "%C3%A9",
    "%F0%9F%A6%80",
    "e",
    "E",
    "2",
    "5",
    "c",
    "a",
    "A",
    "api",
    "API",
    "app",
    "login",
    "é",
    "日",
    "\u{80}",
    "\u{7f}",
    "\u{1}",
    "?",
    "#",
    " ",
    "~",
    "-",
    "_",
    "!",
    "$",
    "&",
    "'",
    "(",
    "*",
    "+",
    ",",
    "=",
    ":",
    "@",
    "[",
    "]",
    "^",
    "|",
    "\"",
    "{",
    "}",
    "<",
    ">",
    "`",
    "2e",
    "2F",
    "3b",
    "5c",
    "00",
];

/// Pieces that are refused alone, or that make a refused sequence with their neighbours.
const RISKY: &[&str] = &[
    "%",
    "%2",
    "%2525",
    "%2f",
    "%2F",
    "%3b",
    "%3B",
    "%5c",
    "%00",
    "%c0%ae",
    "%C0%AE",
    "%e0%80%ae",
    "%c3",
    "%a9",
    "%ff",
    "%zz",
    "\\",
    "\0",
    "/%252e%252e/",
    "/%252E/",
    "%252f",
    "%253b",
    "%255C",
    "%2500",
    "/%25%32%65/",
    "/%2525%32e/",
];

/// A path from nasty pieces, usually (not always) absolute.
fn nasty_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        12 => prop::sample::select(PIECES).prop_map(str::to_string),
        1 => prop::sample::select(RISKY).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
    ];
    (
        prop::bool::weighted(0.95),
        prop::collection::vec(piece, 0..24),
    )
        .prop_map(|(abs, parts)| {
            let body: String = parts.concat();
            if abs {
                format!("/{body}")
            } else {
                body
            }
        })
}

/// A path that normalisation accepts more often: segments of a plain alphabet with dot
/// segments, parameters, harmless escapes and raw non-ASCII.
fn plain_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        4 => "[aAbBpPiI]{1,4}",
        1 => Just(".".to_string()),
        1 => Just("..".to_string()),
        1 => Just(String::new()),
        1 => "[aA]{0,2};[a-z=]{0,3}",
        1 => Just("..;x".to_string()),
        1 => Just("%41%c3%a9".to_string()),
        1 => Just("é".to_string()),
    ];
    prop::collection::vec(seg, 0..8).prop_map(|segs| format!("/{}", segs.join("/")))
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![nasty_path(), plain_path()]
}

/// Full percent-decoding, as an upstream would do once (malformed escapes left as they are).
fn decode_once(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn route(name: &str, prefix: &str, host: Option<&str>, case_insensitive: bool) -> Route {
    Route {
        name: name.into(),
        path_prefix: prefix.into(),
        host: host.map(str::to_string),
        upstream: Some("http://127.0.0.1:1".parse().unwrap()),
        auth: AuthMode::Required,
        anti_csrf: AntiCsrfMode::NonGet,
        session_control: false,
        login_redirect: None,
        path_params: PathParams::Reject,
        case_insensitive,
        require_claims: Vec::new(),
        token_transfer: Default::default(),
    }
}

/// The matching rule written the obvious way, to check the router against.
fn reference_matches(prefix: &str, path: &str, case_insensitive: bool) -> bool {
    let (prefix, path) = if case_insensitive {
        (prefix.to_ascii_lowercase(), path.to_ascii_lowercase())
    } else {
        (prefix.to_string(), path.to_string())
    };
    let p = prefix.trim_end_matches('/');
    p.is_empty() || path == p || path.starts_with(&format!("{p}/"))
}

const PREFIXES: &[&str] = &[
    "/", "/a", "/A", "/api", "/API", "/ap", "/api/", "/a/b", "/%C3%A9",
];
const HOSTS: &[Option<&str>] = &[None, None, Some("a.example"), Some("b.example")];

fn routes() -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec(
        (
            prop::sample::select(PREFIXES),
            prop::sample::select(HOSTS),
            any::<bool>(),
        ),
        1..6,
    )
    .prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (p, h, ci))| route(&format!("r{i}"), p, h, ci))
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Never panics; what it accepts is absolute, ASCII, free of dot segments, `//` and
    /// `;`-parameters, and a fixed point.
    #[test]
    fn normalisation_is_total_and_idempotent(raw in any_path()) {
        let Ok(n) = normalise_path(&raw) else { return Ok(()) };
        let p = &n.path;
        prop_assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
        prop_assert!(p.is_ascii(), "{raw:?} -> {p:?}");
        prop_assert!(!p.contains(';'), "{raw:?} -> {p:?}");
        prop_assert!(!p.contains("//"), "{raw:?} -> {p:?}");
        prop_assert!(
            p.split('/').all(|s| s != "." && s != ".."),
            "{raw:?} -> {p:?}"
        );
        let again = normalise_path(p);
        prop_assert_eq!(
            again.as_ref().map(|a| a.path.as_str()),
            Ok(p.as_str()),
            "{:?}", raw
        );
        prop_assert!(!again.unwrap().had_params);
    }

    /// An upstream that percent-decodes the forwarded path once, twice or three times sees
    /// the same segments: no new `/`, and never a `.` or `..` segment, a `;`, a `\` or NUL;
    /// decoded once, it is UTF-8 (no overlong forms).
    #[test]
    fn decoding_the_forwarded_path_again_reveals_nothing(raw in any_path()) {
        let Ok(n) = normalise_path(&raw) else { return Ok(()) };
        let segments = n.path.split('/').count();
        let mut seen = n.path.clone().into_bytes();
        prop_assert!(
            std::str::from_utf8(&decode_once(&seen)).is_ok(),
            "{raw:?} -> {:?} does not decode to UTF-8", n.path
        );
        for round in 1..=3 {
            seen = decode_once(&seen);
            let text = String::from_utf8_lossy(&seen);
            prop_assert_eq!(
                text.split('/').count(), segments,
                "round {} of {:?} -> {:?} -> {:?}", round, raw, n.path, text
            );
            prop_assert!(
                text.split('/').all(|s| s != "." && s != ".."),
                "round {round} of {raw:?} -> {:?} -> {text:?}", n.path
            );
            prop_assert!(!seen.contains(&b';') && !seen.contains(&b'\\') && !seen.contains(&0),
                "round {round} of {raw:?} -> {:?} -> {text:?}", n.path);
        }
    }

    /// Escaping an unreserved character, or writing a non-ASCII character raw instead of
    /// escaped, does not change where a path goes or what is forwarded.
    #[test]
    fn raw_and_escaped_spellings_normalise_alike(raw in plain_path(), at in any::<prop::sample::Index>()) {
        let chars: Vec<char> = raw.chars().collect();
        let i = at.index(chars.len());
        let c = chars[i];
        // Not a hex digit of an existing escape.
        let in_escape = chars[i.saturating_sub(2)..i].contains(&'%');
        let escaped = if !in_escape && (c.is_ascii_alphanumeric() || "-._~".contains(c) || !c.is_ascii()) {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf).bytes().map(|b| format!("%{b:02x}")).collect::<String>()
        } else {
            c.to_string()
        };
        let other: String = chars[..i].iter().collect::<String>() + &escaped
            + &chars[i + 1..].iter().collect::<String>();
        prop_assert_eq!(normalise_path(&raw), normalise_path(&other), "{:?} vs {:?}", raw, other);
    }

    /// The upstream URI's path is the upstream's base path followed by exactly the routed
    /// path, and building it never fails for a path normalisation accepted.
    #[test]
    fn the_routed_path_is_the_forwarded_path(
        raw in any_path(),
        base in prop::sample::select(&["http://app:3000", "http://app:3000/", "http://app/base",
                                       "https://app/base/", "http://app/a%20b/c"][..]),
        query in proptest::option::of("[a-z0-9=&%;/?]{0,12}"),
    ) {
        let Ok(n) = normalise_path(&raw) else { return Ok(()) };
        let upstream: http::Uri = base.parse().unwrap();
        let uri = join_upstream_uri(&upstream, &n.path, query.as_deref());
        let uri = match uri {
            Ok(u) => u,
            Err(e) => return Err(TestCaseError::fail(format!("{raw:?} -> {:?}: {e}", n.path))),
        };
        let want = format!("{}{}", upstream.path().trim_end_matches('/'), n.path);
        prop_assert_eq!(uri.path(), want.as_str());
        prop_assert_eq!(uri.query(), query.as_deref());
        prop_assert_eq!(uri.authority(), upstream.authority());
    }

    /// Routing never panics and picks what the obvious rule picks: among the routes whose
    /// host and prefix match, the longest prefix, then a host-specific one, then config order.
    #[test]
    fn routing_matches_the_reference(
        rs in routes(),
        raw in any_path(),
        host in prop::sample::select(&[None, Some("a.example"), Some("A.EXAMPLE:8443"), Some("c.example")][..]),
    ) {
        let path = normalise_path(&raw).map(|n| n.path).unwrap_or(raw);
        let router = Router::new(rs.clone());
        let got = router.route(host, &path).map(|(i, _)| i);
        let req_host = host.map(|h| h.split(':').next().unwrap());
        let want = rs
            .iter()
            .enumerate()
            .filter(|(_, r)| match (&r.host, req_host) {
                (None, _) => true,
                (Some(w), Some(h)) => w.eq_ignore_ascii_case(h),
                (Some(_), None) => false,
            })
            .filter(|(_, r)| reference_matches(&r.path_prefix, &path, r.case_insensitive))
            .min_by_key(|(i, r)| {
                (std::cmp::Reverse(r.path_prefix.trim_end_matches('/').len()), r.host.is_none(), *i)
            })
            .map(|(i, _)| i);
        prop_assert_eq!(got, want, "{:?} on {:?}", path, rs.iter().map(|r| (&r.path_prefix, &r.host, r.case_insensitive)).collect::<Vec<_>>());
    }

    /// A case-insensitive route matches exactly the paths its case-sensitive twin matches
    /// modulo ASCII case: never fewer, and never one that differs in more than case.
    #[test]
    fn case_insensitive_matching_is_matching_modulo_case(
        prefix in prop::sample::select(PREFIXES),
        raw in any_path(),
    ) {
        let path = normalise_path(&raw).map(|n| n.path).unwrap_or(raw);
        let ci = Router::new(vec![route("ci", prefix, None, true)]);
        let cs = Router::new(vec![route("cs", prefix, None, false)]);
        let lower_cs = Router::new(vec![route("cs", &prefix.to_ascii_lowercase(), None, false)]);
        let ci_hit = ci.route(None, &path).is_some();
        prop_assert!(cs.route(None, &path).is_none() || ci_hit, "{prefix} {path:?}");
        prop_assert_eq!(
            ci_hit,
            lower_cs.route(None, &path.to_ascii_lowercase()).is_some(),
            "{} {:?}", prefix, path
        );
    }
}

/// The generators are not vacuous: both reach accepted paths with `;`-parameters and dot
/// segments, and the nasty one refused paths too.
#[test]
fn generators_reach_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for (name, strategy) in [
        ("nasty", nasty_path().boxed()),
        ("plain", plain_path().boxed()),
    ] {
        let (mut ok, mut params, mut dots, mut refused) = (0, 0, 0, 0);
        for _ in 0..2000 {
            let raw = strategy.new_tree(&mut runner).unwrap().current();
            match normalise_path(&raw) {
                Ok(n) => {
                    ok += 1;
                    params += usize::from(n.had_params);
                    dots += usize::from(raw.split('/').any(|s| s.starts_with("..")));
                }
                Err(_) => refused += 1,
            }
        }
        println!("{name}: {ok} accepted ({params} with params, {dots} with ..), {refused} refused");
        assert!(ok >= 200 && params >= 50 && dots >= 50, "{name}");
        assert!(name == "plain" || refused >= 200, "{name}");
    }
}
