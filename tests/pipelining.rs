//! Pipelining is really in effect: many concurrent calls on one worker's
//! connection go out in a handful of socket writes, where the same calls made
//! one after another take one write each. Counted on the sockets themselves,
//! against a real PostgreSQL and Redis.

mod common;

use std::future::Future;
use std::time::Duration;

use common::storage::{redis_addr, TestDb};
use futures_util::future::join_all;
use swiftlet::app::bench::sql::{FORTUNES, UPDATE_WORLDS, WORLD_BY_ID};
use swiftlet::storage::{migrations, CacheError, PgError, Postgres, Redis};

/// Runs `f` the way a worker runs its tasks: a current-thread runtime with a LocalSet.
fn on_worker<F: Future>(f: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, f)
}

async fn wait_until(what: &str, mut up: impl FnMut() -> bool) {
    for _ in 0..400 {
        if up() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never came up");
}

/// A fresh database with the schema applied.
fn migrated_db() -> TestDb {
    let db = TestDb::create();
    migrations::apply_once(&db.url, Duration::from_secs(10)).unwrap();
    db
}

/// One pipelined connection to `db` with the benchmark's statements, up.
async fn one_connection(db: &TestDb) -> Postgres {
    let pg = Postgres::start(&db.url, 1, Duration::from_secs(10), &[swiftlet::app::bench::sql::ALL], None);
    wait_until("PostgreSQL", || pg.is_up()).await;
    pg
}

#[test]
fn fifty_concurrent_queries_share_round_trips() {
    let db = migrated_db();
    on_worker(async {
        let pg = one_connection(&db).await;
        let link = pg.for_reads().unwrap();
        let ids: Vec<i32> = (1..=50).collect();
        let read = |id: i32| {
            let link = &link;
            async move {
                let rows = link.run(|batch| batch.query(&WORLD_BY_ID, &[&id])).await.unwrap();
                let row = rows.query(0).next().expect("one row");
                row.int4(0).unwrap()
            }
        };

        // 50 requests, one query each, in flight together (as 50 HTTP
        // requests on one core would be).
        let (writes, reads) = (pg.stats().io.writes.get(), pg.stats().io.reads.get());
        let got = join_all(ids.iter().map(|&id| read(id))).await;
        let concurrent = (pg.stats().io.writes.get() - writes, pg.stats().io.reads.get() - reads);
        assert_eq!(got, ids, "results matched to the wrong batch");

        // The same 50, one after another.
        let writes = pg.stats().io.writes.get();
        for &id in &ids {
            assert_eq!(read(id).await, id);
        }
        let sequential = pg.stats().io.writes.get() - writes;

        // One request with 50 queries: one batch, one Sync.
        let (writes, reads) = (pg.stats().io.writes.get(), pg.stats().io.reads.get());
        let rows = link
            .run(|batch| {
                for id in &ids {
                    batch.query(&WORLD_BY_ID, &[id])?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let batched = (pg.stats().io.writes.get() - writes, pg.stats().io.reads.get() - reads);
        assert_eq!(rows.queries(), 50);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(rows.query(i).next().unwrap().int4(0).unwrap(), *id);
        }

        // The same 50, each its own transaction (a Sync after each, as the
        // benchmark routes send them): still one write.
        let (writes, reads) = (pg.stats().io.writes.get(), pg.stats().io.reads.get());
        let rows = link
            .run(|batch| {
                for id in &ids {
                    batch.query(&WORLD_BY_ID, &[id])?;
                    batch.sync();
                }
                Ok(())
            })
            .await
            .unwrap();
        let synced = (pg.stats().io.writes.get() - writes, pg.stats().io.reads.get() - reads);
        assert_eq!(rows.queries(), 50);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(rows.query(i).next().unwrap().int4(0).unwrap(), *id);
        }

        eprintln!(
            "PostgreSQL, (writes, reads): 50 concurrent batches {concurrent:?}; one batch of 50 {batched:?}; \
             50 transactions in one batch {synced:?}; 50 sequential: {sequential} writes"
        );
        assert!(sequential >= 50, "the counter sees one write per lone query ({sequential})");
        assert!(concurrent.0 <= 3, "50 concurrent queries took {} writes", concurrent.0);
        assert!(concurrent.0 * 10 <= sequential, "concurrent {} vs sequential {sequential}", concurrent.0);
        assert_eq!(batched.0, 1, "one batch is one write");
        assert_eq!(synced.0, 1, "one batch of 50 transactions is one write");
        assert!(batched.1 <= 3, "one batch's results took {} reads", batched.1);
    });
}

/// A read that leaves the socket empty is the last: the loop then waits for
/// the next reply rather than trying a read the kernel refuses (which had
/// cost a system call per reply, since the read floor makes each wake-up
/// bring a whole reply).
#[test]
fn the_socket_loop_does_not_read_an_empty_socket() {
    let db = migrated_db();
    on_worker(async {
        let pg = one_connection(&db).await;
        let link = pg.for_reads().unwrap();
        let io = &pg.stats().io;
        let (reads, refused) = (io.reads.get(), io.refused_reads.get());
        for id in 1..=100 {
            let rows = link.run(|batch| batch.query(&WORLD_BY_ID, &[&id])).await.unwrap();
            assert_eq!(rows.query(0).next().unwrap().int4(0).unwrap(), id);
        }
        let (reads, refused) = (io.reads.get() - reads, io.refused_reads.get() - refused);
        eprintln!("100 lone queries: {reads} reads, {refused} refused");
        assert!(reads >= 100, "one read per reply at least ({reads})");
        // A refusal can still follow a reply that arrived in two segments
        // taken by one read; one per reply is what the loop used to pay.
        assert!(refused <= 10, "{refused} refused reads for 100 replies");
    });
}

#[test]
fn a_failing_query_fails_its_batch_only() {
    let db = migrated_db();
    db.sql("ALTER TABLE world ADD CONSTRAINT small CHECK (randomnumber < 20000)");
    let before = db.world(1);
    let before5 = db.world(5);
    on_worker(async {
        let pg = one_connection(&db).await;
        let link = pg.for_reads().unwrap();
        // A parameter of the wrong type is refused before anything is sent.
        let wrong = link.run(|batch| batch.query(&WORLD_BY_ID, &[&"seven"])).await;
        assert!(matches!(wrong, Err(PgError::Failed(ref e)) if e.contains("cannot encode")), "{wrong:?}");
        // A batch PostgreSQL rejects (a CHECK violation), in flight beside a
        // good one: only the bad batch fails.
        let ids = vec![1i32, 2];
        let numbers = vec![5i32, 30_000];
        let (bad, good) = tokio::join!(
            link.run(|batch| batch.query(&UPDATE_WORLDS, &[&ids, &numbers])),
            link.run(|batch| batch.query(&WORLD_BY_ID, &[&3i32])),
        );
        assert_eq!(bad.unwrap_err(), PgError::Violation { constraint: "small".into() });
        assert_eq!(good.unwrap().query(0).next().unwrap().int4(0).unwrap(), 3);

        // Transactions in one batch stand apart: the middle one fails, the
        // others commit, and the batch reports the failure.
        let (four, five, six) = (vec![4i32], vec![5i32], vec![6i32]);
        let (eleven, too_big, thirteen) = (vec![11i32], vec![30_000i32], vec![13i32]);
        let outcome = link
            .run(|batch| {
                batch.query(&UPDATE_WORLDS, &[&four, &eleven])?;
                batch.sync();
                batch.query(&UPDATE_WORLDS, &[&five, &too_big])?;
                batch.sync();
                batch.query(&UPDATE_WORLDS, &[&six, &thirteen])?;
                batch.sync();
                Ok(())
            })
            .await;
        assert_eq!(outcome.unwrap_err(), PgError::Violation { constraint: "small".into() });
        // The next batch on the connection gets its own answer.
        let next = link.run(|batch| batch.query(&WORLD_BY_ID, &[&4i32])).await.unwrap();
        assert_eq!(next.query(0).next().unwrap().int4(1).unwrap(), 11);
    });
    // Nothing of the failed batch was applied.
    assert_eq!(db.world(1), before);
    // Of the batch of three transactions, the two good ones were.
    assert_eq!((db.world(4), db.world(5) == before5, db.world(6)), (11, true, 13));
}

/// The socket loop's read floor also waits on a hint learned from recent
/// reply sizes. A reply shorter than the hint (one row after hundreds of
/// fortune tables) must still come back promptly: the hint is waited on for
/// a millisecond at most, and the storage timeout here is 10 s.
#[test]
fn a_reply_shorter_than_those_before_it_still_comes_back_at_once() {
    let db = migrated_db();
    on_worker(async {
        let pg = one_connection(&db).await;
        let link = pg.for_reads().unwrap();
        for _ in 0..200 {
            let rows = link.run(|batch| batch.query(&FORTUNES, &[])).await.unwrap();
            assert_eq!(rows.query(0).count(), 12);
        }
        for id in 1..=5 {
            let asked = std::time::Instant::now();
            let rows = link.run(|batch| batch.query(&WORLD_BY_ID, &[&id])).await.unwrap();
            let took = asked.elapsed();
            assert_eq!(rows.query(0).next().unwrap().int4(0).unwrap(), id);
            assert!(took < Duration::from_millis(500), "a short reply took {took:?}");
        }
    });
}

#[test]
fn hundred_concurrent_redis_commands_share_writes_and_keep_order() {
    let db = TestDb::create(); // only for a key prefix of this test's own
    let key = format!("swiftlet:{}:counter", db.name).into_bytes();
    on_worker(async {
        let redis = Redis::start(&format!("redis://{}", redis_addr()), Duration::from_secs(10), None);
        wait_until("Redis", || redis.is_up()).await;

        let before = redis.writes();
        let counts = join_all((0..100).map(|_| redis.incr(&key))).await;
        let concurrent = redis.writes() - before;
        // Commands were queued in this order, so replies must come back 1..=100.
        let counts: Vec<i64> = counts.into_iter().map(Result::unwrap).collect();
        assert_eq!(counts, (1..=100).collect::<Vec<i64>>());

        let before = redis.writes();
        for _ in 0..100 {
            redis.incr(&key).await.unwrap();
        }
        let sequential = redis.writes() - before;
        eprintln!("Redis: 100 concurrent commands in {concurrent} writes; 100 sequential in {sequential}");
        assert!(sequential >= 100, "{sequential}");
        assert!(concurrent <= 3, "100 concurrent commands took {concurrent} writes");
        assert_eq!(redis.del(&[&key]).await, Ok(1));
    });
}

#[test]
fn redis_commands() {
    let db = TestDb::create();
    let k = |s: &str| format!("swiftlet:{}:{s}", db.name).into_bytes();
    let (a, b, missing) = (k("a"), k("b"), k("missing"));
    on_worker(async {
        let redis = Redis::start(&format!("redis://{}", redis_addr()), Duration::from_secs(10), None);
        wait_until("Redis", || redis.is_up()).await;

        redis.set_ex(&a, b"one", 100).await.unwrap();
        redis.set_ex(&b, b"\x00two\r\n", 100).await.unwrap();
        assert_eq!(redis.get(&a).await, Ok(Some(b"one".to_vec())));
        assert_eq!(redis.get(&missing).await, Ok(None));
        assert_eq!(
            redis.mget(&[&a, &missing, &b]).await,
            Ok(vec![Some(b"one".to_vec()), None, Some(b"\x00two\r\n".to_vec())])
        );
        assert_eq!(redis.expire(&a, 5).await, Ok(true));
        assert_eq!(redis.expire(&missing, 5).await, Ok(false));
        assert!(redis.send(&[b"SET", &missing, b"fire-and-forget"]));
        // Replies stay in order after a discarded one.
        assert_eq!(redis.get(&missing).await, Ok(Some(b"fire-and-forget".to_vec())));
        // An error reply is an error, and the link goes on.
        assert!(matches!(redis.incr(&a).await, Err(CacheError::Command(e)) if e.contains("not an integer")));
        assert_eq!(redis.del(&[&a, &b, &missing]).await, Ok(3));
        assert_eq!(redis.get(&a).await, Ok(None));
    });
}

#[test]
fn unreachable_stores_fail_at_once() {
    let port = common::storage::free_port(); // nothing listens there
    on_worker(async {
        let pg = Postgres::start(
            &format!("postgres://postgres@127.0.0.1:{port}/x"),
            1,
            Duration::from_secs(10),
            &[swiftlet::app::bench::sql::ALL],
            None,
        );
        let redis = Redis::start(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(10), None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = tokio::time::Instant::now();
        assert!(matches!(pg.for_reads(), Err(PgError::Unavailable)));
        assert_eq!(redis.get(b"k").await, Err(CacheError::Unavailable));
        assert!(!redis.send(&[b"SET", b"k", b"v"]));
        // Not after the 10 s timeout: straight away.
        assert!(started.elapsed() < Duration::from_secs(1));
    });
}

#[test]
fn every_connection_answers_sparse_traffic() {
    // Each connection gets a lone batch now and then, with the others busy
    // in between: a wake-up lost in a connection's driver would show up as a
    // batch that waits for the next one (or for the timeout).
    let db = migrated_db();
    on_worker(async {
        let pg = Postgres::start(&db.url, 4, Duration::from_secs(10), &[swiftlet::app::bench::sql::ALL], None);
        wait_until("PostgreSQL", || pg.pipelines().len() == 4).await;
        let links = pg.pipelines();
        let mut slowest = Duration::ZERO;
        for round in 0..300 {
            let link = &links[round % links.len()];
            let started = tokio::time::Instant::now();
            let rows = link.run(|batch| batch.query(&WORLD_BY_ID, &[&(1 + round as i32)])).await.unwrap();
            assert_eq!(rows.query(0).next().unwrap().int4(0).unwrap(), 1 + round as i32);
            slowest = slowest.max(started.elapsed());
            if round % 7 == 0 {
                // A burst on another connection while this one sits idle.
                let other = &links[(round + 1) % links.len()];
                join_all((0..20).map(|i| other.run(move |b| b.query(&WORLD_BY_ID, &[&(1 + i)])))).await;
            }
        }
        eprintln!("slowest lone batch: {slowest:?}");
        assert!(slowest < Duration::from_secs(1), "a lone batch took {slowest:?}");
    });
}
