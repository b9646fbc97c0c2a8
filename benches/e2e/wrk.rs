//! `wrk` as the load generator for the plain and authenticated rows (`-t2 -c50 -d<secs>s
//! --latency`, as the issue measured), and the parser of its report.

use std::process::Command;
use std::time::Duration;

use super::procs::run_bounded;

/// What one wrk run reported.
pub struct WrkReport {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// `Non-2xx or 3xx responses` plus every socket error (connect, read, write, timeout).
    pub errors: u64,
    /// The error lines verbatim, to print when there are any.
    pub error_lines: Vec<String>,
}

/// Runs `wrk -t<threads> -c<connections> -d<secs>s --latency` against `url` with `headers`.
pub fn run(
    bin: &str,
    url: &str,
    headers: &[(&str, &str)],
    threads: usize,
    connections: usize,
    secs: f64,
) -> WrkReport {
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", secs.ceil().max(1.0) as u64))
        .args(["--latency", "--timeout", "5s"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    cmd.arg(url);
    let (out, err, ok) = run_bounded(cmd, Duration::from_secs_f64(secs + 30.0));
    assert!(ok, "wrk against {url} failed:\n{out}\n{err}");
    parse(&out).unwrap_or_else(|| panic!("cannot read wrk's report:\n{out}\n{err}"))
}

/// Reads `Requests/sec`, the request count, the 50% and 99% latency lines and the error lines.
fn parse(out: &str) -> Option<WrkReport> {
    let mut report = WrkReport {
        requests: 0,
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
        error_lines: Vec::new(),
    };
    let (mut rps, mut requests) = (None, None);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            [n, "requests", "in", ..] => requests = n.parse().ok(),
            ["50%", v] => report.p50_ms = duration_ms(v)?,
            ["99%", v] => report.p99_ms = duration_ms(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                report.errors += n.parse::<u64>().ok()?;
                report.error_lines.push(line.to_string());
            }
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                report.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
                report.error_lines.push(line.to_string());
            }
            _ => {}
        }
    }
    report.rps = rps?;
    report.requests = requests?;
    Some(report)
}

/// wrk's durations (`412.00us`, `1.23ms`, `2.00s`, `1.50m`) in milliseconds.
fn duration_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}
