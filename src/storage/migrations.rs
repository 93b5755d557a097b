//! The schema, as SQL files applied in order, each once per database.
//!
//! Each migration runs in its own transaction together with the row in
//! `schema_migrations` that records it, so a migration is either applied and
//! recorded or neither. A session-level advisory lock serialises runners, so
//! several servers starting against one database at once apply each migration
//! exactly once. The SQL files in `src/storage/migrations/` are the schema's
//! source of truth; a file, once released, is never edited — a change is a new file.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::backoff::Backoff;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order they apply.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "world_and_fortune", sql: include_str!("migrations/0001_world_and_fortune.sql") },
    Migration { version: 2, name: "conduit", sql: include_str!("migrations/0002_conduit.sql") },
    Migration { version: 3, name: "counters", sql: include_str!("migrations/0003_counters.sql") },
    Migration { version: 4, name: "log_events", sql: include_str!("migrations/0004_log_events.sql") },
    Migration { version: 5, name: "time_ordered_ids", sql: include_str!("migrations/0005_time_ordered_ids.sql") },
    Migration { version: 6, name: "videos", sql: include_str!("migrations/0006_videos.sql") },
    Migration { version: 7, name: "token_generation", sql: include_str!("migrations/0007_token_generation.sql") },
    Migration { version: 8, name: "require_row", sql: include_str!("migrations/0008_require_row.sql") },
    Migration { version: 9, name: "follower_pages", sql: include_str!("migrations/0009_follower_pages.sql") },
    Migration { version: 10, name: "id_horizons", sql: include_str!("migrations/0010_id_horizons.sql") },
    Migration { version: 11, name: "video_quota", sql: include_str!("migrations/0011_video_quota.sql") },
];

/// An arbitrary constant that names swiftlet's migration lock.
const LOCK_KEY: i64 = 0x5357_4946_544c_4554; // "SWIFTLET"

/// Applies the pending migrations over `client`; returns the versions applied now.
pub async fn apply(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let done: Vec<i32> =
        client.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    if let Some(newest) = done.iter().max().filter(|&&v| MIGRATIONS.iter().all(|m| m.version < v)) {
        tracing::warn!(
            version = newest,
            "the database has a migration this binary does not know; a newer swiftlet ran here"
        );
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = migration.version, name = migration.name, "migration applied");
        applied.push(migration.version);
    }
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await?;
    Ok(applied)
}

/// A tokio-postgres client for the long-lived jobs off the request path (the
/// ID horizon, `swiftlet sweep-videos`), its connection driven by a task
/// on the current runtime; giving up after `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<Client, String> {
    match tokio::time::timeout(timeout, tokio_postgres::connect(url, NoTls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Ok(Err(e)) => Err(format!("connect: {}", super::postgres::describe(&e))),
        Err(_) => Err("connect timed out".to_owned()),
    }
}

/// Connects to `url` and applies the pending migrations, on a runtime of its
/// own (for `swiftlet migrate` and the start-up thread).
pub fn apply_once(url: &str, timeout: Duration) -> Result<Vec<i32>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // Its own driver, awaited: the connection closes cleanly (Terminate)
        // before this runtime ends.
        let connecting = tokio::time::timeout(timeout, tokio_postgres::connect(url, NoTls));
        let (mut client, connection) = match connecting.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(format!("connect: {}", super::postgres::describe(&e))),
            Err(_) => return Err("connect timed out".to_owned()),
        };
        let driver = tokio::spawn(connection);
        let result = apply(&mut client).await.map_err(|e| super::postgres::describe(&e));
        drop(client);
        let _ = driver.await;
        result
    })
}

/// Applies the migrations from a thread of its own, retrying with backoff
/// until they succeed, so the server starts (and serves everything else) while
/// the database is still coming up. The workers' connections retry their
/// statements until the tables exist.
pub fn apply_in_background(url: String, timeout: Duration) {
    let spawned = std::thread::Builder::new().name("swiftlet-migrate".into()).spawn(move || {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut attempts: u32 = 0;
        loop {
            match apply_once(&url, timeout) {
                Ok(_) => return,
                Err(e) => {
                    if attempts % 20 == 0 {
                        tracing::warn!(error = %e, attempts = attempts + 1, "could not apply migrations; retrying");
                    }
                    attempts += 1;
                    std::thread::sleep(backoff.next_wait());
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the migration thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_files_are_named_after_them() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for m in MIGRATIONS {
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.version);
            assert!(!m.sql.contains("BEGIN;") && !m.sql.contains("COMMIT;"), "the runner owns the transaction");
        }
    }
}
