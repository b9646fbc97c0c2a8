//! The floor under the gateway (`cargo bench --bench floor`): the cheapest proxy hyper can be —
//! hyper-util's `auto` server and its pooled legacy client, no logic — in two runtime shapes,
//! beside nginx's plain `proxy_pass`, all in front of the same static nginx upstream, driven by
//! `wrk -t2 -c50` like `benches/e2e.rs` (issue 11). It answers two questions before any
//! redesign of the gateway: how close to nginx can a hyper proxy get on this machine at all,
//! and does one current-thread runtime per core (listeners sharing one port through
//! `SO_REUSEPORT`, a client pool per core, so a request never wakes another thread) beat one
//! multi-thread runtime?
//!
//! Rounds alternate the three proxies so drift on a shared machine hits each alike; medians
//! are printed with their ratio to nginx. Environment: `FLOOR_SECS` (per run, default 4),
//! `FLOOR_ROUNDS` (default 3), `FLOOR_CORES` (per-core runtimes, default: available cores).
//! Only 127.0.0.1; the proxies are threads of this process and end with it.

use std::convert::Infallible;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[path = "../tests/it/support/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "e2e/procs.rs"]
#[allow(dead_code)]
mod procs;
#[path = "e2e/wrk.rs"]
mod wrk;

use config::free_port;
use procs::{require_tool, Nginx};

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Accepts on `listener` forever, forwarding every request to `upstream` through `client`.
async fn proxy(listener: tokio::net::TcpListener, upstream: SocketAddr) {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(http);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let client = client.clone();
                async move {
                    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    let uri: Uri = format!("http://{upstream}{pq}").parse().expect("uri");
                    *req.uri_mut() = uri;
                    let resp = match client.request(req).await {
                        Ok(r) => r.map(http_body_util::Either::Left),
                        Err(_) => {
                            let mut r = Response::new(http_body_util::Either::Right(
                                http_body_util::Empty::<bytes::Bytes>::new(),
                            ));
                            *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One multi-thread runtime (tokio's default worker count) serving one listener.
fn start_multi_thread(upstream: SocketAddr) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            proxy(listener, upstream).await
        });
    });
    addr
}

/// `cores` threads, each a current-thread runtime with its own `SO_REUSEPORT` listener on one
/// shared port and its own client pool.
fn start_per_core(upstream: SocketAddr, cores: usize) -> SocketAddr {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for _ in 0..cores {
        let ready = ready_tx.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.set_reuseport(true).unwrap();
                socket.bind(addr).unwrap();
                let listener = socket.listen(1024).unwrap();
                ready.send(()).unwrap();
                proxy(listener, upstream).await
            });
        });
    }
    for _ in 0..cores {
        ready_rx.recv().unwrap();
    }
    addr
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let secs = env_num("FLOOR_SECS", 4.0);
    let rounds = env_num("FLOOR_ROUNDS", 3.0).max(1.0) as usize;
    let cores = env_num(
        "FLOOR_CORES",
        std::thread::available_parallelism().map_or(2, |n| n.get()) as f64,
    )
    .max(1.0) as usize;
    let nginx_bin = require_tool("/usr/sbin/nginx", "nginx");
    let wrk_bin = require_tool("/usr/bin/wrk", "wrk");
    let upstream = Nginx::upstream(&nginx_bin);
    let nginx = Nginx::proxy(&nginx_bin, upstream.addr);
    let multi = start_multi_thread(upstream.addr);
    let per_core = start_per_core(upstream.addr, cores);
    let rows: [(&str, SocketAddr); 3] = [
        ("nginx plain proxy_pass", nginx.addr),
        ("hyper proxy, one multi-thread runtime", multi),
        ("hyper proxy, a current-thread runtime per core", per_core),
    ];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    for round in 0..rounds {
        for (i, (name, addr)) in rows.iter().enumerate() {
            let r = wrk::run(&wrk_bin, &format!("http://{addr}/x"), &[], 2, 50, secs);
            assert_eq!(r.errors, 0, "{name}: {:?}", r.error_lines);
            println!("round {}: {name}: {:.0} req/s", round + 1, r.rps);
            rps[i].push(r.rps);
        }
    }
    let nginx_median = median(rps[0].clone());
    println!(
        "\nwrk -t2 -c50, {secs} s per run, medians of {rounds} rounds; {cores} per-core runtimes"
    );
    println!("{:<48} {:>10} {:>8}", "proxy", "req/s", "×nginx");
    for (i, (name, _)) in rows.iter().enumerate() {
        let m = median(rps[i].clone());
        println!("{name:<48} {m:>10.0} {:>8.2}", m / nginx_median);
    }
    drop(nginx);
    drop(upstream);
}
