//! The short-video platform: `POST /api/videos` (upload), `GET /api/videos`,
//! `GET /api/videos/feed`, `GET` and `DELETE /api/videos/:id`, and
//! `GET /api/videos/:id/content` (playback, with Range).
//!
//! An upload streams: the body is read piece by piece and sent on to object
//! storage in parts (see `objects`), so memory stays bounded whatever the
//! file's size. The order of an upload keeps one rule: a metadata row exists
//! only for an object that is complete.
//! 1. Check the caller, the declared size (against the largest upload and
//!    the caller's quota) and the title, then sniff the first bytes (415
//!    unless MP4 or WebM).
//! 2. Stream the rest to storage; if the client goes away, times out, or the
//!    body turns out malformed, abort the upload (its parts are removed and
//!    nothing was ever visible under the key).
//! 3. Complete the upload, then insert the row (which checks the quota
//!    again, with the stored size, under a lock per author). If the insert
//!    fails, delete the object again. Only a crash between 3's two steps leaves an object
//!    without a row; its key (`videos/<id>.<ext>`) names an id no row has,
//!    so it is never served and can be swept by listing.
//!
//! A delete removes the row first, then the object: a row never outlives its
//! object, so `content` never finds a row without bytes behind it.
//!
//! The feed's first page (default limit, no cursor) is cached per user.
//! Uploads and deletes invalidate it for every follower of the author;
//! follows and unfollows for the follower (in `profiles`).

use std::borrow::Cow;

use bytes::Bytes;
use swiftlet_protocol::media::{Sniff, VideoContainer, SNIFF_BYTES};
use swiftlet_protocol::multipart::{form_data_boundary, Event, MultipartDecoder, MultipartError};
use swiftlet_protocol::range::ByteRange;
use swiftlet_protocol::Status;

use super::auth::id_or_anonymous;
use super::cache::{self, Entry};
use super::{input, path_param, render, sql};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;
use crate::http::response::{Response, API_JSON};
use crate::server::body_stream::{BodyError, BodyStream};
use crate::storage::objects::{ObjectBody, ObjectError, Upload};
use crate::storage::postgres::BatchRows;
use crate::storage::PgError;

const VIDEO: &str = "video";
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
const MAX_TITLE_BYTES: usize = 200;
/// A multipart part's header block, at most.
const MAX_PART_HEAD: usize = 8 * 1024;
/// Form fields other than the file are small; more than this is refused.
const MAX_FIELD_BYTES: usize = 4 * 1024;
/// What may follow a form's closing boundary (usually a CRLF) and is read and
/// dropped, so the connection can go on; beyond it the connection closes.
const MAX_EPILOGUE: u64 = 64 * 1024;

impl From<ObjectError> for AppError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound => AppError::ResourceNotFound { resource: VIDEO },
            ObjectError::Full => AppError::StorageFull,
            ObjectError::Unwritable => AppError::StorageUnwritable,
            ObjectError::Failed => AppError::StorageUnavailable,
        }
    }
}

impl From<BodyError> for AppError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TimedOut => AppError::Http(swiftlet_protocol::HttpError::BodyTimeout),
            // Nobody is likely left to read the answer; the connection closes.
            BodyError::Closed => AppError::UploadInterrupted,
        }
    }
}

/// A video id from path segment 2 (404 unless it is one).
fn video_id(req: &Request<'_>) -> Result<i64, AppError> {
    let raw = path_param(req, 2, VIDEO)?;
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or(AppError::ResourceNotFound { resource: VIDEO })
}

fn page(req: &Request<'_>) -> Result<(i64, i64), AppError> {
    let limit = input::count_param(req.query_param("limit"), "limit", DEFAULT_LIMIT, 1)?.min(MAX_LIMIT);
    let cursor = input::count_param(req.query_param("cursor"), "cursor", 0, 0)?;
    Ok((limit, cursor))
}

pub async fn get(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let id = video_id(req)?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::VIDEO_BY_ID, &[&caller, &id])).await?;
    send_video(res, &rows, 0, Status::OK)
}

fn send_video(res: &mut Response<'_>, rows: &BatchRows, query: usize, status: Status) -> Result<(), AppError> {
    let row = rows.query(query).next().ok_or(AppError::ResourceNotFound { resource: VIDEO })?;
    res.try_send_with(status, API_JSON, |out| render::video(out, &row))?;
    Ok(())
}

