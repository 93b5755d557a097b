//! The TechEmpower database tests on the `world` table: `/db`, `/queries`,
//! `/updates` and `/cached-queries`.
//!
//! Several rows are always read with one query each, each query its own
//! transaction (a Sync after it), all written together so they pipeline on
//! the worker's connection. The benchmark's rules forbid reading them with
//! one `IN` query, and forbid batches: its maintainers count transactions in
//! `pg_stat_database` and reject an entry whose queries share one (General
//! Requirement 7, Multi-query Requirement 6; tests/data.rs counts them the
//! same way). `/updates` writes every changed row back in one statement, as
//! the rules allow, in a transaction of its own. `/cached-queries` asks Redis
//! for all the rows in one MGET and reads only the misses from PostgreSQL; if
//! Redis is down every row is a miss, so the endpoint still answers while the
//! cache is away.

use swiftlet_protocol::response::encode_decimal;
use swiftlet_protocol::Status;

use super::sql::{UPDATE_WORLDS, WORLD_BY_ID};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, JSON};
use crate::storage::postgres::Row;
use crate::storage::{CacheError, PgError, PgPipeline};

/// Rows in `world`; ids are 1..=ROWS.
const ROWS: i32 = 10_000;
/// Most rows one request may ask for (the benchmark's rule).
const MAX_COUNT: usize = 500;
/// Attempts at the batched UPDATE when it loses a deadlock or serialization race.
const UPDATE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct World {
    pub id: i32,
    #[cfg_attr(test, serde(rename = "randomNumber"))]
    pub random_number: i32,
}

/// The longest `{"id":…,"randomNumber":…}`: 23 bytes of text, two i32 of
/// at most 11 bytes each, and the comma between array elements.
const WORLD_JSON_MAX: usize = 23 + 2 * 11 + 1;

impl World {
    /// The benchmark's JSON for a row, written straight into the body. Two
    /// integers need no escaping and no serializer: going through serde and
    /// simd-json was 9 % of a `/queries` request's instructions. A unit test
    /// checks the output against the serializer's.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        write_i32(self.id, out);
        out.extend_from_slice(b",\"randomNumber\":");
        write_i32(self.random_number, out);
        out.push(b'}');
    }
}

fn write_i32(n: i32, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    encode_decimal(n.unsigned_abs().into(), out);
}

/// A JSON array of rows.
fn write_worlds(worlds: &[World], out: &mut Vec<u8>) {
    out.reserve(2 + worlds.len() * WORLD_JSON_MAX);
    out.push(b'[');
    for (i, w) in worlds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        w.write_json(out);
    }
    out.push(b']');
}

/// The row count a request asks for, by the benchmark's rules: missing, empty
/// or not a number means 1; below 1 means 1; above 500 means 500.
pub fn count(raw: Option<&[u8]>) -> usize {
    let Some(digits) = raw.filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit)) else {
        return 1;
    };
    // Saturates instead of overflowing on absurdly long numbers.
    let n = digits.iter().fold(0usize, |n, d| n.saturating_mul(10).saturating_add(usize::from(d - b'0')));
    n.clamp(1, MAX_COUNT)
}

fn random_id() -> i32 {
    fastrand::i32(1..=ROWS)
}

fn random_ids(n: usize) -> Vec<i32> {
    (0..n).map(|_| random_id()).collect()
}

fn world(row: Row<'_>) -> Result<World, PgError> {
    Ok(World { id: row.int4(0)?, random_number: row.int4(1)? })
}

/// Reads the rows with one query and one transaction each, sent together
/// as one batch.
async fn read_worlds(pg: &PgPipeline, ids: &[i32]) -> Result<Vec<World>, PgError> {
    let rows = pg
        .run(|batch| {
            for id in ids {
                batch.query(&WORLD_BY_ID, &[id])?;
                batch.sync();
            }
            Ok(())
        })
        .await?;
    (0..ids.len())
        .map(|i| {
            rows.query(i).next().ok_or_else(|| PgError::Failed(format!("no World row {}", ids[i]))).and_then(world)
        })
        .collect()
}

pub async fn db(core: &Core, res: &mut Response<'_>) -> Result<(), AppError> {
    let pg = core.storage.pg.for_reads()?;
    let worlds = read_worlds(&pg, &[random_id()]).await?;
    res.send_with(Status::OK, JSON, |out| worlds[0].write_json(out));
    Ok(())
}

pub async fn queries(core: &Core, req: &Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let ids = random_ids(count(req.query_param("queries")));
    let pg = core.storage.pg.for_reads()?;
    let worlds = read_worlds(&pg, &ids).await?;
    res.send_with(Status::OK, JSON, |out| write_worlds(&worlds, out));
    Ok(())
}

