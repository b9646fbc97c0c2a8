//! In-process gateways: a test config loaded from [`super::config::GatewayToml`] and a real
//! gateway started through `app::start_on` on port 0.

use std::time::Duration;

use sessiongate::app::{self, Gateway};
use sessiongate::clock::Clock;
use sessiongate::config::Config;
use tokio::net::TcpListener;

use super::config::GatewayToml;

/// The test gateway of [`GatewayToml::new`] as a `Config`; `extra` holds more root-level
/// dotted keys, e.g. `tokens.access_token.blacklisting = true`.
pub fn test_config(store_url: &str, upstream: &str, extra: &str) -> Config {
    let toml = GatewayToml::new(store_url, upstream).extra(extra).render();
    sessiongate::config::load_from_str(&toml).unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
}

/// Starts a gateway and waits until it can check access tokens (a MySQL store is brought into
/// service in the background; on a busy machine its migrations may outlast `start_on`'s wait).
pub async fn start_gateway(cfg: Config, clock: Clock) -> Gateway {
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = app::start_on(cfg, clock, public, admin)
        .await
        .expect("gateway starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(why) = gw.state.verification_blocker() {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway not ready after 30 s: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw
}