pub async fn list(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = id_or_anonymous(super::auth::caller(core, req).await?);
    let (limit, cursor) = page(req)?;
    let author = match req.query_param("author") {
        None | Some(b"") => None,
        Some(raw) => Some(
            input::decode(raw, true)
                .ok_or(AppError::InvalidField { field: "author", problem: "is not valid percent-encoded UTF-8" })?,
        ),
    };
    let pg = core.storage.pg.for_reads()?;
    let rows = match &author {
        Some(author) => {
            pg.run(|b| b.query(&sql::LIST_VIDEOS_BY_AUTHOR, &[&caller, &limit, &cursor, &author.as_ref()])).await?
        }
        None => pg.run(|b| b.query(&sql::LIST_VIDEOS, &[&caller, &limit, &cursor])).await?,
    };
    res.try_send_with(Status::OK, API_JSON, |out| render::video_list(out, rows.query(0), limit))?;
    Ok(())
}

pub async fn feed(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let (limit, cursor) = page(req)?;
    let first_page = cursor == 0 && limit == DEFAULT_LIMIT;
    let lookup =
        if first_page { Some(cache::lookup(&core.storage, Entry::VideoFeed(caller), false).await) } else { None };
    if lookup.as_ref().is_some_and(|l| l.serve(res)) {
        return Ok(());
    }
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::VIDEO_FEED, &[&caller, &limit, &cursor])).await?;
    res.try_send_with(Status::OK, API_JSON, |out| render::video_list(out, rows.query(0), limit))?;
    if let Some(lookup) = lookup {
        cache::fill(&core.storage, lookup, res.body());
    }
    Ok(())
}

pub async fn delete(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    let id = video_id(req)?;
    let pg = core.storage.pg.for_writes()?;
    let rows = pg
        .run(|b| {
            b.query(&sql::VIDEO_OBJECT, &[&id])?;
            b.query(&sql::DELETE_VIDEO, &[&id, &caller])
        })
        .await;
    if matches!(rows, Err(PgError::TimedOut)) {
        // It may still commit (cache, rule 4).
        super::invalidate_fanout(core, caller, false).await;
    }
    let rows = rows?;
    let owner = rows.query(0).next().ok_or(AppError::ResourceNotFound { resource: VIDEO })?.int8(0)?;
    let Some(deleted) = rows.query(1).next() else {
        return Err(if owner == caller {
            // Deleted by a concurrent request between the two statements.
            AppError::ResourceNotFound { resource: VIDEO }
        } else {
            AppError::Forbidden { resource: VIDEO }
        });
    };
    // The row is gone, so nothing serves the object any more; if removing it
    // fails, it is an orphan (logged), not a broken video.
    let _ = core.storage.objects.delete(deleted.text(0)?).await;
    super::invalidate_fanout(core, caller, false).await;
    res.send_static(Status::NO_CONTENT, API_JSON, b"");
    Ok(())
}

pub async fn content(core: &Core, req: &mut Request<'_>, res: &mut Response<'_>) -> Result<(), AppError> {
    let id = video_id(req)?;
    let pg = core.storage.pg.for_reads()?;
    let rows = pg.run(|b| b.query(&sql::VIDEO_OBJECT, &[&id])).await?;
    let row = rows.query(0).next().ok_or(AppError::ResourceNotFound { resource: VIDEO })?;
    let (key, size) = (row.text(1)?, row.int8(2)? as u64);
    let container = VideoContainer::from_mime(row.text(3)?).ok_or_else(|| {
        tracing::error!(id, "a video row has a content type we never store");
        AppError::Internal
    })?;
    res.add_header("Accept-Ranges", "bytes".to_string());
    let range = ByteRange::parse(req.header("range"), size);
    let status = match range {
        ByteRange::Unsatisfiable => {
            res.add_header("Content-Range", format!("bytes */{size}"));
            return Err(AppError::RangeNotSatisfiable);
        }
        ByteRange::Partial { start, end } => {
            res.add_header("Content-Range", format!("bytes {start}-{end}/{size}"));
            Status::PARTIAL_CONTENT
        }
        ByteRange::Full => Status::OK,
    };
    // A HEAD needs the length, not the bytes: storage is not asked for them.
    let body = if req.method() == swiftlet_protocol::Method::Head {
        ObjectBody::empty(range.len(size))
    } else {
        core.storage.objects.open(key, range, size).await?
    };
    res.send_stream(status, container.mime(), body);
    Ok(())
}

/// The title of a raw upload: the `title` query parameter or the `X-Title`
/// header (percent-encoded UTF-8 in either).
fn raw_title<'b>(req: &Request<'b>) -> Result<Cow<'b, str>, AppError> {
    let raw = req.query_param("title").map(|t| (t, true)).or_else(|| req.header("x-title").map(|t| (t, false)));
    let (raw, plus_is_space) = raw.ok_or(AppError::InvalidField { field: "title", problem: "is missing" })?;
    let title = input::decode(raw, plus_is_space)
        .ok_or(AppError::InvalidField { field: "title", problem: "is not valid percent-encoded UTF-8" })?;
    check_title(&title)?;
    Ok(title)
}

