//! Videos over real sockets: uploads (raw and multipart) streamed to a local
//! directory and to a real S3-protocol server (moto, signatures checked),
//! playback with Range, the cached feed, deletes, and every refused or
//! interrupted upload leaving neither a row nor an object behind.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::s3::Moto;
use common::site::Site;
use common::storage::{eventually, redis, redis_addr};
use common::{Client, Response};
use simd_json::prelude::*;
use simd_json::OwnedValue as Json;
use swiftlet_protocol::resp::Reply;

fn start(args: &[&str], env: &[(&str, &str)]) -> Site {
    Site::start(args, env)
}

/// A file that sniffs as MP4: an `ftyp` box, then a byte pattern.
fn mp4(len: usize) -> Vec<u8> {
    let mut v = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    v.extend((0..len - v.len()).map(|i| (i % 251) as u8));
    v
}

/// A file that sniffs as WebM: an EBML header with DocType "webm".
fn webm(len: usize) -> Vec<u8> {
    let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x8B, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x84];
    v.extend_from_slice(b"webm");
    v.extend((0..len - v.len()).map(|i| (i % 253) as u8));
    v
}

fn json(res: &Response) -> Json {
    let mut bytes = res.body.clone();
    simd_json::to_owned_value(&mut bytes).unwrap_or_else(|e| panic!("{e}: {}", res.text()))
}

fn error_message(res: &Response, key: &str) -> String {
    let j = json(res);
    j["errors"].get(key).unwrap_or_else(|| panic!("no errors.{key} in {j}"))[0].as_str().unwrap().to_string()
}

