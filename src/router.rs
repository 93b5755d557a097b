//! The static router: a `match` on path segments, then on the method.
//!
//! The path is split on `/` into a fixed array of borrowed segments on the
//! stack, and routes are slice patterns over it, so a path parameter is just a
//! binding in a pattern (`[b"api", b"articles", slug]`) that borrows from the
//! request buffer: routing never allocates. An unknown path is 404; a known path
//! with a method it does not have is 405 with the methods it does have. HEAD is
//! allowed wherever GET is (RFC 9110 §9.3.2).

use swiftlet_protocol::Method;

use crate::error::AppError;

/// Paths with more segments than this match no route.
pub const MAX_SEGMENTS: usize = 8;

/// A matched route. Routes with path parameters will carry them as borrowed
/// byte slices (see the `segments_bind_parameters_without_copying` test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Plaintext,
    Json,
    Ingest,
    /// `GET /db`: one random World row.
    Db,
    /// `GET /queries?queries=N`: N random World rows.
    Queries,
    /// `GET /updates?queries=N`: N random World rows, changed and written back.
    Updates,
    /// `GET /fortunes`: the Fortune table as HTML.
    Fortunes,
    /// `GET /cached-queries?count=N`: N random World rows through the Redis cache.
    CachedQueries,
    /// `GET /__test/panic`: a handler that panics (only with `--test-routes`).
    TestPanic,
    /// `GET /__test/sleep?ms=N`: a handler that takes N ms (only with `--test-routes`).
    TestSleep,
}

/// A path split into segments: `/api/articles/x` is `["api", "articles", "x"]`.
/// The leading `/` is dropped; empty segments (`//`, a trailing `/`) are kept,
/// so `/health/` is not `/health`.
pub struct Segments<'p> {
    parts: [&'p [u8]; MAX_SEGMENTS],
    len: usize,
}

impl<'p> Segments<'p> {
    /// `None` when the path has more than [`MAX_SEGMENTS`] segments or does not
    /// start with `/`.
    pub fn split(path: &'p [u8]) -> Option<Segments<'p>> {
        let rest = path.strip_prefix(b"/")?;
        let mut parts: [&[u8]; MAX_SEGMENTS] = [&[]; MAX_SEGMENTS];
        let mut len = 0;
        if !rest.is_empty() {
            for part in rest.split(|&b| b == b'/') {
                *parts.get_mut(len)? = part;
                len += 1;
            }
        }
        Some(Segments { parts, len })
    }

    pub fn as_slice(&self) -> &[&'p [u8]] {
        &self.parts[..self.len]
    }
}

/// Finds the route for a request. The fault-injection routes exist only when
/// `test_routes` is set.
pub fn route(method: Method, path: &[u8], test_routes: bool) -> Result<Route, AppError> {
    use Method::*;
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    let segments = Segments::split(path).ok_or(AppError::NotFound)?;
    let (route, allow) = match segments.as_slice() {
        [b"health"] => (Route::Health, GET),
        [b"plaintext"] => (Route::Plaintext, GET),
        [b"json"] => (Route::Json, GET),
        [b"ingest"] => (Route::Ingest, POST),
        [b"db"] => (Route::Db, GET),
        [b"queries"] => (Route::Queries, GET),
        [b"updates"] => (Route::Updates, GET),
        [b"fortunes"] => (Route::Fortunes, GET),
        [b"cached-queries"] => (Route::CachedQueries, GET),
        [b"__test", b"panic"] if test_routes => (Route::TestPanic, GET),
        [b"__test", b"sleep"] if test_routes => (Route::TestSleep, GET),
        _ => return Err(AppError::NotFound),
    };
    let allowed = match allow {
        GET => matches!(method, Get | Head),
        _ => method == Post,
    };
    if allowed {
        Ok(route)
    } else {
        Err(AppError::MethodNotAllowed { allow })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes() {
        assert_eq!(route(Method::Get, b"/health", false), Ok(Route::Health));
        assert_eq!(route(Method::Head, b"/health", false), Ok(Route::Health));
        assert_eq!(route(Method::Get, b"/plaintext", false), Ok(Route::Plaintext));
        assert_eq!(route(Method::Get, b"/json", false), Ok(Route::Json));
        assert_eq!(route(Method::Post, b"/ingest", false), Ok(Route::Ingest));
        assert_eq!(route(Method::Get, b"/db", false), Ok(Route::Db));
        assert_eq!(route(Method::Get, b"/queries", false), Ok(Route::Queries));
        assert_eq!(route(Method::Get, b"/updates", false), Ok(Route::Updates));
        assert_eq!(route(Method::Get, b"/fortunes", false), Ok(Route::Fortunes));
        assert_eq!(route(Method::Get, b"/cached-queries", false), Ok(Route::CachedQueries));
    }

    #[test]
    fn unknown_path_is_404() {
        for p in [&b"/"[..], b"/nope", b"/health/", b"/health/x", b"health", b"*", b"//health"] {
            assert_eq!(route(Method::Get, p, false), Err(AppError::NotFound), "{:?}", p);
        }
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        assert_eq!(route(Method::Post, b"/health", false), Err(AppError::MethodNotAllowed { allow: "GET, HEAD" }));
        assert_eq!(route(Method::Get, b"/ingest", false), Err(AppError::MethodNotAllowed { allow: "POST" }));
        assert_eq!(route(Method::Other, b"/json", false), Err(AppError::MethodNotAllowed { allow: "GET, HEAD" }));
    }

    #[test]
    fn segments_bind_parameters_without_copying() {
        let path = b"/api/articles/how-to-train-your-dragon/comments/42";
        let segs = Segments::split(path).unwrap();
        // The shape later resource routes use: parameters are pattern bindings.
        let (slug, id) = match segs.as_slice() {
            [b"api", b"articles", slug, b"comments", id] => (*slug, *id),
            other => panic!("no match: {other:?}"),
        };
        assert_eq!(slug, b"how-to-train-your-dragon");
        assert_eq!(id, b"42");
        // Borrowed from the path itself, not copied.
        assert_eq!(slug.as_ptr(), path[14..].as_ptr());
    }

    #[test]
    fn too_many_segments_match_nothing() {
        assert!(Segments::split(b"/a/b/c/d/e/f/g/h").is_some());
        assert!(Segments::split(b"/a/b/c/d/e/f/g/h/i").is_none());
        assert_eq!(Segments::split(b"/").unwrap().as_slice().len(), 0);
    }
}

#[cfg(test)]
mod test_route_tests {
    use super::*;

    #[test]
    fn fault_routes_only_when_enabled() {
        assert_eq!(route(Method::Get, b"/__test/panic", false), Err(AppError::NotFound));
        assert_eq!(route(Method::Get, b"/__test/panic", true), Ok(Route::TestPanic));
        assert_eq!(route(Method::Get, b"/__test/sleep", true), Ok(Route::TestSleep));
    }
}
