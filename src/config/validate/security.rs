//! Validation of `[events]` and `[rate_limits]` (see `config::security`).

use super::*;

impl Validator {
    pub(super) fn events(&mut self, raw: RawEvents) -> EventsConfig {
        let queue_capacity = self.int(&int_keys::EVENTS_QUEUE_CAPACITY, raw.queue_capacity);
        let max_retries = self.int(&int_keys::EVENTS_MAX_RETRIES, raw.max_retries);
        let retry_base_ms = self.int(&int_keys::EVENTS_RETRY_BASE_MS, raw.retry_base_ms);
        let url_given = raw.webhook_url.is_some();
        let url = raw.webhook_url.and_then(|s| match parse_http_url(&s) {
            Ok(url) => Some(url),
            Err(why) => {
                self.push(
                    "events.webhook_url",
                    why,
                    quoted(&s),
                    "an absolute http:// or https:// URL without user info or fragment",
                );
                None
            }
        });
        // The loader reads the file (and reports one it cannot use).
        let secret = raw
            .webhook_secret_file
            .and_then(|path| match raw.secret_from_file {
                Some(key) => Some(SecretFile {
                    path: PathBuf::from(path),
                    key,
                }),
                None => {
                    self.push(
                        "events.webhook_secret_file",
                        "not read (validate was called without the loader)",
                        quoted(&path),
                        "a readable key file",
                    );
                    None
                }
            });
        if let (Some(file), false) = (&secret, url_given) {
            self.push(
                "events.webhook_secret_file",
                "set without events.webhook_url",
                quoted(&file.path.display().to_string()),
                "unset, or set together with events.webhook_url",
            );
        }
        EventsConfig {
            webhook: url.map(|url| Webhook { url, secret }),
            queue_capacity: usize::try_from(queue_capacity).unwrap_or(1),
            max_retries: u32::try_from(max_retries).unwrap_or(0),
            retry_base: Duration::from_millis(u64::try_from(retry_base_ms).unwrap_or(1)),
        }
    }

    pub(super) fn rate_limits(&mut self, raw: RawRateLimits) -> RateLimitsConfig {
        let max_addresses = self.int(&int_keys::RATE_LIMITS_MAX_ADDRESSES, raw.max_addresses);
        let mut bucket = |keys: [&IntKey; 2], raw: Option<RawBucket>| {
            let raw = raw.unwrap_or_default();
            let per_minute = self.int(keys[0], raw.per_minute);
            let burst = self.int(keys[1], raw.burst);
            Bucket {
                per_minute: u32::try_from(per_minute).unwrap_or(1),
                burst: u32::try_from(burst).unwrap_or(1),
            }
        };
        use int_keys::*;
        RateLimitsConfig {
            enabled: raw.enabled.unwrap_or(false),
            max_addresses: usize::try_from(max_addresses).unwrap_or(1),
            refresh: bucket([&REFRESH_PER_MINUTE, &REFRESH_BURST], raw.refresh),
            logout: bucket([&LOGOUT_PER_MINUTE, &LOGOUT_BURST], raw.logout),
            session_create: bucket(
                [&SESSION_CREATE_PER_MINUTE, &SESSION_CREATE_BURST],
                raw.session_create,
            ),
            forward_auth: bucket(
                [&FORWARD_AUTH_PER_MINUTE, &FORWARD_AUTH_BURST],
                raw.forward_auth,
            ),
        }
    }
}
