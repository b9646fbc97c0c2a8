//! The database's own ceiling for the refresh transaction (goal 3 of issue 11): `mysqlslap`
//! with 50 clients, each running the refresh's transaction shape again and again on a table
//! shaped like the gateway's sessions table, in a throwaway database dropped afterwards.
//!
//! One transaction is five statements, five round trips like the gateway's refresh (whose
//! `SET TRANSACTION ISOLATION LEVEL READ COMMITTED` takes the place of the first; here each
//! client connection is set to READ COMMITTED once, by `--init-command`):
//! `SET @h = <random existing handle>`, `START TRANSACTION`, `SELECT <all columns> … WHERE
//! session_handle = @h FOR UPDATE`, `UPDATE … SET generation = generation + 1, <hashes and
//! times> WHERE session_handle = @h`, `COMMIT`. mysqlslap gives every client exactly
//! `--number-of-queries / --concurrency` statements, so with a multiple of 5 × 50 each client
//! runs whole transactions; the count is checked exactly by the sum of `generation`, which each
//! committed transaction raises by one. A run cannot be bounded by time, so the measurement is
//! a few runs, each sized by the previous one's rate, until `secs` of load are done; the rate is
//! all their transactions over the sum of the times mysqlslap reports for them.

use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::procs::run_bounded;

/// Rows in the table; transactions pick one at random.
const ROWS: u64 = 10_000;
/// Statements per transaction.
const STATEMENTS: u64 = 5;

pub struct Ceiling {
    pub transactions: u64,
    pub secs: f64,
    pub clients: u64,
}

impl Ceiling {
    pub fn tps(&self) -> f64 {
        self.transactions as f64 / self.secs
    }
}

/// Measures the ceiling for about `secs` with `clients` connections, against the server of
/// `base_url` (`mysql://user[:pass]@host:port`). Errors are returned, not panicked, so the
/// throwaway database is always dropped.
pub async fn ceiling(
    bin: &str,
    base_url: &str,
    clients: u64,
    secs: f64,
) -> Result<Ceiling, String> {
    let opts = mysql_async::Opts::from_url(base_url).map_err(|e| e.to_string())?;
    let pool = mysql_async::Pool::new(opts.clone());
    let db = format!("sgslap_{}", std::process::id());
    let result = async {
        let mut conn = pool.get_conn().await.map_err(|e| e.to_string())?;
        setup(&mut conn, &db).await.map_err(|e| e.to_string())?;
        // A short warm-up run, not counted, gives a first rate; then runs sized by the latest
        // rate to fill the remaining time, until `secs` of measured load are done.
        let slap = |per_client| {
            // mysqlslap blocks; keep the runtime's other tasks running meanwhile.
            tokio::task::block_in_place(|| run_slap(bin, &opts, &db, clients, per_client, secs))
        };
        let mut rate = slap(20)?.tps();
        let mut total = Ceiling {
            transactions: 0,
            secs: 0.0,
            clients,
        };
        let before = generations(&mut conn, &db).await?;
        for _ in 0..5 {
            let remaining = secs - total.secs;
            if remaining < secs * 0.1 {
                break;
            }
            let per_client = ((rate * remaining) / clients as f64).round().max(1.0) as u64;
            let run = slap(per_client)?;
            rate = run.tps();
            total.transactions += run.transactions;
            total.secs += run.secs;
        }
        let committed = generations(&mut conn, &db).await? - before;
        if committed != total.transactions {
            eprintln!(
                "!! mysqlslap: {committed} transactions committed, {} expected; counting the committed",
                total.transactions
            );
            total.transactions = committed;
        }
        let run = total;
        Ok(run)
    }
    .await;
    if let Ok(mut conn) = pool.get_conn().await {
        let _ = conn
            .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await;
    }
    let _ = pool.disconnect().await;
    result
}

