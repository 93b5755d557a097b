//! Redis caching of the API's hot anonymous reads: an article by slug, a
//! profile, the tag list and the first page of the global article list; and
//! of one personal read, the first page of each user's video feed, which is
//! keyed by the user.
//!
//! What is cached is the whole response body as an anonymous caller sees it
//! (`favorited` and `following` false), so a hit is one GET and a copy. A
//! caller with a token gets their personal flags from PostgreSQL instead:
//! one shared entry cannot hold every caller's view.
//!
//! Invariant: once a write's response has gone out, no reader gets an entry
//! older than that write. Three rules keep it:
//! 1. A write invalidates after it commits and before it answers: for each
//!    entry it bumps the entry's generation key and deletes the entry, in one
//!    script, and waits for Redis to confirm.
//! 2. A reader that misses notes the generation before it reads PostgreSQL,
//!    and stores its result only if the generation is unchanged (a script
//!    compares and sets atomically). A read that raced a write therefore never
//!    puts the old row back after the write deleted it: either the write's
//!    bump comes first and the fill is refused, or the fill comes first and
//!    the write's delete removes it.
//! 3. If an invalidation cannot be confirmed (Redis down or slow), its keys
//!    wait in this worker's pending set, and this worker reads around the
//!    cache until they have been delivered. A key leaves the set only once a
//!    delivery that carried it was confirmed and it was not added again
//!    meanwhile, so overlapping deliveries cannot drop each other's keys.
//!    Entries expire after `--cache-ttl` seconds in any case, which bounds
//!    what another worker could serve if this one's invalidation never
//!    arrives. The set holds at most [`MAX_PENDING`] keys; past that the
//!    oldest are dropped and this worker reads around the cache for a whole
//!    TTL, by when the entries they named have expired.
//! 4. A write whose outcome is unknown (its call timed out: it may still
//!    commit) invalidates like one that committed; where it cannot name the
//!    entries it touched, this worker reads around the cache for a TTL.
//!
//! When Redis is down every lookup is a miss and PostgreSQL answers.
//!
//! Keys: `<prefix>api:e:<kind><name>` for an entry and `<prefix>api:g:<kind><name>`
//! for its generation. Entries and generations live in different namespaces,
//! decided before any part a client chose, and each kind is a fixed string
//! that no other kind starts with, so no username or slug, whatever it holds
//! (`#`, `:`), can make one key equal another.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use swiftlet_protocol::resp::Reply;
use swiftlet_protocol::Status;

use crate::http::response::{Response, API_JSON};
use crate::storage::{PgError, Storage};

/// Keys whose invalidation failed, per worker, kept until delivered.
const MAX_PENDING: usize = 10_000;
/// Generation keys outlive any read that could have noted them.
const GENERATION_TTL_SECS: &[u8] = b"3600";

/// Sets KEYS[1] to ARGV[1] for ARGV[3] seconds only if the generation key
/// KEYS[2] still holds ARGV[2] ("" standing for "absent").
const FILL: &[u8] = b"if (redis.call('GET', KEYS[2]) or '') == ARGV[2] then \
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) end return 0";

/// For each pair (entry, generation) in KEYS: bump the generation (kept for
/// ARGV[1] seconds) and delete the entry.
const INVALIDATE: &[u8] = b"for i = 1, #KEYS, 2 do redis.call('INCR', KEYS[i + 1]) \
redis.call('EXPIRE', KEYS[i + 1], ARGV[1]) redis.call('DEL', KEYS[i]) end return 0";