pub async fn updates(core: &Core, req: &Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let drawn = random_ids(count(req.query_param("queries")));
    // One new number per distinct id: a request that drew an id twice shows
    // the same value for both, the value that is stored. Sorted ids keep
    // concurrent updates locking rows in one order.
    let mut changes: Vec<(i32, i32)> = drawn.iter().map(|&id| (id, random_id())).collect();
    changes.sort_unstable_by_key(|c| c.0);
    changes.dedup_by_key(|c| c.0);
    let (ids, numbers): (Vec<i32>, Vec<i32>) = changes.iter().copied().unzip();

    // The reads and the write go as one batch, one round trip, each in a
    // transaction of its own as the rules ask. The answer shows the numbers
    // written, which are what the rows hold once the update commits.
    let pg = core.storage.pg.for_writes()?;
    let mut attempt = 1;
    let rows = loop {
        let result = pg
            .run(|batch| {
                for id in &drawn {
                    batch.query(&WORLD_BY_ID, &[id])?;
                    batch.sync();
                }
                batch.query(&UPDATE_WORLDS, &[&ids, &numbers])?;
                batch.sync();
                Ok(())
            })
            .await;
        match result {
            Err(PgError::Conflict) if attempt < UPDATE_ATTEMPTS => attempt += 1,
            result => break result?,
        }
    };
    let mut worlds = Vec::with_capacity(drawn.len());
    for (i, &id) in drawn.iter().enumerate() {
        let read = rows.query(i).next().ok_or_else(|| PgError::Failed(format!("no World row {id}")))?;
        let w = world(read)?;
        let change =
            changes.binary_search_by_key(&w.id, |c| c.0).map_err(|_| PgError::Failed("row mismatch".into()))?;
        worlds.push(World { id: w.id, random_number: changes[change].1 });
    }

    // The cached copies are stale now. If Redis is down the keys simply
    // expire on their own (the cache TTL bounds the staleness).
    let keys: Vec<Vec<u8>> = ids.iter().map(|&id| cache_key(&core.storage.cache_prefix, id)).collect();
    let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
    args.push(b"DEL");
    args.extend(keys.iter().map(Vec::as_slice));
    core.storage.redis.send(&args);

    res.send_with(Status::OK, JSON, |out| write_worlds(&worlds, out));
    Ok(())
}

pub async fn cached_queries(core: &Core, req: &Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let storage = &core.storage;
    let ids = random_ids(count(req.query_param("count")));
    let keys: Vec<Vec<u8>> = ids.iter().map(|&id| cache_key(&storage.cache_prefix, id)).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let cached = match storage.redis.mget(&key_refs).await {
        Ok(values) => values,
        Err(e) => {
            if e != CacheError::Unavailable {
                tracing::debug!(error = %e, "cache lookup failed; reading the database");
            }
            vec![None; ids.len()]
        }
    };
    let mut worlds: Vec<Option<World>> = ids
        .iter()
        .zip(&cached)
        .map(|(&id, value)| value.as_deref().and_then(parse_number).map(|random_number| World { id, random_number }))
        .collect();

    let missing: Vec<i32> = ids.iter().zip(&worlds).filter(|(_, w)| w.is_none()).map(|(&id, _)| id).collect();
    if !missing.is_empty() {
        let pg = storage.pg.for_reads()?;
        let mut fetched = read_worlds(&pg, &missing).await?.into_iter();
        for (slot, key) in worlds.iter_mut().zip(&keys).filter(|(w, _)| w.is_none()) {
            let w = fetched.next().expect("one fetched row per miss");
            let value = w.random_number.to_string();
            storage.redis.send(&[b"SET", key, value.as_bytes(), b"EX", storage.cache_ttl.as_bytes()]);
            *slot = Some(w);
        }
    }
    let worlds: Vec<World> = worlds.into_iter().flatten().collect();
    res.send_with(Status::OK, JSON, |out| write_worlds(&worlds, out));
    Ok(())
}

/// `<prefix>world:<id>`; the value stored under it is the random number in decimal.
pub fn cache_key(prefix: &str, id: i32) -> Vec<u8> {
    format!("{prefix}world:{id}").into_bytes()
}

fn parse_number(value: &[u8]) -> Option<i32> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_follows_the_benchmark_rules() {
        assert_eq!(count(None), 1);
        assert_eq!(count(Some(b"")), 1);
        assert_eq!(count(Some(b"foo")), 1);
        assert_eq!(count(Some(b"0")), 1);
        assert_eq!(count(Some(b"-5")), 1);
        assert_eq!(count(Some(b"1.5")), 1);
        assert_eq!(count(Some(b"20")), 20);
        assert_eq!(count(Some(b"500")), 500);
        assert_eq!(count(Some(b"501")), 500);
        assert_eq!(count(Some(b"99999999999999999999999999")), 500);
    }

    #[test]
    fn world_json_uses_the_benchmark_field_names() {
        let mut out = Vec::new();
        World { id: 7, random_number: 42 }.write_json(&mut out);
        assert_eq!(out, br#"{"id":7,"randomNumber":42}"#);
    }

    #[test]
    fn world_json_is_what_the_serializer_writes() {
        let values = [0, 1, 9, 10, 99, 10_000, -1, -10, i32::MAX, i32::MIN];
        let worlds: Vec<World> =
            values.iter().zip(values.iter().rev()).map(|(&id, &random_number)| World { id, random_number }).collect();
        for n in [0, 1, 2, worlds.len()] {
            let mut out = Vec::new();
            write_worlds(&worlds[..n], &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), simd_json::serde::to_string(&worlds[..n]).unwrap());
        }
        let mut longest = Vec::new();
        write_worlds(&[World { id: i32::MIN, random_number: i32::MIN }; 2], &mut longest);
        assert_eq!(longest.len(), 2 + 2 * WORLD_JSON_MAX - 1, "the bound is exact for the longest rows");
    }
}
