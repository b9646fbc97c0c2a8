//! Property tests of header hygiene (`proxy::headers`, issue 8 item 13): the spoofing →
//! hop-by-hop → untrusted → identity pipeline, host canonicalisation and cookie joining.
//!
//! Each property runs 10,000 cases in plain `cargo test` (a few seconds). For millions:
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release --test it header_props::
//! ```
//!
//! The oracles here are written independently of the code under test.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use sessiongate::config::IdentityConfig;
use sessiongate::proxy::headers::{
    add_identity, canonical_host, is_websocket_upgrade, request_host, strip_cookie,
    strip_hop_by_hop, strip_spoofed, strip_untrusted, HeaderError, PROXY_ONLY_HEADERS,
};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    }
}

/// Lower case with `_` read as `-`: how upstream stacks may see a name.
fn canon(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Identity configs: the default, and one with `_` in names (refused by config validation,
/// but the comparison must still hold).
fn identities() -> Vec<IdentityConfig> {
    vec![
        IdentityConfig {
            user_id_header: "x-user-id".into(),
            session_handle_header: "x-session-handle".into(),
            jwt_payload_header: "x-jwt-payload".into(),
        },
        IdentityConfig {
            user_id_header: "x_user_id".into(),
            session_handle_header: "x-session_handle".into(),
            jwt_payload_header: "x-remote-jwt".into(),
        },
    ]
}

/// Names the generator starts from: identity headers (of both configs), protocol headers,
/// headers only proxies may send, and `cookie`.
fn bases() -> Vec<&'static str> {
    let mut v = vec![
        "x-user-id",
        "x-session-handle",
        "x-jwt-payload",
        "x-remote-jwt",
        "sessiongate",
        "cookie",
    ];
    v.extend(HOP_BY_HOP);
    v.extend(PROXY_ONLY_HEADERS);
    v
}

/// Characters of generated tokens; `-` and `_` are common so spellings collide.
const TOKEN_CHARS: &[u8] = b"ab-_XYz0";

/// A token of 1..=12 characters drawn from `bits`.
fn token(bits: u64) -> String {
    let len = 1 + (bits % 12) as usize;
    (0..len)
        .map(|i| TOKEN_CHARS[((bits >> (4 + 3 * i)) & 7) as usize] as char)
        .collect()
}

/// A header name chosen by `kind`, in random case with `-` and `_` swapped at random (from
/// `bits`): a known name, `sessiongate-` plus a token, or an arbitrary token. Generated from
/// plain integers so that 10,000 cases stay fast in a debug build.
fn make_name(kind: u8, bits: u64) -> String {
    let bases = bases();
    let k = kind as usize % (bases.len() + 2);
    let s = match k {
        k if k < bases.len() => bases[k].to_string(),
        k if k == bases.len() => format!("sessiongate-{}", token(bits.rotate_left(17))),
        _ => token(bits.rotate_left(29)),
    };
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            let swap = (bits >> (i % 32)) & 1 == 1;
            let upper = (bits >> (32 + i % 32)) & 1 == 1;
            match c {
                '-' | '_' if swap => '_',
                '-' | '_' => '-',
                c if upper => c.to_ascii_uppercase(),
                c => c,
            }
        })
        .collect()
}

/// A header value chosen by `kind`: printable bytes, a token list that may name identity
/// headers (for `Connection`), or a protocol word.
fn make_value(kind: u8, a: u64, b: u64) -> String {
    match kind % 5 {
        0 => a
            .to_le_bytes()
            .iter()
            .chain(b.to_le_bytes().iter())
            .take((a % 17) as usize)
            .map(|x| (b' ' + x % 95) as char)
            .collect(),
        1 => (0..(a % 4))
            .map(|i| make_name((b >> (8 * i)) as u8, a.rotate_left(13 * i as u32) ^ b))
            .collect::<Vec<_>>()
            .join(", "),
        2 => "upgrade".into(),
        3 => "websocket".into(),
        _ => "trailers".into(),
    }
}

