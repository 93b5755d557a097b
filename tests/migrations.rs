//! `swiftlet migrate` against a real PostgreSQL: each migration applies once,
//! also when several servers migrate the same database at the same moment.

mod common;

use std::process::{Command, Output};

use common::storage::{free_port, TestDb};

fn migrate(url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swiftlet"))
        .args(["--log", "warn", "migrate"])
        .env("DATABASE_URL", url)
        .env("SWIFTLET_STORAGE_TIMEOUT", "10")
        .output()
        .expect("run swiftlet migrate")
}

/// What `swiftlet migrate` prints on an empty database.
const ALL_APPLIED: &str =
    "applied migration 1\napplied migration 2\napplied migration 3\napplied migration 4\napplied migration 5\napplied migration 6\napplied migration 7\napplied migration 8\napplied migration 9\napplied migration 10\napplied migration 11\n";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn migrate_applies_each_migration_once() {
    let db = TestDb::create();
    let first = migrate(&db.url);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(stdout(&first), ALL_APPLIED);
    let again = migrate(&db.url);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(stdout(&again), "schema up to date\n");
    assert_eq!(
        db.sql("SELECT version, name FROM schema_migrations ORDER BY version"),
        [
            [Some("1".into()), Some("world_and_fortune".into())],
            [Some("2".into()), Some("conduit".into())],
            [Some("3".into()), Some("counters".into())],
            [Some("4".into()), Some("log_events".into())],
            [Some("5".into()), Some("time_ordered_ids".into())],
            [Some("6".into()), Some("videos".into())],
            [Some("7".into()), Some("token_generation".into())],
            [Some("8".into()), Some("require_row".into())],
            [Some("9".into()), Some("follower_pages".into())],
            [Some("10".into()), Some("id_horizons".into())],
            [Some("11".into()), Some("video_quota".into())]
        ]
    );
    assert_eq!(db.sql("SELECT count(*) FROM world")[0][0].as_deref(), Some("10000"));
}

#[test]
fn concurrent_migrations_apply_once() {
    let db = TestDb::create();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || migrate(&url))
        })
        .collect();
    let outputs: Vec<Output> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(outputs.iter().all(|o| o.status.success()), "{outputs:?}");
    let applied = outputs.iter().filter(|o| stdout(o) == ALL_APPLIED).count();
    assert_eq!(applied, 1, "{outputs:?}");
    assert_eq!(db.sql("SELECT count(*) FROM schema_migrations")[0][0].as_deref(), Some("11"));
    assert_eq!(db.sql("SELECT count(*) FROM world")[0][0].as_deref(), Some("10000"));
    assert_eq!(db.sql("SELECT count(*) FROM fortune")[0][0].as_deref(), Some("12"));
}

#[test]
fn migrate_reports_an_unreachable_database() {
    let out = migrate(&format!("postgres://postgres@127.0.0.1:{}/nope", free_port()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("swiftlet migrate: connect:"), "{err}");
}