/// A cache entry the API keeps.
pub enum Entry<'a> {
    Article(&'a str),
    Profile(&'a str),
    Tags,
    /// `GET /api/articles` with no filters, the default limit and offset 0.
    FirstPage,
    /// The first page of this user's video feed (`GET /api/videos/feed`), at
    /// the default limit: personal by its key, so no caller shares it.
    VideoFeed(i64),
}

/// Where, after the prefix, an entry's key and its generation's differ.
const ENTRY: &[u8] = b"api:e:";
const GENERATION: &[u8] = b"api:g:";

impl Entry<'_> {
    /// The entry's key under the deployment's `prefix`.
    pub fn key(&self, prefix: &str) -> Vec<u8> {
        let mut id = itoa::Buffer::new();
        let (kind, name): (&[u8], &str) = match self {
            Entry::Article(slug) => (b"article:", slug),
            Entry::Profile(username) => (b"profile:", username),
            Entry::Tags => (b"tags", ""),
            Entry::FirstPage => (b"articles:first", ""),
            Entry::VideoFeed(user) => (b"videos:feed:", id.format(*user)),
        };
        // One allocation of the exact size: this runs on every cached read.
        let prefix = prefix.as_bytes();
        let mut key = Vec::with_capacity(prefix.len() + ENTRY.len() + kind.len() + name.len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(ENTRY);
        key.extend_from_slice(kind);
        key.extend_from_slice(name.as_bytes());
        key
    }
}

/// The generation key of the entry `key` (made by [`Entry::key`] under `prefix`).
fn generation_key(prefix: &str, key: &[u8]) -> Vec<u8> {
    let at = prefix.len();
    debug_assert!(key[at..].starts_with(ENTRY));
    let mut g = key.to_vec();
    g[at..at + GENERATION.len()].copy_from_slice(GENERATION);
    g
}

/// What a lookup found.
pub enum Lookup {
    /// The cached body.
    Hit(Vec<u8>),
    /// Not cached; `generation` is what a fill must find unchanged.
    Miss { key: Vec<u8>, generation: Vec<u8> },
    /// The cache is not to be used for this read (down, or this worker has
    /// invalidations it could not deliver yet).
    Bypass,
}

impl Lookup {
    /// Answers with the cached body if this was a hit; true if it did.
    pub fn serve(&self, res: &mut Response<'_>) -> bool {
        match self {
            Lookup::Hit(body) => {
                res.send_with(Status::OK, API_JSON, |out| out.extend_from_slice(body));
                true
            }
            _ => false,
        }
    }
}

/// A worker's undelivered invalidations: each key with the number of the
/// last time it was added, and until when the worker reads around the cache
/// regardless (after dropped keys, or a write of unknown outcome).
#[derive(Default)]
struct Pending {
    keys: HashMap<Vec<u8>, u64>,
    added: u64,
    around_until: Option<Instant>,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Looks `entry` up for a read; `personal` reads (a caller with a token)
/// bypass the cache, whose entries are the anonymous view.
pub async fn lookup(storage: &Storage, entry: Entry<'_>, personal: bool) -> Lookup {
    if personal {
        return Lookup::Bypass;
    }
    if !deliver_pending(storage).await || reading_around(Instant::now()) {
        return Lookup::Bypass;
    }
    let key = entry.key(&storage.cache_prefix);
    match storage.redis.get(&key).await {
        Ok(Some(body)) => Lookup::Hit(body),
        Ok(None) => match storage.redis.get(&generation_key(&storage.cache_prefix, &key)).await {
            Ok(generation) => Lookup::Miss { key, generation: generation.unwrap_or_default() },
            Err(_) => Lookup::Bypass,
        },
        Err(_) => Lookup::Bypass,
    }
}

/// Stores `body` for a lookup that missed, unless a write has invalidated the
/// entry since. Fire and forget: nobody waits for a cache fill.
pub fn fill(storage: &Storage, lookup: Lookup, body: &[u8]) {
    if let Lookup::Miss { key, generation } = lookup {
        let generation_key = generation_key(&storage.cache_prefix, &key);
        storage.redis.send(&[
            b"EVAL",
            FILL,
            b"2",
            &key,
            &generation_key,
            body,
            &generation,
            storage.cache_ttl.as_bytes(),
        ]);
    }
}

/// Invalidates `entries` and waits for Redis to confirm; if it cannot, keeps
/// them pending (see the module doc, rule 3). Call after the write committed,
/// or after it timed out (rule 4).
pub async fn invalidate(storage: &Storage, entries: &[Entry<'_>]) {
    let keys: Vec<Vec<u8>> = entries.iter().map(|e| e.key(&storage.cache_prefix)).collect();
    if !deliver_pending(storage).await || !send_invalidation(storage, &keys).await {
        keep_pending(keys, storage.cache_ttl_duration());
    }
}

/// Rule 4 for a write that can name what it touches: if its call timed out
/// (it may still commit), invalidates `entries` as if it had committed.
/// Returns the outcome unchanged.
pub async fn if_unknown<T>(
    storage: &Storage,
    outcome: Result<T, PgError>,
    entries: &[Entry<'_>],
) -> Result<T, PgError> {
    if matches!(outcome, Err(PgError::TimedOut)) {
        invalidate(storage, entries).await;
    }
    outcome
}

/// After a write of unknown outcome whose entries cannot all be named: this
/// worker reads around the cache for a TTL (rule 4).
pub fn outcome_unknown(storage: &Storage) {
    let until = Instant::now() + storage.cache_ttl_duration();
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.around_until = Some(p.around_until.map_or(until, |u| u.max(until)));
    });
    tracing::warn!("a write timed out and may have committed; reading around the cache for a TTL");
}

fn reading_around(now: Instant) -> bool {
    PENDING.with(|p| p.borrow().around_until.is_some_and(|until| now < until))
}

async fn send_invalidation(storage: &Storage, keys: &[Vec<u8>]) -> bool {
    if keys.is_empty() {
        return true;
    }
    let generations: Vec<Vec<u8>> = keys.iter().map(|k| generation_key(&storage.cache_prefix, k)).collect();
    let count = (2 * keys.len()).to_string();
    let mut args: Vec<&[u8]> = vec![b"EVAL", INVALIDATE, count.as_bytes()];
    for (key, generation) in keys.iter().zip(&generations) {
        args.push(key);
        args.push(generation);
    }
    args.push(GENERATION_TTL_SECS);
    match storage.redis.call(&args).await {
        Ok(Reply::Integer(_)) => true,
        Ok(other) => {
            tracing::warn!(reply = ?other, "unexpected reply to a cache invalidation");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, keys = keys.len(), "cache invalidation not confirmed; reading around the cache");
            false
        }
    }
}

fn keep_pending(keys: Vec<Vec<u8>>, ttl: Duration) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        for key in keys {
            p.added += 1;
            let added = p.added;
            p.keys.insert(key, added);
        }
        if p.keys.len() > MAX_PENDING {
            // Cannot happen unless Redis stays away for a very long time. The
            // oldest go; what they named expires within a TTL, and until then
            // this worker reads around the cache.
            let excess = p.keys.len() - MAX_PENDING;
            let mut by_age: Vec<(u64, Vec<u8>)> = p.keys.iter().map(|(k, &n)| (n, k.clone())).collect();
            by_age.sort_unstable();
            for (_, key) in by_age.into_iter().take(excess) {
                p.keys.remove(&key);
            }
            let until = Instant::now() + ttl;
            p.around_until = Some(p.around_until.map_or(until, |u| u.max(until)));
            tracing::error!(
                dropped = excess,
                "too many undelivered cache invalidations; reading around the cache for a TTL"
            );
        }
    });
}