fn header_list() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            any::<u8>(),
            any::<u64>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
        ),
        0..16,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(nk, nb, vk, va, vb)| (make_name(nk, nb), make_value(vk, va, vb)))
            .collect()
    })
}

fn build(list: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in list {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

fn connection_tokens(h: &HeaderMap) -> Vec<String> {
    h.get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Characters that matter to host parsing, for host-like strings.
const HOST_CHARS: &[u8] = b"aZ09.-_@:[]%fF ";
/// Lower-case host-name label characters.
const LABEL_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";

proptest! {
    #![proptest_config(config())]

    /// After strip_spoofed → strip_hop_by_hop → strip_untrusted → add_identity, no header whose
    /// canonical name is an identity or `sessiongate-*` header carries a client value, no
    /// hop-by-hop header (or one named by Connection) survives, and nothing panics.
    #[test]
    fn hygiene_pipeline(
        list in header_list(),
        which in 0usize..2,
        websocket in any::<bool>(),
        trusted in any::<bool>(),
    ) {
        let id = &identities()[which];
        let ours = [
            (id.user_id_header.as_str(), "gw-user"),
            (id.session_handle_header.as_str(), "gw-handle"),
            (id.jwt_payload_header.as_str(), "{\"gw\":1}"),
        ];
        let identity_canon: Vec<String> = ours.iter().map(|(n, _)| canon(n)).collect();
        let is_ours = |name: &str| {
            let c = canon(name);
            identity_canon.contains(&c) || c.starts_with("sessiongate-")
        };
        let mut h = build(&list);
        let underscore_identity = h.keys().any(|n| n.as_str().contains('_') && is_ours(n.as_str()));
        match strip_spoofed(&mut h, id) {
            Err(HeaderError::UnderscoreIdentity(_)) => {
                prop_assert!(underscore_identity);
                return Ok(());
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
            Ok(()) => prop_assert!(!underscore_identity),
        }
        prop_assert!(h.keys().all(|n| !is_ours(n.as_str())), "{h:?}");

        let named: Vec<String> = connection_tokens(&h);
        let ws = websocket && is_websocket_upgrade(&h);
        strip_hop_by_hop(&mut h, websocket);
        if !trusted {
            strip_untrusted(&mut h);
        }
        add_identity(&mut h, id, "gw-user", "gw-handle", "{\"gw\":1}").unwrap();

        for (n, want) in ours {
            let got: Vec<&[u8]> = h.get_all(n).iter().map(HeaderValue::as_bytes).collect();
            prop_assert_eq!(got, vec![want.as_bytes()], "{}", n);
        }
        for (n, v) in &h {
            let n = n.as_str();
            if is_ours(n) {
                let gw = ours.iter().find(|(o, _)| *o == n);
                prop_assert!(gw.is_some_and(|(_, want)| v.as_bytes() == want.as_bytes()),
                    "client value in {n}: {v:?}");
                continue;
            }
            match n {
                "keep-alive" | "proxy-connection" | "transfer-encoding" | "trailer" => {
                    prop_assert!(false, "hop-by-hop {n} survived")
                }
                "te" => prop_assert_eq!(v.as_bytes().to_ascii_lowercase(), b"trailers".to_vec()),
                "connection" => {
                    prop_assert!(ws, "connection survived");
                    prop_assert_eq!(v.as_bytes(), b"upgrade");
                }
                "upgrade" => prop_assert!(ws, "upgrade survived"),
                _ => {}
            }
            if !(ws && n == "upgrade") && n != "connection" {
                prop_assert!(!named.iter().any(|t| t == n), "{n} named by Connection survived");
            }
            if !trusted {
                prop_assert!(!n.contains('_'), "{n} from an untrusted client");
                prop_assert!(!PROXY_ONLY_HEADERS.contains(&n), "{n} from an untrusted client");
            }
        }
    }

    /// Host canonicalisation never panics, is idempotent, and its output is lower case with
    /// no trailing dot and no userinfo.
    #[test]
    fn host_canonicalisation_is_idempotent(
        raw in prop_oneof![
            prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
            prop::collection::vec(prop::sample::select(HOST_CHARS), 0..24)
                .prop_map(|v| v.into_iter().map(char::from).collect::<String>()),
        ],
    ) {
        if let Ok(c) = canonical_host(&raw) {
            prop_assert_eq!(canonical_host(&c), Ok(c.clone()), "{:?}", raw);
            prop_assert_eq!(c.to_ascii_lowercase(), c.clone());
            prop_assert!(!c.contains('@'));
            let name = if c.starts_with('[') {
                c.split(']').next().unwrap_or("")
            } else {
                c.split(':').next().unwrap_or("")
            };
            prop_assert!(!name.ends_with('.') && !name.is_empty(), "{c}");
        }
    }

    /// A host name in any case with or without one trailing dot canonicalises to its lower-case
    /// form without the dot.
    #[test]
    fn host_case_and_trailing_dot(
        labels in prop::collection::vec(any::<u64>(), 1..5),
        upper in any::<u64>(),
        dot in any::<bool>(),
        port in prop::option::of(1u16..),
    ) {
        let name = labels
            .iter()
            .map(|bits| {
                let len = 1 + (bits % 8) as usize;
                (0..len)
                    .map(|i| LABEL_CHARS[((bits >> (3 + 5 * i)) % 37) as usize] as char)
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(".");
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| if (upper >> (i % 64)) & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        let suffix = port.map(|p| format!(":{p}")).unwrap_or_default();
        let raw = format!("{mixed}{}{suffix}", if dot { "." } else { "" });
        prop_assert_eq!(canonical_host(&raw), Ok(format!("{name}{suffix}")));
    }

    /// request_host never panics on arbitrary authority and Host bytes, and what it returns is
    /// canonical.
    #[test]
    fn request_host_never_panics(
        version in prop::sample::select(vec![
            http::Version::HTTP_09, http::Version::HTTP_10, http::Version::HTTP_11, http::Version::HTTP_2,
        ]),
        authority in prop::option::of(
            prop::collection::vec(prop::sample::select(HOST_CHARS), 0..20)
                .prop_map(|v| v.into_iter().map(char::from).collect::<String>()),
        ),
        hosts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..3),
    ) {
        let mut h = HeaderMap::new();
        for b in &hosts {
            if let Ok(v) = HeaderValue::from_bytes(b) {
                h.append(http::header::HOST, v);
            }
        }
        if let Ok(Some(c)) = request_host(version, authority.as_deref(), &h) {
            prop_assert_eq!(canonical_host(&c), Ok(c.clone()));
        }
    }

    /// Cookie joining keeps every non-refresh cookie once, in order, in one header.
    #[test]
    fn cookie_joining_keeps_every_other_cookie_once(
        fields in prop::collection::vec(prop::collection::vec((any::<u8>(), any::<u64>()), 1..4), 0..5),
    ) {
        let mut h = HeaderMap::new();
        let mut want = Vec::new();
        // Names: sRefreshToken, or a token; values: a token, possibly empty or with `=`.
        let fields: Vec<Vec<(String, String)>> = fields
            .iter()
            .map(|f| {
                f.iter()
                    .map(|(k, bits)| {
                        let name = if k % 3 == 0 { "sRefreshToken".into() } else { token(*bits) };
                        let value = if k % 5 == 0 { String::new() } else { token(bits >> 7) + "=x" };
                        (name, value)
                    })
                    .collect()
            })
            .collect();
        for field in &fields {
            let pairs: Vec<String> = field.iter().map(|(n, v)| format!("{n}={v}")).collect();
            for (p, (n, _)) in pairs.iter().zip(field) {
                if n != "sRefreshToken" {
                    want.push(p.clone());
                }
            }
            h.append(http::header::COOKIE, HeaderValue::from_str(&pairs.join("; ")).unwrap());
        }
        strip_cookie(&mut h, "sRefreshToken");
        let got: Vec<&str> = h.get_all(http::header::COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        if want.is_empty() {
            prop_assert!(got.is_empty(), "{got:?}");
        } else {
            let joined = want.join("; ");
            prop_assert_eq!(got, vec![joined.as_str()]);
        }
    }
}
