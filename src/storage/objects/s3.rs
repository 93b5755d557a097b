//! Objects in an S3 bucket (AWS or any S3-compatible store): each request
//! signed with SigV4 in its `Authorization` header
//! ([`sigv4`](swiftlet_protocol::sigv4)) and sent with
//! [`exchange`](super::exchange); S3's XML answers are read with
//! [`s3xml`](swiftlet_protocol::s3xml).
//!
//! Uploads are S3 multipart uploads: each part is sent by a task of its own,
//! at most [`UPLOAD_CONCURRENCY`] at a time, while the request body keeps
//! arriving; CompleteMultipartUpload lists the parts' ETags in order. Part
//! bodies are sent as `UNSIGNED-PAYLOAD` (hashing 5 MiB would stall the event
//! loop for milliseconds; TLS protects them on the way); every other body is
//! hashed and signed. S3's XML answers are read whole, at most [`MAX_XML`]
//! bytes each.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use swiftlet_protocol::range::ByteRange;
use swiftlet_protocol::{s3xml, sigv4};
use tokio::task::JoinHandle;

use super::exchange::{Connector, Endpoint, Response};
use super::{valid_key, Listed, ObjectError, ObjectSettings};

/// Parts in flight per upload, beyond the one being filled.
pub const UPLOAD_CONCURRENCY: usize = 2;
/// Largest XML answer read (a list page of 1,000 keys is about 300 KB).
pub const MAX_XML: usize = 4 << 20;
/// S3's most parts per upload.
const MAX_PARTS: usize = 10_000;

pub struct S3Bucket {
    /// The path of the bucket under the endpoint: `/name` (path style) or
    /// empty (virtual-hosted style, the bucket is in the host name).
    bucket_path: String,
    region: String,
    credentials: sigv4::Credentials,
    connector: Connector,
}

/// A request to the bucket, before it is signed.
struct Call<'a> {
    /// For logs: what the request is for, and the key it concerns.
    what: &'a str,
    key: &'a str,
    method: &'a str,
    /// The object, or `None` for the bucket itself.
    object: Option<&'a str>,
    query: &'a [(&'a str, &'a str)],
    /// Other headers, signed too.
    headers: &'a [(&'a str, &'a str)],
    body: Bytes,
    /// Whether the body is hashed into the signature.
    sign_body: bool,
}

/// Logs a failed S3 call (never its signed URL, which carries a signature)
/// and says what it means.
#[cold]
fn failed(what: &str, key: &str, detail: &dyn std::fmt::Display) -> ObjectError {
    tracing::error!(key, error = %detail, "S3: could not {what}");
    ObjectError::Failed
}

impl S3Bucket {
    pub fn new(settings: &ObjectSettings<'_>) -> Result<S3Bucket, String> {
        let name = settings.s3_bucket.unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return Err(format!("bucket name {name:?}: letters, digits, '-', '.' and '_' only"));
        }
        let region = settings.s3_region.to_owned();
        // AWS itself: virtual-hosted style, as AWS asks of new code; another
        // store at its own endpoint: path style, which they all accept.
        let (endpoint, bucket_path) = match settings.s3_endpoint {
            Some(endpoint) => (Endpoint::parse(endpoint)?, format!("/{name}")),
            None => (Endpoint::parse(&format!("https://{name}.s3.{region}.amazonaws.com"))?, String::new()),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let credentials = match (settings.s3_access_key_id, settings.s3_secret_access_key) {
            (Some(id), Some(secret)) => {
                sigv4::Credentials { key_id: id.to_owned(), secret: secret.to_owned(), token: env("AWS_SESSION_TOKEN") }
            }
            (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(key_id), Some(secret)) => sigv4::Credentials { key_id, secret, token: env("AWS_SESSION_TOKEN") },
                _ => return Err("no credentials: set SWIFTLET_S3_ACCESS_KEY_ID and SWIFTLET_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into()),
            },
            _ => return Err("give both an access key id and a secret access key".into()),
        };
        let connector = Connector::new(endpoint)?;
        Ok(S3Bucket { bucket_path, region, credentials, connector })
    }