async fn setup(conn: &mut mysql_async::Conn, db: &str) -> mysql_async::Result<()> {
    conn.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
        .await?;
    conn.query_drop(format!("CREATE DATABASE {db}")).await?;
    // The columns, types and keys of migrations/mysql/0001_init.sql's sessions table.
    conn.query_drop(format!(
        "CREATE TABLE {db}.sessions (
            session_handle VARCHAR(64) NOT NULL,
            user_id VARCHAR(255) NOT NULL,
            generation BIGINT UNSIGNED NOT NULL,
            current_hash BINARY(32) NOT NULL,
            previous_hash BINARY(32) NULL,
            rotated_at_ms BIGINT NOT NULL,
            session_data MEDIUMTEXT NOT NULL,
            jwt_payload MEDIUMTEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            expires_at_ms BIGINT NOT NULL,
            PRIMARY KEY (session_handle),
            KEY sessions_user_id_idx (user_id),
            KEY sessions_expires_at_idx (expires_at_ms)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ))
    .await?;
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| {
                format!(
                    "({}, 'user{n}', 0, UNHEX(SHA2('{n}', 256)), NULL, 0, '{{}}', '{{}}', 0, \
                     9000000000000)",
                    handle_sql(&n.to_string())
                )
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO {db}.sessions VALUES {}",
            values.join(", ")
        ))
        .await?;
    }
    Ok(())
}

/// The session handle of row `n` (an SQL expression), 32 characters like a real handle.
fn handle_sql(n: &str) -> String {
    format!("CONCAT('sess-', LPAD({n}, 27, '0'))")
}

async fn generations(conn: &mut mysql_async::Conn, db: &str) -> Result<u64, String> {
    let sum: Option<u64> = conn
        .query_first(format!(
            "SELECT CAST(SUM(generation) AS UNSIGNED) FROM {db}.sessions"
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(sum.unwrap_or(0))
}

/// One mysqlslap run: `clients` connections, `per_client` transactions each.
fn run_slap(
    bin: &str,
    opts: &mysql_async::Opts,
    db: &str,
    clients: u64,
    per_client: u64,
    secs: f64,
) -> Result<Ceiling, String> {
    let random = handle_sql(&format!("FLOOR(1 + RAND() * {ROWS})"));
    let query = format!(
        "SET @h = {random};\
         START TRANSACTION;\
         SELECT session_handle, user_id, generation, current_hash, previous_hash, rotated_at_ms, \
         session_data, jwt_payload, created_at_ms, expires_at_ms FROM sessions \
         WHERE session_handle = @h FOR UPDATE;\
         UPDATE sessions SET generation = generation + 1, previous_hash = current_hash, \
         current_hash = UNHEX(SHA2(RAND(), 256)), rotated_at_ms = UNIX_TIMESTAMP(NOW(3)) * 1000, \
         expires_at_ms = expires_at_ms + 1 WHERE session_handle = @h;\
         COMMIT"
    );
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--host={}", opts.ip_or_hostname()))
        .arg(format!("--port={}", opts.tcp_port()))
        .arg("--protocol=TCP")
        .arg(format!("--user={}", opts.user().unwrap_or("root")))
        .arg(format!("--create-schema={db}"))
        // The gateway's isolation level for the refresh transaction, on every client connection.
        .arg("--init-command=SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .arg(format!("--concurrency={clients}"))
        .arg("--iterations=1")
        .arg(format!(
            "--number-of-queries={}",
            clients * per_client * STATEMENTS
        ))
        .arg("--delimiter=;")
        .arg(format!("--query={query}"));
    if let Some(p) = opts.pass() {
        cmd.env("MYSQL_PWD", p);
    }
    let started = Instant::now();
    let (out, err, ok) = run_bounded(cmd, Duration::from_secs_f64(secs * 4.0 + 30.0));
    let wall = started.elapsed().as_secs_f64();
    if !ok {
        return Err(format!("mysqlslap failed:\n{out}\n{err}"));
    }
    // "Average number of seconds to run all queries: 1.467 seconds" (one iteration): the time
    // from the clients' first query to the last one's end; the process's wall time otherwise.
    let timed = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Average number of seconds to run all queries:")
        })
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .filter(|s| *s > 0.0);
    Ok(Ceiling {
        transactions: clients * per_client,
        secs: timed.unwrap_or(wall),
        clients,
    })
}
