//! The properties the `requests` and `router` fuzz targets check, kept in the
//! crate so that `cargo test` replays their committed corpora with exactly the
//! same checks (tests/fuzz_corpus.rs; fuzz/README.md). Each function panics
//! when a property fails. The wire-level targets live in
//! `swiftlet_protocol::fuzzing`.
//!
//! Both checks compare against a reference written differently from the code
//! under test, so a wrong answer fails as surely as a panic:
//! - request bodies against serde_json: a body serde_json refuses is refused
//!   as malformed by every type, and one it reads by none; the body and its
//!   canonical re-spelling (serde_json's, every member kept in order) parse to
//!   the same request or the same error; and the API types read a repeated
//!   key as serde_json's `Value` does, by its last value;
//! - the `match` router against the route table it labels metrics with
//!   ([`Route::pattern`], [`Route::method`]), which the same table makes, and
//!   against the slugs titles get.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use swiftlet_protocol::Method;

use crate::app::api::requests::{self, ArticleChanges, Login, NewArticle, NewComment, Registration, UserChanges};
use crate::http::error::AppError;
use crate::http::router::{route, Class, Route};
use crate::ingest::event::with_payload;

/// A JSON value as serde_json reads it, with every object member kept in
/// order (serde_json's own `Value` would drop all but a repeated key's last).
enum Reference {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Reference>),
    Object(Vec<(String, Reference)>),
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        d.deserialize_any(ReferenceVisitor)
    }
}

struct ReferenceVisitor;

