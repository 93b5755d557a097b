//! The API cache's consistency rule against a real Redis: a read that missed
//! before a write invalidated the entry may not store what it read.

mod common;

use std::future::Future;
use std::time::Duration;

use common::storage::redis_addr;
use swiftlet::app::api::cache::{self, Entry, Lookup};
use swiftlet::storage::Storage;
use swiftlet::Config;

fn on_worker<F: Future>(f: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, f)
}

#[test]
fn a_fill_that_raced_an_invalidation_is_refused() {
    let mut config = Config::with_listen("127.0.0.1:0".parse().unwrap());
    config.database_url = String::new();
    config.redis_url = format!("redis://{}", redis_addr());
    let videos = std::env::temp_dir().join(format!("swiftlet-cache-test-{}", std::process::id()));
    config.video_dir = videos.clone();
    let slug = format!("race-{}-{}", std::process::id(), fastrand::u64(..));
    on_worker(async {
        let objects = swiftlet::storage::objects::ObjectStorage::connect(&config.object_settings()).expect("objects");
        let metrics = std::sync::Arc::new(swiftlet::metrics::WorkerMetrics::new(0, 0));
        let storage = Storage::start(&config.store_settings(), objects, &[], metrics);
        for _ in 0..400 {
            if storage.redis.is_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let key = Entry::Article(&slug).key(&storage.cache_prefix);

        // A reader misses and goes to the database; a write commits and
        // invalidates; then the reader tries to store the old row.
        let slow_reader = cache::lookup(&storage, Entry::Article(&slug), false).await;
        assert!(matches!(slow_reader, Lookup::Miss { .. }));
        cache::invalidate(&storage, &[Entry::Article(&slug)]).await;
        cache::fill(&storage, slow_reader, b"old row");
        // fill does not wait; a GET behind it on the same connection does.
        assert_eq!(storage.redis.get(&key).await.unwrap(), None, "the stale fill was stored");

        // A reader that starts after the write stores its row.
        let reader = cache::lookup(&storage, Entry::Article(&slug), false).await;
        cache::fill(&storage, reader, b"new row");
        assert_eq!(storage.redis.get(&key).await.unwrap().as_deref(), Some(&b"new row"[..]));
        assert!(
            matches!(cache::lookup(&storage, Entry::Article(&slug), false).await, Lookup::Hit(ref b) if b == b"new row")
        );
        // A caller with a token never reads the shared entry.
        assert!(matches!(cache::lookup(&storage, Entry::Article(&slug), true).await, Lookup::Bypass));
        cache::invalidate(&storage, &[Entry::Article(&slug)]).await;
        assert_eq!(storage.redis.get(&key).await.unwrap(), None);
    });
    let _ = std::fs::remove_dir_all(videos);
}
