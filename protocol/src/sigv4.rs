//! AWS Signature Version 4 for S3 requests, in the `Authorization` header.
//!
//! A request is signed over its method, path, query, the headers named in
//! `SignedHeaders` and a hash of its payload (or `UNSIGNED-PAYLOAD`, which S3
//! accepts with header signing), scoped to a day, a region and the `s3`
//! service. The request must then go out with exactly the path and query
//! this module encoded ([`Signed::target`]) and the headers it returned.
//!
//! Header signing rather than presigned URLs: S3-compatible stores that check
//! signatures (moto among them) do not all accept query-string signing.
//! Invariant: the secret never appears in anything returned.

use ring::{digest, hmac};

/// The payload hash of a request whose body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An access key.
#[derive(Clone)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    /// The session token of temporary credentials.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// What a request to sign consists of.
pub struct Request<'a> {
    pub method: &'a str,
    /// The `Host` header value (with `:port` when it is not the default).
    pub host: &'a str,
    /// The path, not yet encoded (e.g. `/bucket/videos/1.webm`).
    pub path: &'a str,
    /// Query parameters, not yet encoded, in any order.
    pub query: &'a [(&'a str, &'a str)],
    /// Other headers to sign and send (e.g. `range`), names in lower case.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// A signed request: what to put on the request line and which headers to add.
#[derive(Debug)]
pub struct Signed {
    /// Encoded path and query, for the request line.
    pub target: String,
    /// `x-amz-date`, `x-amz-content-sha256`, the session token if any, and
    /// `authorization`.
    pub headers: Vec<(&'static str, String)>,
}

/// Hex SHA-256 of `bytes`, for [`Request::payload_hash`].
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// URI-encodes `s` as SigV4 wants: every byte but `A-Za-z0-9-_.~` as `%XX`
/// (upper-case hex), and `/` too unless `keep_slash` (paths keep theirs).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn mac(key: &[u8], data: &str) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
}

/// Signs `request` with `credentials` for `region` at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`, UTC).
pub fn sign(request: &Request<'_>, credentials: &Credentials, region: &str, amz_date: &str) -> Signed {
    let day = &amz_date[..8.min(amz_date.len())];
    let path = uri_encode(request.path, true);
    let mut query: Vec<(String, String)> =
        request.query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");

    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), request.host.into()),
        ("x-amz-content-sha256".into(), request.payload_hash.into()),
        ("x-amz-date".into(), amz_date.into()),
    ];
    if let Some(token) = &credentials.token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    for (name, value) in request.headers {
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    headers.sort();
    let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let mut canonical = format!("{}\n{path}\n{query}\n", request.method);
    for (name, value) in &headers {
        canonical.push_str(&format!("{name}:{value}\n"));
    }
    canonical.push_str(&format!("\n{signed_headers}\n{}", request.payload_hash));

    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let key = mac(format!("AWS4{}", credentials.secret).as_bytes(), day);
    let key = mac(key.as_ref(), region);
    let key = mac(key.as_ref(), "s3");
    let key = mac(key.as_ref(), "aws4_request");
    let signature = hex(mac(key.as_ref(), &to_sign).as_ref());

    let mut out =
        vec![("x-amz-date", amz_date.to_string()), ("x-amz-content-sha256", request.payload_hash.to_string())];
    if let Some(token) = &credentials.token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.key_id
        ),
    ));
    let target = if query.is_empty() { path } else { format!("{path}?{query}") };
    Signed { target, headers: out }
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since the Unix epoch.
pub fn amz_date(unix_secs: u64) -> String {
    // 2026-11-29T11:46:38.571953Z -> 20261129T114638Z
    let stamp = crate::date::Rfc3339Micros::from_unix_micros((unix_secs as i64).saturating_mul(1_000_000));
    let s = stamp.as_str();
    format!("{}{}{}T{}{}{}Z", &s[0..4], &s[5..7], &s[8..10], &s[11..13], &s[14..16], &s[17..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_credentials() -> Credentials {
        // AWS's documentation example key (not a real one).
        Credentials {
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        }
    }

    fn authorization(signed: &Signed) -> &str {
        &signed.headers.iter().find(|(n, _)| *n == "authorization").unwrap().1
    }

    #[test]
    fn matches_the_aws_documentation_get_object_example() {
        // "Signature Calculations for the Authorization Header", Example: GET Object.
        let request = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[("range", "bytes=0-9")],
            payload_hash: &sha256_hex(b""),
        };
        let signed = sign(&request, &example_credentials(), "us-east-1", "20130524T000000Z");
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(signed.target, "/test.txt");
    }

    #[test]
    fn matches_the_aws_documentation_list_objects_example() {
        // Same page, Example: GET Bucket (List Objects): the query is sorted.
        let request = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: &[("prefix", "J"), ("max-keys", "2")],
            headers: &[],
            payload_hash: &sha256_hex(b""),
        };
        let signed = sign(&request, &example_credentials(), "us-east-1", "20130524T000000Z");
        assert!(
            authorization(&signed)
                .ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
            "{}",
            authorization(&signed)
        );
        assert_eq!(signed.target, "/?max-keys=2&prefix=J");
    }

    #[test]
    fn encodes_as_sigv4_wants_and_never_shows_the_secret() {
        assert_eq!(uri_encode("a b/c~d*é", true), "a%20b/c~d%2A%C3%A9");
        assert_eq!(uri_encode("a/b=c", false), "a%2Fb%3Dc");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        let creds = example_credentials();
        let request =
            Request { method: "PUT", host: "h", path: "/k", query: &[], headers: &[], payload_hash: UNSIGNED_PAYLOAD };
        let signed = sign(&request, &creds, "eu-west-1", "20130524T000000Z");
        assert!(signed.headers.iter().all(|(_, v)| !v.contains(&creds.secret)));
        assert!(!format!("{creds:?}").contains(&creds.secret));
    }
}