fn check_title(title: &str) -> Result<(), AppError> {
    if title.trim().is_empty() {
        return Err(AppError::InvalidField { field: "title", problem: "can't be blank" });
    }
    if title.len() > MAX_TITLE_BYTES {
        return Err(AppError::InvalidField { field: "title", problem: "is longer than 200 bytes" });
    }
    Ok(())
}

/// `POST /api/videos`: the body is the video itself (Content-Type
/// `video/mp4`, `video/webm` or `application/octet-stream`, title in the
/// query or `X-Title`), or `multipart/form-data` with a `title` field and a
/// file part.
pub async fn create(
    core: &Core,
    req: &mut Request<'_>,
    body: &mut BodyStream<'_>,
    res: &mut Response<'_>,
) -> Result<(), AppError> {
    let caller = super::auth::required(core, req).await?.id;
    if body.len() > core.config.video_max_bytes {
        return Err(AppError::Http(swiftlet_protocol::HttpError::PayloadTooLarge));
    }
    // Refused before a byte of the body is read when the declared length
    // cannot fit; the insert checks again with what was stored, under a lock
    // (two uploads at once may each pass this).
    let quota = core.config.video_quota_bytes;
    if quota > 0 {
        let pg = core.storage.pg.for_reads()?;
        let rows = pg.run(|b| b.query(&sql::VIDEO_BYTES_OF, &[&caller])).await?;
        let used = rows.query(0).next().map_or(Ok(0), |r| r.int8(0))?.max(0) as u64;
        if used.saturating_add(body.len()) > quota {
            return Err(AppError::VideoQuotaExceeded);
        }
    }
    let content_type = req.header("content-type").unwrap_or(b"");
    let stored = match form_data_boundary(content_type) {
        Some(boundary) => {
            let boundary = boundary.map_err(AppError::Multipart)?.to_vec();
            store_multipart(core, body, &boundary).await?
        }
        None => {
            let essence = content_type.split(|&b| b == b';').next().unwrap_or(b"");
            let essence = essence.trim_ascii();
            let accepted = [&b"video/mp4"[..], b"video/webm", b"application/octet-stream", b""];
            if !accepted.iter().any(|a| essence.eq_ignore_ascii_case(a)) {
                return Err(AppError::UnsupportedVideo);
            }
            let title = raw_title(req)?.into_owned();
            let stored = store_raw(core, body).await?;
            Stored { title, ..stored }
        }
    };
    let id = stored.id;
    let (title, size, mime, key) = (stored.title.as_str(), stored.size as i64, stored.container.mime(), &stored.key);
    let quota_param = i64::try_from(quota).unwrap_or(i64::MAX);
    let pg = core.storage.pg.for_writes();
    let inserted = match pg {
        Ok(pg) => {
            pg.run(|b| {
                b.query(&sql::INSERT_VIDEO, &[&id, &caller, &title, &size, &mime, &key.as_str(), &quota_param])?;
                b.query(&sql::VIDEO_BY_ID, &[&caller, &id])
            })
            .await
        }
        Err(e) => Err(e),
    };
    let rows = match inserted {
        Ok(rows) => rows,
        Err(PgError::TimedOut) => {
            // The row may still commit: keep the object it would name (an
            // orphan at worst) and invalidate as if it had (cache, rule 4).
            super::invalidate_fanout(core, caller, false).await;
            return Err(PgError::TimedOut.into());
        }
        Err(e) => {
            // No row, so no object either: the upload did not happen.
            let _ = core.storage.objects.delete(key).await;
            return Err(match e {
                PgError::Violation { constraint } if constraint == "video_quota" => AppError::VideoQuotaExceeded,
                e => e.into(),
            });
        }
    };
    super::invalidate_fanout(core, caller, false).await;
    send_video(res, &rows, 1, Status::CREATED)
}

/// A completed upload, not yet recorded.
struct Stored {
    id: i64,
    key: String,
    title: String,
    size: u64,
    container: VideoContainer,
}

/// An upload under way: started once the first bytes show what the file is.
struct Sink {
    /// The file's first bytes, kept until they can be sniffed.
    head: Vec<u8>,
    started: Option<(Upload, i64, String, VideoContainer)>,
}

impl Sink {
    fn new() -> Sink {
        Sink { head: Vec::new(), started: None }
    }

    /// Takes the next piece of the file.
    async fn write(&mut self, core: &Core, piece: Bytes) -> Result<(), AppError> {
        if let Some((upload, ..)) = &mut self.started {
            return upload.write(piece).await.map_err(AppError::from);
        }
        self.head.extend_from_slice(&piece);
        self.start(core, false).await
    }