impl<'de> Visitor<'de> for ReferenceVisitor {
    type Value = Reference;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Reference, E> {
        Ok(Reference::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Reference, E> {
        Ok(Reference::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Reference, E> {
        Ok(Reference::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Reference, E> {
        Ok(Reference::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Reference, E> {
        serde_json::Number::from_f64(v).map(Reference::Number).ok_or_else(|| E::custom("not a finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Reference, E> {
        Ok(Reference::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Reference, E> {
        Ok(Reference::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reference, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Reference::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reference, A::Error> {
        let mut fields = Vec::new();
        while let Some(member) = map.next_entry::<String, Reference>()? {
            fields.push(member);
        }
        Ok(Reference::Object(fields))
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reference::Null => s.serialize_unit(),
            Reference::Bool(b) => s.serialize_bool(*b),
            Reference::Number(n) => n.serialize(s),
            Reference::String(text) => s.serialize_str(text),
            Reference::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Reference::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// What serde_json makes of a body.
enum SerdeReading {
    /// Not JSON.
    Refused,
    /// Nesting deeper than serde_json's recursion limit: it says nothing
    /// about the body.
    GaveUp,
    /// Two canonical spellings: with every member, and with only the last of
    /// a repeated key (what serde_json's own `Value` keeps).
    Read { every_member: Vec<u8>, last_wins: Vec<u8> },
}

fn serde_reading(body: &[u8]) -> SerdeReading {
    match serde_json::from_slice::<Reference>(body) {
        Ok(value) => {
            let every_member = serde_json::to_vec(&value).expect("a parsed value serializes");
            let last_wins: serde_json::Value =
                serde_json::from_slice(&every_member).expect("serde_json reads its own output");
            SerdeReading::Read { every_member, last_wins: serde_json::to_vec(&last_wins).expect("a Value serializes") }
        }
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => SerdeReading::GaveUp,
        Err(_) => SerdeReading::Refused,
    }
}

/// The outcome of reading one body as every request type, in owned form so
/// two bodies' outcomes can be compared.
#[derive(Debug, PartialEq)]
struct Outcomes {
    login: Result<String, AppError>,
    registration: Result<String, AppError>,
    user_changes: Result<String, AppError>,
    new_article: Result<String, AppError>,
    article_changes: Result<String, AppError>,
    new_comment: Result<String, AppError>,
    log_event: Result<String, AppError>,
}

/// Reads `body` as each request type (each on its own copy: parsing is in
/// place), checking every accepted request's invariants on the way.
fn outcomes(body: &[u8]) -> Outcomes {
    let mut copy = body.to_vec();
    let range = copy.as_ptr_range();
    let borrowed =
        move |s: &str| assert!(s.is_empty() || range.contains(&s.as_ptr()), "{s:?} was copied out of the body");
    // A required or present field: from the body, and not blank.
    let field = |s: &str| {
        borrowed(s);
        assert!(!s.trim().is_empty(), "a blank {s:?} was accepted");
    };
    let login = Login::parse(&mut copy).map(|r| {
        [r.email, r.password].into_iter().for_each(field);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let within =
        |cap: requests::Cap, s: &str| assert!(s.len() <= cap.max, "{} of {} bytes accepted", cap.field, s.len());
    let registration = Registration::parse(&mut copy).map(|r| {
        [r.username, r.email, r.password].into_iter().for_each(field);
        within(requests::USERNAME, r.username);
        within(requests::EMAIL, r.email);
        within(requests::PASSWORD, r.password);
        assert!(r.password.chars().count() >= requests::MIN_PASSWORD_CHARS, "a short new password accepted");
        assert_valid_email(r.email);
        assert_valid_username(r.username);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let user_changes = UserChanges::parse(&mut copy).map(|r| {
        [r.email, r.username, r.password].into_iter().flatten().for_each(field);
        for s in [r.bio, r.image].into_iter().flatten().flatten() {
            borrowed(s);
        }
        r.email.map(assert_valid_email);
        r.username.map(assert_valid_username);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let new_article = NewArticle::parse(&mut copy).map(|r| {
        [r.title, r.description, r.body].into_iter().chain(r.tags.iter().copied()).for_each(field);
        within(requests::TITLE, r.title);
        within(requests::DESCRIPTION, r.description);
        within(requests::ARTICLE_BODY, r.body);
        assert!(r.tags.len() <= requests::MAX_TAGS);
        r.tags.iter().for_each(|t| within(requests::TAG, t));
        assert!(r.tags.windows(2).all(|w| w[0] < w[1]), "tags not sorted and unique: {:?}", r.tags);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let article_changes = ArticleChanges::parse(&mut copy).map(|r| {
        [r.title, r.description, r.body].into_iter().flatten().for_each(field);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let new_comment = NewComment::parse(&mut copy).map(|r| {
        field(r.body);
        within(requests::COMMENT_BODY, r.body);
        format!("{r:?}")
    });
    copy.copy_from_slice(body);
    let log_event = with_payload(&mut copy, |p| {
        for s in [p.event_id, p.service, p.message] {
            borrowed(s);
            assert!(!s.contains('\0'), "a NUL in {s:?} was accepted");
        }
        assert!(!p.event_id.is_empty() && !p.service.is_empty());
        // Every member, in order, as the row will carry them to jsonb.
        let metadata: Vec<(&str, &str)> = p.metadata.iter().collect();
        for (k, v) in &metadata {
            borrowed(k);
            borrowed(v);
        }
        Ok(format!("{}|{}|{}|{}|{metadata:?}", p.event_id, p.timestamp, p.service, p.message))
    });
    let outcomes = Outcomes { login, registration, user_changes, new_article, article_changes, new_comment, log_event };
    for refusal in outcomes.errors() {
        assert!(
            matches!(refusal, AppError::InvalidField { .. } | AppError::MalformedJson),
            "a body refused with {refusal:?}, not a 400/422 naming a field"
        );
    }
    outcomes
}

impl Outcomes {
    /// The product API's six outcomes (the log event's refusals differ).
    fn api(&self) -> [&Result<String, AppError>; 6] {
        [
            &self.login,
            &self.registration,
            &self.user_changes,
            &self.new_article,
            &self.article_changes,
            &self.new_comment,
        ]
    }

    fn errors(&self) -> impl Iterator<Item = &AppError> {
        self.api().into_iter().chain([&self.log_event]).filter_map(|r| r.as_ref().err())
    }

    /// How many types refused the body as not JSON at all.
    fn malformed(&self) -> usize {
        const API: AppError = AppError::InvalidField { field: "body", problem: "is not valid JSON" };
        let api = self.api().iter().filter(|r| ***r == Err(API)).count();
        api + usize::from(self.log_event == Err(AppError::MalformedJson))
    }
}

fn assert_valid_email(email: &str) {
    assert!(email.contains('@') && !email.contains(char::is_whitespace), "e-mail {email:?} accepted");
}

fn assert_valid_username(username: &str) {
    assert!(!username.contains('/') && !username.chars().any(char::is_control), "username {username:?} accepted");
}

/// Every request type reads a body the way serde_json does: a body it refuses
/// is malformed, and a body it takes reads the same as its canonical spelling.
/// No accepted request breaks its invariants (see `api::requests`).
pub fn check_requests(body: &[u8]) {
    let ours = outcomes(body);
    match serde_reading(body) {
        SerdeReading::GaveUp => {}
        SerdeReading::Refused => {
            assert_eq!(ours.malformed(), 7, "serde_json refuses the body, but it was read: {ours:?}")
        }
        SerdeReading::Read { every_member, last_wins } => {
            assert_eq!(ours.malformed(), 0, "serde_json reads the body, but it was refused as malformed: {ours:?}");
            let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let again = outcomes(&every_member);
            assert_eq!(ours, again, "the body and its canonical form {:?} read differently", shown(&every_member));
            // A repeated key counts by its last value. (Only the API types: a
            // log event's metadata is checked and stored member by member, and
            // jsonb keeps the last.)
            let deduplicated = outcomes(&last_wins);
            assert_eq!(
                ours.api(),
                deduplicated.api(),
                "a repeated key read otherwise than by its last value, as in {:?}",
                shown(&last_wins)
            );
        }
    }
}

/// The method the first input byte's low three bits pick.
const FUZZ_METHODS: [Method; 8] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Options,
    Method::Other,
];

/// How well a pattern matches a path: `None` if it does not; otherwise, per
/// segment, whether it matched a literal (a literal beats a parameter, so
/// `/api/articles/feed` is the feed and not an article called "feed").
fn pattern_match(pattern: &str, path: &[u8]) -> Option<Vec<bool>> {
    let rest = path.strip_prefix(b"/")?;
    let pattern_segments: Vec<&str> = pattern[1..].split('/').collect();
    let path_segments: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    if pattern_segments.len() != path_segments.len() {
        return None;
    }
    let mut literal = Vec::with_capacity(path_segments.len());
    for (p, s) in pattern_segments.iter().zip(&path_segments) {
        if p.starts_with(':') {
            literal.push(false);
        } else if p.as_bytes() == *s {
            literal.push(true);
        } else {
            return None;
        }
    }
    Some(literal)
}

/// The router's answer for every method and path agrees with the route table:
/// a path gets the routes whose pattern matches it most specifically, the
/// method picks one of them (or 405 listing theirs), an `/api` path that has
/// routes takes OPTIONS as a preflight (but the log service's), and anything
/// else is 404. And the
/// bytes read as an article's title give a slug that routes to that article.
pub fn check_route(data: &[u8]) {
    let Some((&selector, path)) = data.split_first() else {
        return;
    };
    // Read as an article title, the path's slug must name that article: no
    // route may shadow it (as `/api/articles/feed` would the title "Feed").
    if let Ok(title) = std::str::from_utf8(path) {
        let slug = crate::app::api::slug::slugify(title);
        let url = format!("/api/articles/{slug}");
        assert_eq!(route(Method::Get, url.as_bytes(), false), Ok(Route::Article), "title {title:?}");
    }
    let method = FUZZ_METHODS[usize::from(selector & 7)];
    let test_routes = selector & 8 != 0;
    let got = route(method, path, test_routes);

    let present = |r: Route| match r.class() {
        _ if r == Route::Preflight => false,
        Class::Measuring => cfg!(feature = "count-allocations"),
        Class::Test => test_routes,
        _ => true,
    };
    let matches: Vec<(Route, Method, Vec<bool>)> = Route::ALL
        .iter()
        .filter(|r| present(**r))
        .filter_map(|&r| pattern_match(r.pattern(), path).map(|lit| (r, r.method(), lit)))
        .collect();
    let best = matches.iter().map(|(_, _, lit)| lit).max();
    let candidates: Vec<(Route, Method)> =
        matches.iter().filter(|(_, _, lit)| Some(lit) == best).map(|&(r, m, _)| (r, m)).collect();

    let wanted = if method == Method::Head { Method::Get } else { method };
    let shown = String::from_utf8_lossy(path);
    if candidates.is_empty() {
        assert_eq!(got, Err(AppError::NotFound), "{method:?} {shown:?} has no route");
    } else if method == Method::Options
        && path.starts_with(b"/api/")
        && !candidates.iter().any(|(r, _)| *r == Route::Logs)
    {
        assert_eq!(got, Ok(Route::Preflight), "OPTIONS {shown:?} is a preflight");
    } else if let Some(&(r, _)) = candidates.iter().find(|(_, m)| *m == wanted) {
        assert_eq!(got, Ok(r), "{method:?} {shown:?} (test routes: {test_routes})");
    } else {
        let mut allow: Vec<&str> = Vec::new();
        for (_, m) in &candidates {
            allow.extend_from_slice(match m {
                Method::Get => &["GET", "HEAD"],
                Method::Post => &["POST"],
                Method::Put => &["PUT"],
                Method::Delete => &["DELETE"],
                other => panic!("no name for {other:?}"),
            });
        }
        let Err(AppError::MethodNotAllowed { allow: listed }) = got else {
            panic!("{method:?} {shown:?} should be 405, got {got:?}");
        };
        let mut listed: Vec<&str> = listed.split(", ").collect();
        listed.sort_unstable();
        allow.sort_unstable();
        assert_eq!(listed, allow, "405 for {method:?} {shown:?} lists the wrong methods");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_passes_the_check_at_its_own_pattern() {
        // The reference itself: a literal segment beats a parameter.
        assert!(
            pattern_match("/api/articles/feed", b"/api/articles/feed")
                > pattern_match("/api/articles/:slug", b"/api/articles/feed")
        );
        assert_eq!(pattern_match("/api/articles/:slug", b"/api/articles"), None);
        // Each table row's pattern and its match segments agree.
        for &r in Route::ALL {
            let m = r.method();
            let path =
                r.pattern().replace(":slug", "s").replace(":username", "u").replace(":id", "7").replace('*', "tags");
            let selector = FUZZ_METHODS.iter().position(|x| *x == m).unwrap() as u8 | 8;
            let mut data = vec![selector];
            data.extend_from_slice(path.as_bytes());
            if r != Route::Allocations || cfg!(feature = "count-allocations") {
                check_route(&data);
                assert_eq!(route(m, path.as_bytes(), true), Ok(r));
            }
        }
    }

    #[test]
    fn a_title_slugged_as_a_route_would_fail_the_check() {
        check_route(b"\x00Feed");
        check_route(b"\x00 feed!");
    }

    #[test]
    fn the_request_check_reads_escapes_like_serde_json() {
        check_requests(br#"{"user":{"email":"a\u0040b","password":"p","username":"x"}}"#);
        check_requests(br#"{"user":{"email":"a@b","email":"second","password":"p"}}"#);
        check_requests(b"{\"user\": {\"email\": 1}}");
        check_requests(b"not json");
        // What serde_json refuses: a raw control character, a lone surrogate,
        // a number past f64, trailing bytes, a byte-order mark.
        for refused in [
            &b"{\"comment\":{\"body\":\"a\x01b\"}}"[..],
            br#"{"comment":{"body":"\ud800"}}"#,
            b"1e400",
            b"{} x",
            b"\xef\xbb\xbf{}",
        ] {
            check_requests(refused);
        }
        check_requests(
            br#"{"event_id":"e","timestamp":1700000000000,"service":"s","message":"","metadata":{"k":"v","k":"w"}}"#,
        );
    }
}

#[cfg(test)]
mod regressions {
    use crate::app::api::requests::NewComment;

    /// Found by the `requests` target: simd-json refused an integer past 64
    /// bits as malformed JSON, where serde_json (and RFC 8259) read a number.
    #[test]
    fn a_huge_integer_in_an_ignored_field_is_still_json() {
        let mut body = br#"{"comment":{"body":"x"},"n":333333333333333333333333333333333333333}"#.to_vec();
        assert_eq!(NewComment::parse(&mut body), Ok(NewComment { body: "x" }));
    }
}
