//! A real S3-protocol server for the video storage tests: moto's standalone
//! server, started per test on its own port, with signature checking on.
//!
//! moto checks SigV4 signatures once its first `INITIAL_NO_AUTH_ACTION_COUNT`
//! actions have run. The harness spends exactly those on setting up: an IAM
//! user, its access key, a policy allowing S3, and the bucket. Every request
//! after that (all of swiftlet's) must be signed with that key's secret, so a
//! wrong credential is refused as it would be by AWS.
#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::storage::free_port;
use super::Client;

/// The set-up actions (CreateUser, CreateAccessKey, PutUserPolicy, CreateBucket).
const SETUP_ACTIONS: &str = "4";

pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

/// moto's executable: `SWIFTLET_TEST_MOTO` (scripts/test.sh sets it) or
/// `moto_server` on the PATH.
fn executable() -> String {
    std::env::var("SWIFTLET_TEST_MOTO").unwrap_or_else(|_| "moto_server".to_string())
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut cmd = Command::new(executable());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: runs in the forked child before exec and only calls
        // prctl(2), which is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "could not start moto's S3 server ({}): {e}; run the tests with scripts/test.sh, which installs it",
                executable()
            )
        });
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // A TCP connect only: any HTTP request would spend a set-up action.
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not open port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "videos".to_string(),
            key_id: String::new(),
            secret: String::new(),
        };
        moto.iam("Action=CreateUser&UserName=swiftlet");
        let key = moto.iam("Action=CreateAccessKey&UserName=swiftlet");
        moto.key_id = between(&key, "<AccessKeyId>", "</AccessKeyId>");
        moto.secret = between(&key, "<SecretAccessKey>", "</SecretAccessKey>");
        // {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}, form-encoded
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C\
                      %22Action%22%3A%22s3%3A*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        moto.iam(&format!("Action=PutUserPolicy&UserName=swiftlet&PolicyName=s3&PolicyDocument={policy}"));
        let res = moto.unsigned("PUT", &format!("/{}", moto.bucket), "s3", "");
        assert_eq!(res.status, 200, "CreateBucket: {}", res.text());
        moto
    }

    /// A set-up request: moto reads the service from the credential scope,
    /// and does not check the signature of the first actions.
    fn unsigned(&self, method: &str, path: &str, service: &str, body: &str) -> super::Response {
        let addr = self.endpoint.trim_start_matches("http://").parse().unwrap();
        let mut client = Client::connect_to(addr);
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {len}\r\n\r\n{body}",
            host = addr,
            len = body.len()
        );
        client.request(raw.as_bytes())
    }

    fn iam(&self, action: &str) -> String {
        let res = self.unsigned("POST", "/", "iam", &format!("{action}&Version=2010-05-08"));
        assert_eq!(res.status, 200, "{action}: {}", res.text());
        res.text()
    }

    /// The keys of the objects in the bucket (ListObjectsV2, signed).
    pub fn object_keys(&self) -> Vec<String> {
        let res = self.signed_get(&format!("/{}", self.bucket), "list-type=2");
        assert_eq!(res.status, 200, "ListObjectsV2: {}", res.text());
        all_between(&res.text(), "<Key>", "</Key>")
    }

    /// Multipart uploads begun and neither completed nor aborted (ListMultipartUploads, signed).
    pub fn open_multipart_uploads(&self) -> usize {
        let res = self.signed_get(&format!("/{}", self.bucket), "uploads=");
        assert_eq!(res.status, 200, "ListMultipartUploads: {}", res.text());
        all_between(&res.text(), "<UploadId>", "</UploadId>").len()
    }

    /// A GET signed with SigV4 (AWS's "Signature Version 4 signing process"),
    /// written here independently of swiftlet's S3 client so the two check
    /// each other. `query` must already be canonical (sorted, `k=v`).
    fn signed_get(&self, path: &str, query: &str) -> super::Response {
        use hmac::{Hmac, Mac};
        use sha2::{Digest, Sha256};
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let hmac = |key: &[u8], data: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(data.as_bytes());
            mac.finalize().into_bytes().to_vec()
        };
        let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let stamp = swiftlet_protocol::Rfc3339Micros::from_unix_micros(micros).as_str().to_string();
        // 2026-11-29T11:46:38.571953Z -> 20261129T114638Z
        let amz_date = format!("{}T{}Z", stamp[..10].replace('-', ""), stamp[11..19].replace(':', ""));
        let day = &amz_date[..8];
        let host = self.endpoint.trim_start_matches("http://");
        let payload = hex(&Sha256::digest(b""));
        let canonical = format!(
            "GET\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{payload}"
        );
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let mut key = hmac(format!("AWS4{}", self.secret).as_bytes(), day);
        for part in ["us-east-1", "s3", "aws4_request"] {
            key = hmac(&key, part);
        }
        let signature = hex(&hmac(&key, &to_sign));
        let raw = format!(
            "GET {path}?{query} HTTP/1.1\r\nHost: {host}\r\nx-amz-content-sha256: {payload}\r\nx-amz-date: {amz_date}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}\r\n\r\n",
            self.key_id
        );
        let mut client = Client::connect_to(host.parse().unwrap());
        client.request(raw.as_bytes())
    }
}

fn all_between(text: &str, open: &str, close: &str) -> Vec<String> {
    text.match_indices(open)
        .map(|(i, _)| {
            let rest = &text[i + open.len()..];
            rest[..rest.find(close).unwrap()].to_string()
        })
        .collect()
}

fn between(text: &str, open: &str, close: &str) -> String {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open} in {text}")) + open.len();
    let end = text[start..].find(close).unwrap() + start;
    text[start..end].to_string()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