    /// Starts the upload once the sniff can tell; `complete` when the file
    /// has no more bytes.
    async fn start(&mut self, core: &Core, complete: bool) -> Result<(), AppError> {
        if self.started.is_some() {
            return Ok(());
        }
        let container = match VideoContainer::sniff(&self.head, complete) {
            Sniff::Video(container) => container,
            Sniff::NeedMore if self.head.len() < SNIFF_BYTES => return Ok(()),
            Sniff::NeedMore | Sniff::Other => return Err(AppError::UnsupportedVideo),
        };
        let id = core.ids.one().await?;
        let key = format!("videos/{id}.{}", container.extension());
        let mut upload = core.storage.objects.upload(&key).await?;
        let head = Bytes::from(std::mem::take(&mut self.head));
        if let Err(e) = upload.write(head).await {
            upload.abort().await;
            return Err(e.into());
        }
        self.started = Some((upload, id, key, container));
        Ok(())
    }

    /// Completes the upload (the whole file has been written).
    async fn finish(mut self, core: &Core, title: String) -> Result<Stored, AppError> {
        self.start(core, true).await?;
        let (upload, id, key, container) = self.started.take().ok_or(AppError::UnsupportedVideo)?;
        let size = upload.written();
        upload.finish().await?;
        Ok(Stored { id, key, title, size, container })
    }

    async fn abort(mut self) {
        if let Some((upload, ..)) = self.started.take() {
            upload.abort().await;
        }
    }
}

/// Streams a raw body to storage.
async fn store_raw(core: &Core, body: &mut BodyStream<'_>) -> Result<Stored, AppError> {
    let mut sink = Sink::new();
    loop {
        let piece = match body.next().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(e) => {
                sink.abort().await;
                return Err(e.into());
            }
        };
        if let Err(e) = sink.write(core, piece).await {
            sink.abort().await;
            return Err(e);
        }
    }
    sink.finish(core, String::new()).await
}

/// Which part of a form is being read.
enum Field {
    Title,
    File,
    /// A field we do not use: read and dropped (but bounded).
    Other,
}

/// Streams the file part of a multipart/form-data body to storage and reads
/// the `title` field, in whichever order they come.
async fn store_multipart(core: &Core, body: &mut BodyStream<'_>, boundary: &[u8]) -> Result<Stored, AppError> {
    let mut decoder = MultipartDecoder::new(boundary, MAX_PART_HEAD);
    let mut sink = Some(Sink::new());
    let mut title: Option<Vec<u8>> = None;
    let mut buf: Vec<u8> = Vec::new();
    let result = async {
        let mut field = Field::Other;
        let mut other_bytes = 0;
        let mut file_seen = false;
        loop {
            let (event, used) = decoder.decode(&buf, body.remaining() == 0).map_err(AppError::Multipart)?;
            match event {
                Event::NeedMore => {
                    buf.drain(..used);
                    let piece = body.next().await?.ok_or(AppError::Multipart(MultipartError::Truncated))?;
                    buf.extend_from_slice(&piece);
                    continue;
                }
                Event::Part { name, filename, .. } => {
                    field = if name == b"title" && filename.is_none() {
                        title = Some(Vec::new());
                        Field::Title
                    } else if filename.is_some() || name == b"file" || name == b"video" {
                        if file_seen {
                            return Err(AppError::InvalidField { field: "file", problem: "only one video per upload" });
                        }
                        file_seen = true;
                        Field::File
                    } else {
                        Field::Other
                    };
                }
                Event::Data(data) => match field {
                    Field::File => {
                        let piece = Bytes::copy_from_slice(data);
                        if let Some(sink) = sink.as_mut() {
                            sink.write(core, piece).await?;
                        }
                    }
                    Field::Title => {
                        let t = title.get_or_insert_with(Vec::new);
                        if t.len() + data.len() > MAX_TITLE_BYTES * 4 {
                            return Err(AppError::InvalidField { field: "title", problem: "is longer than 200 bytes" });
                        }
                        t.extend_from_slice(data);
                    }
                    Field::Other => {
                        other_bytes += data.len();
                        if other_bytes > MAX_FIELD_BYTES {
                            return Err(AppError::InvalidField {
                                field: "form",
                                problem: "has an unknown field too large to skip",
                            });
                        }
                    }
                },
                Event::PartEnd => field = Field::Other,
                Event::Done => break,
            }
            buf.drain(..used);
        }
        if body.remaining() <= MAX_EPILOGUE {
            while body.next().await?.is_some() {}
        }
        if !file_seen {
            return Err(AppError::InvalidField { field: "file", problem: "is missing" });
        }
        let title = title.ok_or(AppError::InvalidField { field: "title", problem: "is missing" })?;
        let title =
            String::from_utf8(title).map_err(|_| AppError::InvalidField { field: "title", problem: "is not UTF-8" })?;
        check_title(&title)?;
        Ok(title)
    }
    .await;
    let sink = sink.take().expect("the sink is taken only here");
    match result {
        Ok(title) => sink.finish(core, title).await,
        Err(e) => {
            sink.abort().await;
            Err(e)
        }
    }
}
