//! `swiftlet sweep-videos`: removes stored video objects that no video row
//! names.
//!
//! An upload completes its object before it inserts the row (see
//! [`super::videos`]), so a crash between the two, or a delete whose object
//! removal failed, leaves an object nothing serves. The sweep lists the
//! objects under `videos/` a page at a time, asks PostgreSQL which of them a
//! row names, and deletes the rest. Only objects older than the grace period
//! are candidates: a younger one may belong to an upload whose row is being
//! inserted right now. Memory is one page of keys, whatever the bucket holds
//! (the local directory's listing is read whole: about 50 bytes per file).
//! In the local directory it also removes staging files a crash left behind
//! (S3's unfinished multipart uploads are a bucket lifecycle rule's job).

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio_postgres::Client;

use crate::storage::objects::local::STAGING;
use crate::storage::objects::ObjectStorage;

/// Keys asked about per query (and held at once).
const PAGE: usize = 1000;

/// What a sweep found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Objects old enough to be candidates.
    pub seen: u64,
    /// Of those, named by no row: deleted, or with `dry_run` only listed.
    pub orphans: Vec<String>,
}

/// Sweeps the objects older than `grace`; with `dry_run`, deletes nothing.
pub async fn sweep(objects: &ObjectStorage, pg: &Client, grace: Duration, dry_run: bool) -> Result<Swept, String> {
    let cutoff = SystemTime::now() - grace;
    let mut swept = Swept::default();
    let mut listing = objects.list("videos/").chunks(PAGE);
    while let Some(page) = listing.next().await {
        let mut keys = Vec::with_capacity(page.len());
        for entry in page {
            let (key, modified) = entry.map_err(|e| format!("listing the objects: {e}"))?;
            if modified <= cutoff {
                keys.push(key);
            }
        }
        swept.seen += keys.len() as u64;
        let named: Vec<String> = pg
            .query("SELECT storage_key FROM videos WHERE storage_key = ANY($1)", &[&keys])
            .await
            .map_err(|e| crate::storage::postgres::describe(&e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for key in keys.into_iter().filter(|k| !named.contains(k)) {
            if !dry_run {
                objects.delete(&key).await.map_err(|e| format!("deleting {key}: {e}"))?;
            }
            swept.orphans.push(key);
        }
    }
    if objects.kind == "local" {
        // No row ever names a staging file: old ones are a crashed upload's.
        let mut staged = objects.list(&format!("{STAGING}/"));
        while let Some(entry) = staged.next().await {
            let (key, modified) = entry.map_err(|e| format!("listing the staging files: {e}"))?;
            if modified <= cutoff {
                if !dry_run {
                    objects.delete(&key).await.map_err(|e| format!("deleting {key}: {e}"))?;
                }
                swept.orphans.push(key);
            }
        }
    }
    Ok(swept)
}