/// Delivers this worker's pending invalidations; true when none are left.
/// The keys stay in the set while they are on their way, so a lookup that
/// runs meanwhile still reads around the cache.
async fn deliver_pending(storage: &Storage) -> bool {
    let batch: Vec<(Vec<u8>, u64)> = PENDING.with(|p| p.borrow().keys.iter().map(|(k, &n)| (k.clone(), n)).collect());
    if batch.is_empty() {
        return true;
    }
    let keys: Vec<Vec<u8>> = batch.iter().map(|(k, _)| k.clone()).collect();
    if !storage.redis.is_up() || !send_invalidation(storage, &keys).await {
        return false;
    }
    tracing::info!(keys = keys.len(), "delivered pending cache invalidations");
    delivered(&batch)
}

/// Removes what a confirmed delivery carried, unless added again since it
/// was taken; true when nothing is left.
fn delivered(batch: &[(Vec<u8>, u64)]) -> bool {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        for (key, added) in batch {
            if p.keys.get(key) == Some(added) {
                p.keys.remove(key);
            }
        }
        p.keys.is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_makes_two_keys_equal() {
        let names = ["a", "a#gen", "a:b", "gen", "e:a", "g:a", "article:x", "s:first", "first", "", "feed:1", "1"];
        for prefix in ["", "swiftlet:db:", "x#gen:"] {
            let mut entries = vec![Entry::Tags, Entry::FirstPage, Entry::VideoFeed(1), Entry::VideoFeed(11)];
            for name in names {
                entries.push(Entry::Article(name));
                entries.push(Entry::Profile(name));
            }
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for entry in &entries {
                let key = entry.key(prefix);
                keys.push(generation_key(prefix, &key));
                keys.push(key);
            }
            let total = keys.len();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), total, "two entries or generations share a key under {prefix:?}");
        }
    }

    fn pending_keys() -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = PENDING.with(|p| p.borrow().keys.keys().cloned().collect());
        keys.sort();
        keys
    }

    fn taken() -> Vec<(Vec<u8>, u64)> {
        PENDING.with(|p| p.borrow().keys.iter().map(|(k, &n)| (k.clone(), n)).collect())
    }

    #[test]
    fn overlapping_deliveries_remove_only_what_they_carried() {
        PENDING.with(|p| *p.borrow_mut() = Pending::default());
        keep_pending(vec![b"k1".to_vec(), b"k2".to_vec()], Duration::from_secs(60));
        // Two deliveries take the same two keys; k3 comes, k1 comes again.
        let (first, second) = (taken(), taken());
        keep_pending(vec![b"k3".to_vec(), b"k1".to_vec()], Duration::from_secs(60));
        assert!(!delivered(&first));
        assert_eq!(pending_keys(), [b"k1".to_vec(), b"k3".to_vec()], "k1 was added again after it was taken");
        assert!(!delivered(&second));
        assert_eq!(pending_keys(), [b"k1".to_vec(), b"k3".to_vec()], "a late delivery removed newer keys");
        assert!(delivered(&taken()));
        assert!(pending_keys().is_empty());
    }

    #[test]
    fn an_overflow_drops_the_oldest_and_reads_around_for_a_ttl() {
        PENDING.with(|p| *p.borrow_mut() = Pending::default());
        keep_pending((0..MAX_PENDING + 5).map(|i| format!("k{i:06}").into_bytes()).collect(), Duration::from_secs(60));
        let keys = pending_keys();
        assert_eq!(keys.len(), MAX_PENDING);
        assert_eq!(keys[0], b"k000005");
        assert!(reading_around(Instant::now()));
        assert!(!reading_around(Instant::now() + Duration::from_secs(61)));
        PENDING.with(|p| *p.borrow_mut() = Pending::default());
    }
}