impl Site {
    fn register(&mut self, name: &str) -> String {
        let body =
            format!(r#"{{"user":{{"username":"{name}","email":"{name}@example.com","password":"pw-{name}-secret"}}}}"#);
        let res = self.call("POST", "/api/users", None, &[("Content-Type", "application/json")], body.as_bytes());
        assert_eq!(res.status, 201, "{}", res.text());
        json(&res)["user"]["token"].as_str().unwrap().to_string()
    }

    fn upload(&mut self, token: &str, title: &str, content_type: &str, body: &[u8]) -> Response {
        let path = format!("/api/videos?title={}", title.replace(' ', "%20"));
        self.call("POST", &path, Some(token), &[("Content-Type", content_type)], body)
    }

    fn upload_form(&mut self, token: &str, fields: &[(&str, Option<&str>, &[u8])]) -> Response {
        let boundary = "----swiftlet-test-boundary";
        let mut body = Vec::new();
        for (name, filename, data) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
            );
            if let Some(f) = filename {
                body.extend_from_slice(
                    format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes(),
                );
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.call("POST", "/api/videos", Some(token), &[("Content-Type", &content_type)], &body)
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.call("GET", path, None, headers, b"")
    }

    fn video_rows(&self) -> i64 {
        self.db.sql("SELECT count(*) FROM videos")[0][0].as_deref().unwrap().parse().unwrap()
    }

    /// Starts an upload of `declared` bytes, sends `sent` of them, and leaves
    /// the socket to the caller (who closes it or lets it stall).
    fn start_upload(&self, token: &str, declared: usize, sent: &[u8]) -> TcpStream {
        let mut s = TcpStream::connect(self.server.addr).unwrap();
        let head = format!(
            "POST /api/videos?title=cut HTTP/1.1\r\nHost: t\r\nAuthorization: Token {token}\r\n\
             Content-Type: video/mp4\r\nContent-Length: {declared}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(sent).unwrap();
        s
    }
}

/// Every regular file under `dir` (staging files included).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// Upload, read back whole and in ranges, list, delete: the same walk on any storage.
fn round_trip(site: &mut Site, file_len: usize) -> String {
    let ann = site.register("ann");
    let bob = site.register("bob");
    let video = mp4(file_len);
    let res = site.upload(&ann, "First clip", "video/mp4", &video);
    assert_eq!(res.status, 201, "{}", res.text());
    let created = json(&res)["video"].clone();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["title"].as_str(), Some("First clip"));
    assert_eq!(created["size"].as_u64(), Some(file_len as u64));
    assert_eq!(created["contentType"].as_str(), Some("video/mp4"));
    assert_eq!(created["author"]["username"].as_str(), Some("ann"));
    assert_eq!(created["contentUrl"].as_str().unwrap(), format!("/api/videos/{id}/content"));

    // A multipart upload, WebM, with the title after the file.
    let clip = webm(70_000);
    let res = site.upload_form(&ann, &[("file", Some("b.webm"), &clip), ("title", None, b"Second clip")]);
    assert_eq!(res.status, 201, "{}", res.text());
    let second = json(&res)["video"]["id"].as_str().unwrap().to_string();
    // The form's epilogue was read, so the connection goes on.
    assert_eq!(res.header("connection"), None, "a complete form upload closed the connection");
    assert_eq!(json(&res)["video"]["contentType"].as_str(), Some("video/webm"));

    let res = site.get(&format!("/api/videos/{id}"), &[]);
    assert_eq!(res.status, 200);
    assert_eq!(json(&res)["video"], created);

    // The whole file, and ranges of it (RFC 9110 §14).
    let content = format!("/api/videos/{id}/content");
    let res = site.get(&content, &[]);
    assert_eq!(
        (res.status, res.header("content-type"), res.header("accept-ranges")),
        (200, Some("video/mp4"), Some("bytes"))
    );
    assert!(res.body == video, "the stored bytes differ from the uploaded ones");
    let res = site.get(&content, &[("Range", "bytes=100-199")]);
    assert_eq!(res.status, 206);
    assert_eq!(res.header("content-range").unwrap(), format!("bytes 100-199/{file_len}"));
    assert_eq!(res.body, &video[100..200]);
    let res = site.get(&content, &[("Range", "bytes=-10")]);
    assert_eq!((res.status, res.body.as_slice()), (206, &video[file_len - 10..]));
    let res = site.get(&content, &[("Range", &format!("bytes={}-", file_len - 3))]);
    assert_eq!((res.status, res.body.as_slice()), (206, &video[file_len - 3..]));
    let res = site.get(&content, &[("Range", &format!("bytes={file_len}-"))]);
    assert_eq!(res.status, 416);
    assert_eq!(res.header("content-range").unwrap(), format!("bytes */{file_len}"));
    assert_eq!(error_message(&res, "range"), "selects no byte of the video");
    let res = site.call("HEAD", &content, None, &[], b"");
    assert_eq!(res.header("content-length").unwrap(), file_len.to_string());
    let res = site.get(&format!("/api/videos/{second}/content"), &[]);
    assert!(res.body == clip);

    // Lists, newest first, paged by cursor.
    let res = site.get("/api/videos?limit=1", &[]);
    let page = json(&res);
    assert_eq!(page["videos"][0]["id"].as_str(), Some(second.as_str()));
    let cursor = page["nextCursor"].as_str().unwrap().to_string();
    let page = json(&site.get(&format!("/api/videos?limit=1&cursor={cursor}"), &[]));
    assert_eq!(page["videos"][0]["id"].as_str(), Some(id.as_str()));
    let page = json(&site.get(&format!("/api/videos?limit=5&cursor={id}"), &[]));
    assert_eq!((page["videos"].as_array().unwrap().len(), page["nextCursor"].is_null()), (0, true));
    let page = json(&site.get("/api/videos?author=bob", &[]));
    assert!(page["videos"].as_array().unwrap().is_empty());
    assert_eq!(json(&site.get("/api/videos?author=ann", &[]))["videos"].as_array().unwrap().len(), 2);

    // Only the author deletes; the object goes with the row.
    let res = site.call("DELETE", &format!("/api/videos/{id}"), Some(&bob), &[], b"");
    assert_eq!((res.status, error_message(&res, "video").as_str()), (403, "may only be changed by its author"));
    let res = site.call("DELETE", &format!("/api/videos/{id}"), Some(&ann), &[], b"");
    assert_eq!(res.status, 204, "{}", res.text());
    assert_eq!(site.get(&format!("/api/videos/{id}"), &[]).status, 404);
    assert_eq!(site.get(&content, &[]).status, 404);
    assert_eq!(site.call("DELETE", &format!("/api/videos/{id}"), Some(&ann), &[], b"").status, 404);
    assert_eq!(site.video_rows(), 1);
    second
}

#[test]
fn uploads_play_back_and_delete_in_a_local_directory() {
    // Small parts, so a 300 KB file is several of them.
    let mut site = start(&["--upload-part-bytes", "65536"], &[]);
    let second = round_trip(&mut site, 300_000);
    let files = files_under(&site.server.video_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(&format!("videos/{second}.webm")), "{files:?}");
}

#[test]
fn uploads_play_back_and_delete_in_s3_with_signatures_checked() {
    let moto = Moto::start();
    let s3 = [
        ("SWIFTLET_S3_BUCKET", moto.bucket.as_str()),
        ("SWIFTLET_S3_ENDPOINT", moto.endpoint.as_str()),
        ("SWIFTLET_S3_ACCESS_KEY_ID", moto.key_id.as_str()),
        ("SWIFTLET_S3_SECRET_ACCESS_KEY", moto.secret.as_str()),
    ];
    // 11 MiB in 5 MiB parts: a real multipart upload of three parts.
    let mut site = start(&["--upload-part-bytes", "5242880"], &s3);
    let second = round_trip(&mut site, 11 << 20);
    assert_eq!(moto.object_keys(), vec![format!("videos/{second}.webm")]);
    assert_eq!(moto.open_multipart_uploads(), 0);
    // The sweep lists the bucket and finds the object named by its row.
    let out = sweep_with(&site, &["--older-than", "0.01"], &s3);
    assert!(out.contains("0 of 1 objects"), "{out}");
    assert!(files_under(&site.server.video_dir).is_empty(), "S3 mode wrote to the local directory");

    // An upload cut off half way leaves no object and no open upload.
    let token = site.register("cat");
    let stream = site.start_upload(&token, 11 << 20, &mp4(6 << 20));
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
    assert!(eventually(Duration::from_secs(10), || moto.open_multipart_uploads() == 0), "the cut upload stayed open");
    assert_eq!(moto.object_keys().len(), 1);
    assert_eq!(site.video_rows(), 1);

    // A wrong secret is refused by the storage, and the client is told.
    let mut wrong = s3;
    wrong[3].1 = "not-the-secret";
    let mut bad = start(&[], &wrong);
    let token = bad.register("dan");
    let res = bad.upload(&token, "nope", "video/mp4", &mp4(1000));
    assert_eq!((res.status, error_message(&res, "storage").as_str()), (503, "is unavailable, try again shortly"));
    assert_eq!(bad.video_rows(), 0);
    assert_eq!(moto.object_keys().len(), 1);

    // An upload still running when the shutdown deadline ends is not left
    // open in S3: its request is dropped, and the upload aborted before exit.
    let mut stopping = start(&["--upload-part-bytes", "5242880", "--shutdown-timeout", "0.5"], &s3);
    let token = stopping.register("eve");
    let stream = stopping.start_upload(&token, 11 << 20, &mp4(6 << 20));
    assert!(eventually(Duration::from_secs(10), || moto.open_multipart_uploads() == 1), "no upload started");
    stopping.server.signal("TERM");
    assert!(stopping.server.wait_exit(Duration::from_secs(15)).is_some(), "did not stop");
    let log = stopping.server.log_lines();
    assert_eq!(moto.open_multipart_uploads(), 0, "the upload cut by the shutdown stayed open: {log:?}");
    assert_eq!(moto.object_keys().len(), 1);
    drop(stream);
}

#[test]
fn refused_and_interrupted_uploads_leave_nothing() {
    let mut site = start(&["--video-max-bytes", "1000000", "--upload-part-bytes", "65536", "--body-timeout", "1"], &[]);
    let ann = site.register("ann");
    let video = mp4(5000);

    let res = site.call("POST", "/api/videos?title=x", None, &[("Content-Type", "video/mp4")], &video);
    assert_eq!((res.status, error_message(&res, "token").as_str()), (401, "is missing"));
    // Claims to be MP4, is a PNG: the bytes decide.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let res = site.upload(&ann, "png", "video/mp4", png);
    assert_eq!((res.status, error_message(&res, "video").as_str()), (415, "must be an MP4 or WebM file"));
    let res = site.upload(&ann, "text", "text/plain", &video);
    assert_eq!(res.status, 415);
    let res = site.upload(&ann, "empty", "video/mp4", b"");
    assert_eq!(res.status, 415);
    let res = site.upload_form(&ann, &[("title", None, b"form png"), ("file", Some("a.png"), png)]);
    assert_eq!(res.status, 415);
    let res = site.upload(&ann, "big", "video/mp4", &mp4(1_000_001));
    assert_eq!(res.status, 413);
    let res = site.call("POST", "/api/videos", Some(&ann), &[("Content-Type", "video/mp4")], &video);
    assert_eq!((res.status, error_message(&res, "title").as_str()), (422, "is missing"));
    let res = site.upload(&ann, "%20", "video/mp4", &video);
    assert_eq!((res.status, error_message(&res, "title").as_str()), (422, "can't be blank"));
    // The whole file arrives, then the form turns out to have no title.
    let res = site.upload_form(&ann, &[("file", Some("a.mp4"), &mp4(200_000))]);
    assert_eq!((res.status, error_message(&res, "title").as_str()), (422, "is missing"));
    let res = site.upload_form(
        &ann,
        &[("title", None, b"two"), ("file", Some("a.mp4"), &video), ("file", Some("b.mp4"), &video)],
    );
    assert_eq!((res.status, error_message(&res, "file").as_str()), (422, "only one video per upload"));
    let res = site.call(
        "POST",
        "/api/videos",
        Some(&ann),
        &[("Content-Type", "multipart/form-data; boundary=xyz")],
        b"--xyz\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nunterminated",
    );
    assert_eq!(
        (res.status, error_message(&res, "body").as_str()),
        (400, "multipart body ended before its closing boundary")
    );
    // Chunked: the size must be known up front.
    let res = site.client.request(
        format!(
            "POST /api/videos?title=c HTTP/1.1\r\nHost: t\r\nAuthorization: Token {ann}\r\nContent-Type: video/mp4\r\n\
             Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(res.status, 411);
    site.client = site.server.connect();

    // Cut off after several parts went to storage, and stalled past the body timeout.
    drop(site.start_upload(&ann, 900_000, &mp4(400_000)));
    let mut stalled = site.start_upload(&ann, 900_000, &mp4(300_000));
    let mut answer = Client::from_stream(stalled.try_clone().unwrap());
    let res = answer.read_response();
    assert_eq!(res.status, 408);
    stalled.flush().unwrap();

    assert!(
        eventually(Duration::from_secs(10), || files_under(&site.server.video_dir).is_empty()),
        "left behind: {:?}",
        files_under(&site.server.video_dir)
    );
    assert_eq!(site.video_rows(), 0);
    // The server is still fine.
    assert_eq!(site.upload(&ann, "after", "video/mp4", &video).status, 201);
}

#[test]
fn each_user_has_a_storage_quota_that_uploads_at_once_cannot_overrun() {
    let mut site = start(&["--video-quota-bytes", "500000", "--upload-part-bytes", "65536"], &[]);
    let ann = site.register("ann");
    let bob = site.register("bob");
    assert_eq!(site.upload(&ann, "first", "video/mp4", &mp4(300_000)).status, 201);
    // The declared length does not fit: refused before the body is read.
    let mut early = site.start_upload(&ann, 300_000, b"");
    let res = Client::from_stream(early.try_clone().unwrap()).read_response();
    assert_eq!((res.status, error_message(&res, "video").as_str()), (413, "would take you past your storage quota"));
    early.flush().unwrap();
    // Another user has a quota of their own.
    assert_eq!(site.upload(&bob, "bob's", "video/mp4", &mp4(300_000)).status, 201);

    // Two uploads that each fit, but not together, both under way at once:
    // both passed the first check, and the insert lets only one through.
    let file = mp4(150_000);
    let carl = site.register("carl");
    assert_eq!(site.upload(&carl, "carl's", "video/mp4", &mp4(250_000)).status, 201);
    let mut a = site.start_upload(&carl, file.len(), &file[..100_000]);
    let mut b = site.start_upload(&carl, file.len(), &file[..100_000]);
    std::thread::sleep(Duration::from_millis(300));
    a.write_all(&file[100_000..]).unwrap();
    let first = Client::from_stream(a.try_clone().unwrap()).read_response();
    b.write_all(&file[100_000..]).unwrap();
    let second = Client::from_stream(b.try_clone().unwrap()).read_response();
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(
        (second.status, error_message(&second, "video").as_str()),
        (413, "would take you past your storage quota")
    );
    let carl_bytes = site
        .db
        .sql("SELECT sum(size_bytes) FROM videos v JOIN users u ON u.id = v.author_id WHERE u.username = 'carl'");
    assert_eq!(carl_bytes[0][0].as_deref(), Some("400000"));
    // The refused one's object is gone again: one file per row.
    let rows = site.video_rows() as usize;
    assert_eq!(rows, 4);
    assert!(eventually(Duration::from_secs(5), || files_under(&site.server.video_dir).len() == rows));
}

/// Runs `swiftlet sweep-videos` with `args` against `site`'s database and directory.
fn sweep(site: &Site, args: &[&str]) -> String {
    sweep_with(site, args, &[])
}

fn sweep_with(site: &Site, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swiftlet"))
        .arg("sweep-videos")
        .args(args)
        .env("DATABASE_URL", &site.db.url)
        .env("SWIFTLET_VIDEO_DIR", &site.server.video_dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_sweep_removes_objects_no_video_names_and_keeps_the_rest() {
    let mut site = start(&[], &[]);
    let ann = site.register("ann");
    let res = site.upload(&ann, "kept", "video/mp4", &mp4(5000));
    assert_eq!(res.status, 201);
    let kept = json(&res)["video"]["id"].as_str().unwrap().to_owned();
    // What a crash between an upload's completion and its row leaves.
    let orphan = site.server.video_dir.join("videos/123.mp4");
    std::fs::write(&orphan, mp4(5000)).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let out = sweep(&site, &["--older-than", "0.01", "--dry-run"]);
    assert!(out.contains("would remove videos/123.mp4") && out.contains("1 of 2 objects"), "{out}");
    assert!(orphan.exists(), "a dry run removed something");
    // Younger than the grace period: not a candidate.
    let out = sweep(&site, &[]);
    assert!(out.contains("0 of 0 objects older than 3600 s"), "{out}");
    assert!(orphan.exists());

    let out = sweep(&site, &["--older-than", "0.01"]);
    assert!(out.contains("removed videos/123.mp4") && out.contains("1 of 2 objects"), "{out}");
    assert!(!orphan.exists());
    let res = site.get(&format!("/api/videos/{kept}/content"), &[]);
    assert_eq!((res.status, res.body.len()), (200, 5000), "the named video went too");
}

#[test]
fn the_feed_shows_followed_authors_and_its_cached_page_follows_every_change() {
    let mut site = start(&[], &[]);
    let ann = site.register("ann");
    let bob = site.register("bob");
    let ann_id = site.db.sql("SELECT id FROM users WHERE username = 'ann'")[0][0].clone().unwrap();
    let feed = |site: &mut Site| -> Vec<String> {
        let res = site.call("GET", "/api/videos/feed", Some(&ann), &[], b"");
        assert_eq!(res.status, 200, "{}", res.text());
        json(&res)["videos"].as_array().unwrap().iter().map(|v| v["title"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(site.call("GET", "/api/videos/feed", None, &[], b"").status, 401);

    assert_eq!(site.upload(&bob, "before", "video/mp4", &mp4(1000)).status, 201);
    assert!(feed(&mut site).is_empty());
    assert_eq!(site.call("POST", "/api/profiles/bob/follow", Some(&ann), &[], b"").status, 200);
    assert_eq!(feed(&mut site), ["before"], "following did not refresh the cached page");

    // The first page is in Redis now (the fill goes out after the answer, so
    // it may land a moment later).
    let key = format!("swiftlet:{}:api:e:videos:feed:{ann_id}", site.db.name);
    let cached = || matches!(redis(&redis_addr(), &[b"EXISTS", key.as_bytes()]), Reply::Integer(1));
    assert!(eventually(Duration::from_secs(5), cached), "the feed's first page was not cached");

    let res = site.upload(&bob, "after", "video/mp4", &mp4(1000));
    assert_eq!(res.status, 201);
    let after = json(&res)["video"]["id"].as_str().unwrap().to_string();
    assert_eq!(feed(&mut site), ["after", "before"], "an upload did not reach a follower's cached feed");
    // Ann's own uploads are not in her feed.
    assert_eq!(site.upload(&ann, "mine", "video/mp4", &mp4(1000)).status, 201);
    assert_eq!(feed(&mut site), ["after", "before"]);
    // Paging past the cached page reads the database.
    let res = site.call("GET", "/api/videos/feed?limit=1", Some(&ann), &[], b"");
    assert_eq!(json(&res)["nextCursor"].as_str(), Some(after.as_str()));

    // The author's profile is part of every entry: changing it reaches the cached page.
    let bio = br#"{"user":{"bio":"makes clips"}}"#;
    assert_eq!(site.call("PUT", "/api/user", Some(&bob), &[("Content-Type", "application/json")], bio).status, 200);
    let res = site.call("GET", "/api/videos/feed", Some(&ann), &[], b"");
    assert_eq!(json(&res)["videos"][0]["author"]["bio"].as_str(), Some("makes clips"), "a stale author in the feed");

    assert_eq!(site.call("DELETE", &format!("/api/videos/{after}"), Some(&bob), &[], b"").status, 204);
    assert_eq!(feed(&mut site), ["before"], "a delete did not reach a follower's cached feed");
    assert_eq!(site.call("DELETE", "/api/profiles/bob/follow", Some(&ann), &[], b"").status, 200);
    assert!(feed(&mut site).is_empty(), "unfollowing did not refresh the cached page");
}

/// A small tmpfs of our own, unmounted when dropped.
struct TinyDisk {
    dir: std::path::PathBuf,
}

impl TinyDisk {
    /// None when this process may not mount (not root): the caller says so and skips.
    fn mount(bytes: usize) -> Option<TinyDisk> {
        let dir = std::env::temp_dir().join(format!("swiftlet-tinydisk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyDisk { dir })
    }

    fn remount_read_only(&self) {
        let status = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&self.dir).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_full_or_read_only_disk_is_a_clear_error_and_leaves_nothing() {
    let Some(disk) = TinyDisk::mount(2 << 20) else {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert_ne!(unsafe { libc::geteuid() }, 0, "root could not mount a tmpfs");
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let dir = disk.dir.to_str().unwrap().to_string();
    let mut site = start(&["--upload-part-bytes", "65536"], &[("SWIFTLET_VIDEO_DIR", &dir)]);
    let ann = site.register("ann");

    let res = site.upload(&ann, "too big for the disk", "video/mp4", &mp4(3 << 20));
    assert_eq!((res.status, error_message(&res, "storage").as_str()), (507, "is full"), "{}", res.text());
    assert!(files_under(&disk.dir).is_empty(), "a partial object was left: {:?}", files_under(&disk.dir));
    assert_eq!(site.video_rows(), 0);

    // The space came back with the aborted upload, and the server lives on.
    let small = mp4(10_000);
    let res = site.upload(&ann, "fits", "video/mp4", &small);
    assert_eq!(res.status, 201, "{}", res.text());
    let id = json(&res)["video"]["id"].as_str().unwrap().to_string();

    disk.remount_read_only();
    let res = site.upload(&ann, "read-only", "video/mp4", &mp4(10_000));
    assert_eq!((res.status, error_message(&res, "storage").as_str()), (500, "refuses writes"), "{}", res.text());
    assert_eq!(site.video_rows(), 1);
    // What is stored still plays.
    let res = site.get(&format!("/api/videos/{id}/content"), &[]);
    assert!(res.status == 200 && res.body == small);
    drop(site);
}