    /// Signs and sends `call`, and reads the answer's head; a transport
    /// error is logged.
    async fn send(&self, call: Call<'_>) -> Result<Response, ObjectError> {
        let endpoint = self.connector.endpoint();
        let mut path = format!("{}{}", endpoint.base_path, self.bucket_path);
        match call.object {
            Some(key) => {
                path.push('/');
                path.push_str(key);
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        let hash = if call.sign_body { sigv4::sha256_hex(&call.body) } else { sigv4::UNSIGNED_PAYLOAD.to_owned() };
        let request = sigv4::Request {
            method: call.method,
            host: &endpoint.authority,
            path: &path,
            query: call.query,
            headers: call.headers,
            payload_hash: &hash,
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signed = sigv4::sign(&request, &self.credentials, &self.region, &sigv4::amz_date(now));
        let mut headers: Vec<(&str, &str)> = signed.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.extend_from_slice(call.headers);
        self.connector
            .send(call.method, &signed.target, &headers, call.body)
            .await
            .map_err(|e| failed(call.what, call.key, &e))
    }

    /// The XML answer of a request that must succeed with `ok`.
    async fn xml(&self, what: &str, key: &str, response: Response, ok: u16) -> Result<String, ObjectError> {
        let status = response.status;
        let body = response.bytes(MAX_XML).await.map_err(|e| failed(what, key, &e))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        // S3 can answer 200 and still report an error in the body
        // (CompleteMultipartUpload does).
        if status != ok || s3xml::element(&text, "Error").is_some() {
            return Err(refused(what, key, status, &text));
        }
        Ok(text)
    }

    /// A reader of the `want` bytes `range` selects.
    pub async fn read(
        &self,
        key: &str,
        range: ByteRange,
        want: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ObjectError> {
        let range_header = match range {
            ByteRange::Partial { start, end } => Some(format!("bytes={start}-{end}")),
            ByteRange::Full | ByteRange::Unsatisfiable => None,
        };
        let headers: Vec<(&str, &str)> = range_header.iter().map(|r| ("range", r.as_str())).collect();
        let call = Call {
            what: "read",
            key,
            method: "GET",
            object: Some(key),
            query: &[],
            headers: &headers,
            body: Bytes::new(),
            sign_body: true,
        };
        let response = self.send(call).await?;
        match response.status {
            200 | 206 => response.chunks(want).map_err(|e| {
                // The stored object is not the size its metadata row says.
                failed("read", key, &e)
            }),
            404 => Err(ObjectError::NotFound),
            status => {
                let body = response.bytes(MAX_XML).await.unwrap_or_default();
                Err(refused("read", key, status, &String::from_utf8_lossy(&body)))
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let call = Call {
            what: "delete",
            key,
            method: "DELETE",
            object: Some(key),
            query: &[],
            headers: &[],
            body: Bytes::new(),
            sign_body: true,
        };
        let response = self.send(call).await?;
        match response.status {
            200 | 204 => Ok(()),
            404 => Err(ObjectError::NotFound),
            _ => self.xml("delete", key, response, 204).await.map(drop),
        }
    }

    /// Every object whose key starts with `prefix`, a page of up to 1,000
    /// keys per request.
    pub fn list(self: Arc<Self>, prefix: &str) -> BoxStream<'static, Result<Listed, ObjectError>> {
        struct Pages {
            bucket: Arc<S3Bucket>,
            prefix: String,
            next: Option<String>,
            done: bool,
        }
        let pages = Pages { bucket: self, prefix: prefix.to_owned(), next: None, done: false };
        futures_util::stream::try_unfold(pages, |mut pages| async move {
            if pages.done {
                return Ok(None);
            }
            let s3 = &pages.bucket;
            let mut query = vec![("list-type", "2"), ("max-keys", "1000")];
            if let Some(token) = &pages.next {
                query.push(("continuation-token", token.as_str()));
            }
            // The whole bucket, filtered here: moto (the tests' S3) rejected
            // the signature of a list request with a `prefix` parameter.
            let call = Call {
                what: "list",
                key: &pages.prefix,
                method: "GET",
                object: None,
                query: &query,
                headers: &[],
                body: Bytes::new(),
                sign_body: true,
            };
            let response = s3.send(call).await?;
            let text = s3.xml("list", &pages.prefix, response, 200).await?;
            let page =
                s3xml::list_page(&text).ok_or_else(|| failed("list", &pages.prefix, &"not a ListObjectsV2 answer"))?;
            let found: Vec<Result<Listed, ObjectError>> = page
                .objects
                .into_iter()
                .filter(|(key, _)| key.starts_with(pages.prefix.as_str()))
                .map(|(key, modified)| {
                    // Unknown age: taken as new, so never swept by mistake.
                    let modified = modified
                        .and_then(|micros| u64::try_from(micros).ok())
                        .map_or_else(SystemTime::now, |m| UNIX_EPOCH + std::time::Duration::from_micros(m));
                    Ok((key, modified))
                })
                .collect();
            pages.done = page.next.is_none();
            pages.next = page.next;
            Ok(Some((futures_util::stream::iter(found), pages)))
        })
        .map(|page| match page {
            Ok(found) => found.boxed(),
            Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
        })
        .flatten()
        .boxed()
    }
}

#[cold]
fn refused(what: &str, key: &str, status: u16, body: &str) -> ObjectError {
    // S3's error document: its code and message say what was wrong.
    let (code, message) = s3xml::error(body);
    tracing::error!(key, status, code, message, "S3 refused to {what}");
    ObjectError::Failed
}

/// A multipart upload under way.
pub struct MultipartUpload {
    s3: Arc<S3Bucket>,
    key: Arc<str>,
    upload_id: Arc<str>,
    /// Parts being sent, oldest first; each answers its ETag.
    in_flight: VecDeque<JoinHandle<Result<String, ObjectError>>>,
    /// ETags of the parts sent, in part order.
    etags: Vec<String>,
}

impl MultipartUpload {
    pub async fn start(s3: Arc<S3Bucket>, key: &str) -> Result<MultipartUpload, ObjectError> {
        if !valid_key(key) {
            return Err(failed("start an upload", key, &"not a plain relative key"));
        }
        let call = Call {
            what: "start an upload",
            key,
            method: "POST",
            object: Some(key),
            query: &[("uploads", "")],
            headers: &[],
            body: Bytes::new(),
            sign_body: true,
        };
        let response = s3.send(call).await?;
        let text = s3.xml("start an upload", key, response, 200).await?;
        let upload_id = s3xml::element(&text, "UploadId")
            .and_then(s3xml::unescape)
            .ok_or_else(|| failed("start an upload", key, &"no UploadId in the answer"))?;
        let upload_id = Arc::from(upload_id.as_ref());
        Ok(MultipartUpload { s3, key: Arc::from(key), upload_id, in_flight: VecDeque::new(), etags: Vec::new() })
    }

    /// Sends `part` as the next part, first waiting while
    /// [`UPLOAD_CONCURRENCY`] are in flight.
    pub async fn put(&mut self, part: Bytes) -> Result<(), ObjectError> {
        while self.in_flight.len() >= UPLOAD_CONCURRENCY {
            self.settle_oldest().await?;
        }
        let number = self.etags.len() + self.in_flight.len() + 1;
        if number > MAX_PARTS {
            return Err(failed("upload a part", &self.key, &"more than 10,000 parts"));
        }
        let (s3, key, upload_id) = (self.s3.clone(), self.key.clone(), self.upload_id.clone());
        self.in_flight.push_back(tokio::spawn(async move {
            let number = number.to_string();
            let call = Call {
                what: "upload a part",
                key: &key,
                method: "PUT",
                object: Some(&key),
                query: &[("partNumber", &number), ("uploadId", &upload_id)],
                headers: &[],
                body: part,
                sign_body: false,
            };
            let response = s3.send(call).await?;
            let etag = response.etag.clone();
            s3.xml("upload a part", &key, response, 200).await?;
            etag.ok_or_else(|| failed("upload a part", &key, &"no ETag in the answer"))
        }));
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<(), ObjectError> {
        let Some(task) = self.in_flight.pop_front() else { return Ok(()) };
        let etag = task.await.unwrap_or(Err(ObjectError::Failed))?;
        self.etags.push(etag);
        Ok(())
    }

    /// Waits for the parts in flight and completes the upload.
    pub async fn finish(mut self) -> Result<(), ObjectError> {
        let sent = async {
            while !self.in_flight.is_empty() {
                self.settle_oldest().await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = sent {
            self.abort().await;
            return Err(e);
        }
        let s3 = self.s3.clone();
        let call = Call {
            what: "complete an upload",
            key: &self.key,
            method: "POST",
            object: Some(&self.key),
            query: &[("uploadId", &self.upload_id)],
            headers: &[],
            body: Bytes::from(s3xml::complete_multipart(&self.etags)),
            sign_body: true,
        };
        let done = match s3.send(call).await {
            Ok(response) => s3.xml("complete an upload", &self.key, response, 200).await.map(drop),
            Err(e) => Err(e),
        };
        if done.is_err() {
            self.abort().await;
        }
        done
    }

    /// Stops the parts in flight and removes the upload with what it sent.
    pub async fn abort(self) {
        for task in &self.in_flight {
            task.abort();
        }
        let s3 = &self.s3;
        let call = Call {
            what: "abort an upload",
            key: &self.key,
            method: "DELETE",
            object: Some(&self.key),
            query: &[("uploadId", &self.upload_id)],
            headers: &[],
            body: Bytes::new(),
            sign_body: true,
        };
        if let Ok(response) = s3.send(call).await {
            if response.status != 204 && response.status != 404 {
                let _ = s3.xml("abort an upload", &self.key, response, 204).await;
            }
        }
    }
}
