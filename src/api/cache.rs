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
//!    wait in this worker's pending list, and this worker reads around the
//!    cache until they have been delivered. Entries expire after
//!    `--cache-ttl` seconds in any case, which bounds what another worker
//!    could serve if this one's invalidation never arrives.
//!
//! When Redis is down every lookup is a miss and PostgreSQL answers.

use std::cell::RefCell;

use swiftlet_protocol::resp::Reply;
use swiftlet_protocol::Status;

use crate::response::{Response, API_JSON};
use crate::storage::Storage;

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

impl Entry<'_> {
    pub fn key(&self, storage: &Storage) -> Vec<u8> {
        let mut id = itoa::Buffer::new();
        let (kind, name): (&[u8], &str) = match self {
            Entry::Article(slug) => (b"article:", slug),
            Entry::Profile(username) => (b"profile:", username),
            Entry::Tags => (b"tags", ""),
            Entry::FirstPage => (b"articles:first", ""),
            Entry::VideoFeed(user) => (b"videos:feed:", id.format(*user)),
        };
        // One allocation of the exact size: this runs on every cached read.
        let prefix = storage.cache_prefix.as_bytes();
        let mut key = Vec::with_capacity(prefix.len() + 4 + kind.len() + name.len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(b"api:");
        key.extend_from_slice(kind);
        key.extend_from_slice(name.as_bytes());
        key
    }
}

fn generation_key(key: &[u8]) -> Vec<u8> {
    let mut g = key.to_vec();
    g.extend_from_slice(b"#gen");
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

thread_local! {
    static PENDING: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Looks `entry` up for a read; `personal` reads (a caller with a token)
/// bypass the cache, whose entries are the anonymous view.
pub async fn lookup(storage: &Storage, entry: Entry<'_>, personal: bool) -> Lookup {
    if personal {
        return Lookup::Bypass;
    }
    if !deliver_pending(storage).await {
        return Lookup::Bypass;
    }
    let key = entry.key(storage);
    match storage.redis.get(&key).await {
        Ok(Some(body)) => Lookup::Hit(body),
        Ok(None) => match storage.redis.get(&generation_key(&key)).await {
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
        let generation_key = generation_key(&key);
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
/// them pending (see the module doc, rule 3). Call after the write committed.
pub async fn invalidate(storage: &Storage, entries: &[Entry<'_>]) {
    let keys: Vec<Vec<u8>> = entries.iter().map(|e| e.key(storage)).collect();
    if !deliver_pending(storage).await || !send_invalidation(storage, &keys).await {
        keep_pending(keys);
    }
}

async fn send_invalidation(storage: &Storage, keys: &[Vec<u8>]) -> bool {
    if keys.is_empty() {
        return true;
    }
    let generations: Vec<Vec<u8>> = keys.iter().map(|k| generation_key(k)).collect();
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

fn keep_pending(keys: Vec<Vec<u8>>) {
    PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        pending.extend(keys);
        if pending.len() > MAX_PENDING {
            // Cannot happen unless Redis stays away for a very long time; the
            // entries expire by their TTL anyway, so the oldest go first.
            let excess = pending.len() - MAX_PENDING;
            tracing::error!(dropped = excess, "too many undelivered cache invalidations; relying on the TTL");
            pending.drain(..excess);
        }
    });
}

/// Delivers this worker's pending invalidations; true when none are left.
/// The keys stay in the list while they are on their way, so a lookup that
/// runs meanwhile still reads around the cache.
async fn deliver_pending(storage: &Storage) -> bool {
    let keys = PENDING.with(|p| p.borrow().clone());
    if keys.is_empty() {
        return true;
    }
    if !storage.redis.is_up() || !send_invalidation(storage, &keys).await {
        return false;
    }
    tracing::info!(keys = keys.len(), "delivered pending cache invalidations");
    PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        // Keys added meanwhile were appended after the ones just delivered.
        let delivered = keys.len().min(pending.len());
        pending.drain(..delivered);
        pending.is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keeps_at_most_the_newest() {
        keep_pending((0..MAX_PENDING + 5).map(|i| i.to_string().into_bytes()).collect());
        let (len, first) = PENDING.with(|p| (p.borrow().len(), p.borrow()[0].clone()));
        assert_eq!(len, MAX_PENDING);
        assert_eq!(first, b"5");
        PENDING.with(|p| p.borrow_mut().clear());
    }
}
