//! The static router: one declarative table of routes, expanded into a
//! `match` on path segments, then on the method.
//!
//! The path is split on `/` into a fixed array of borrowed segments on the
//! stack, and routes are slice patterns over it, so a path parameter is just a
//! binding in a pattern (`[b"api", b"articles", _]`) that borrows from the
//! request buffer: routing never allocates. An unknown path is 404; a known path
//! with a method it does not have is 405 with the methods it does have. HEAD is
//! allowed wherever GET is (RFC 9110 §9.3.2).
//!
//! Everything else about a route comes from the same table, [`routes!`]'s
//! one invocation below: the [`Route`] enum and its list, each route's
//! method, metric name and path pattern, its [`Class`] (who may reach it,
//! whether it carries CORS, whether it checks the log token) and its
//! [`Body`] (which body limit applies, or whether the body streams). Adding a
//! route is one line there (and its handler in `app::dispatch`).

use swiftlet_protocol::Method;

use crate::http::error::AppError;

/// Paths with more segments than this match no route.
pub const MAX_SEGMENTS: usize = 8;

/// What kind of route it is: who may reach it and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Liveness and readiness: on the operations listener too.
    Probe,
    /// `/metrics`: on the operations listener, or the public one without one.
    Metrics,
    /// TechEmpower's routes (off with `--no-benchmark-routes`).
    Bench,
    /// The log service's writes, behind the ingest token.
    Ingest,
    /// The product API: CORS answers.
    Api,
    /// The log service's reads: under `/api` but behind the ingest token, no CORS.
    Logs,
    /// Only in the allocation-counting build.
    Measuring,
    /// Fault injection, only with `--test-routes`.
    Test,
}

/// Which body a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// None: a body is refused (413) before it is read.
    None,
    /// Up to `--api-body-limit` (read and ignored where the route needs none).
    Api,
    /// One log event, up to `--ingest-body-limit`.
    Ingest,
    /// NDJSON log events, up to `--ingest-batch-body-limit`.
    IngestBatch,
    /// Read as a stream by its handler (an upload), never whole.
    Stream,
}

/// The route table's rows, each `Variant "name" METHOD Class Body`, grouped
/// under the path pattern (for metrics labels) and the segments it matches;
/// one extra row for the preflight, which matches by method, not by path.
macro_rules! routes {
    (
        $( $pattern:literal [$($seg:pat),*] {
            $( $(#[doc = $doc:literal])* $variant:ident $name:literal $method:ident $class:ident $body:ident; )+
        } )*
        preflight: $(#[doc = $pdoc:literal])* $pvariant:ident $pname:literal $ppattern:literal $pclass:ident $pbody:ident;
    ) => {
        /// A matched route. Path parameters are not copied: handlers read
        /// them from the path by position.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Route {
            $( $( $(#[doc = $doc])* $variant, )+ )*
            $(#[doc = $pdoc])* $pvariant,
        }

        impl Route {
            /// Every route, in table order: `Route::ALL[r as usize] == r`.
            pub const ALL: &'static [Route] = &[ $( $( Route::$variant, )+ )* Route::$pvariant ];

            /// The route's path pattern, which metrics label requests with
            /// (several routes share one; the method tells them apart).
            pub const fn pattern(self) -> &'static str {
                match self {
                    $( $( Route::$variant => $pattern, )+ )*
                    Route::$pvariant => $ppattern,
                }
            }

            /// A short snake-case name for metrics labels.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $( Route::$variant => $name, )+ )*
                    Route::$pvariant => $pname,
                }
            }

            /// The method it answers (HEAD too, where this is GET).
            pub const fn method(self) -> Method {
                match self {
                    $( $( Route::$variant => method!($method), )+ )*
                    Route::$pvariant => Method::Options,
                }
            }

            pub const fn class(self) -> Class {
                match self {
                    $( $( Route::$variant => Class::$class, )+ )*
                    Route::$pvariant => Class::$pclass,
                }
            }

            pub const fn body(self) -> Body {
                match self {
                    $( $( Route::$variant => Body::$body, )+ )*
                    Route::$pvariant => Body::$pbody,
                }
            }
        }

        /// The routes of a path, by method.
        fn methods(segments: &[&[u8]]) -> Option<Methods> {
            Some(match segments {
                $( [$($seg),*] => const { Methods::of(&[ $( Route::$variant ),+ ]) }, )*
                _ => return None,
            })
        }
    };
}

macro_rules! method {
    (GET) => {
        Method::Get
    };
    (POST) => {
        Method::Post
    };
    (PUT) => {
        Method::Put
    };
    (DELETE) => {
        Method::Delete
    };
}

// `feed` comes before `:slug`, so it is never a slug; the order of the
// groups is the order of the match.
routes! {
    "/health" [b"health"] { Health "health" GET Probe None; }
    "/ready" [b"ready"] {
        /// `GET /ready`: 200 only when PostgreSQL answers and IDs can be made.
        Ready "ready" GET Probe None;
    }
    "/metrics" [b"metrics"] {
        /// `GET /metrics`: Prometheus text format.
        Metrics "metrics" GET Metrics None;
    }
    "/plaintext" [b"plaintext"] { Plaintext "plaintext" GET Bench None; }
    "/json" [b"json"] { Json "json" GET Bench None; }
    "/ingest" [b"ingest"] {
        /// `POST /ingest`: one log event.
        Ingest "ingest" POST Ingest Ingest;
    }
    "/ingest/batch" [b"ingest", b"batch"] {
        /// `POST /ingest/batch`: log events as NDJSON.
        IngestBatch "ingest_batch" POST Ingest IngestBatch;
    }
    "/db" [b"db"] {
        /// `GET /db`: one random World row.
        Db "db" GET Bench None;
    }
    "/queries" [b"queries"] {
        /// `GET /queries?queries=N`: N random World rows.
        Queries "queries" GET Bench None;
    }
    "/updates" [b"updates"] {
        /// `GET /updates?queries=N`: N random World rows, changed and written back.
        Updates "updates" GET Bench None;
    }
    "/fortunes" [b"fortunes"] {
        /// `GET /fortunes`: the Fortune table as HTML.
        Fortunes "fortunes" GET Bench None;
    }
    "/cached-queries" [b"cached-queries"] {
        /// `GET /cached-queries?count=N`: N random World rows through the Redis cache.
        CachedQueries "cached_queries" GET Bench None;
    }
    // The product API (shared/conduit-api.md §3), in the spec's order.
    "/api/users/login" [b"api", b"users", b"login"] { Login "login" POST Api Api; }
    "/api/users" [b"api", b"users"] { Register "register" POST Api Api; }
    "/api/user" [b"api", b"user"] {
        CurrentUser "current_user" GET Api Api;
        UpdateUser "update_user" PUT Api Api;
    }
    "/api/profiles/:username" [b"api", b"profiles", _] { Profile "profile" GET Api Api; }
    "/api/profiles/:username/follow" [b"api", b"profiles", _, b"follow"] {
        Follow "follow" POST Api Api;
        Unfollow "unfollow" DELETE Api Api;
    }
    "/api/articles" [b"api", b"articles"] {
        ListArticles "list_articles" GET Api Api;
        CreateArticle "create_article" POST Api Api;
    }
    "/api/articles/feed" [b"api", b"articles", b"feed"] { Feed "feed" GET Api Api; }
    "/api/articles/:slug" [b"api", b"articles", _] {
        Article "article" GET Api Api;
        UpdateArticle "update_article" PUT Api Api;
        DeleteArticle "delete_article" DELETE Api Api;
    }
    "/api/articles/:slug/comments" [b"api", b"articles", _, b"comments"] {
        Comments "comments" GET Api Api;
        AddComment "add_comment" POST Api Api;
    }
    "/api/articles/:slug/comments/:id" [b"api", b"articles", _, b"comments", _] {
        DeleteComment "delete_comment" DELETE Api Api;
    }
    "/api/articles/:slug/favorite" [b"api", b"articles", _, b"favorite"] {
        Favorite "favorite" POST Api Api;
        Unfavorite "unfavorite" DELETE Api Api;
    }
    "/api/tags" [b"api", b"tags"] { Tags "tags" GET Api Api; }
    "/api/ids" [b"api", b"ids"] {
        /// `GET /api/ids?count=N`: new time-ordered IDs.
        Ids "ids" GET Api Api;
    }
    "/api/ids/:id" [b"api", b"ids", _] {
        /// `GET /api/ids/:id`: an ID's parts.
        DecodeId "decode_id" GET Api Api;
    }
    "/api/logs" [b"api", b"logs"] {
        /// `GET /api/logs`: ingested events, newest first.
        Logs "logs" GET Logs Api;
    }
    "/api/videos" [b"api", b"videos"] {
        /// `GET /api/videos?author=&limit=&cursor=`
        ListVideos "list_videos" GET Api Api;
        /// `POST /api/videos`: an upload, streamed to object storage.
        CreateVideo "create_video" POST Api Stream;
    }
    "/api/videos/feed" [b"api", b"videos", b"feed"] {
        /// `GET /api/videos/feed`: videos by the authors the caller follows.
        VideoFeed "video_feed" GET Api Api;
    }
    "/api/videos/:id" [b"api", b"videos", _] {
        Video "video" GET Api Api;
        DeleteVideo "delete_video" DELETE Api Api;
    }
    "/api/videos/:id/content" [b"api", b"videos", _, b"content"] {
        /// `GET /api/videos/:id/content`: the video's bytes, with Range.
        VideoContent "video_content" GET Api Api;
    }
    "/__allocations" [b"__allocations"] {
        /// `GET /__allocations`: heap allocations so far (only in the
        /// `count-allocations` build, for perf/services.py).
        Allocations "allocations" GET Measuring None;
    }
    "/__test/panic" [b"__test", b"panic"] {
        /// `GET /__test/panic`: a handler that panics (only with `--test-routes`).
        TestPanic "test_panic" GET Test None;
    }
    "/__test/sleep" [b"__test", b"sleep"] {
        /// `GET /__test/sleep?ms=N`: a handler that takes N ms (only with `--test-routes`).
        TestSleep "test_sleep" GET Test None;
    }
    preflight:
        /// `OPTIONS` on any `/api` path but the log service's: a CORS preflight.
        Preflight "preflight" "/api/*" Api Api;
}

impl Route {
    /// Every route's metrics labels, by index.
    pub const LABELS: [crate::metrics::RouteLabel; Route::ALL.len()] = {
        let mut labels = [("", ""); Route::ALL.len()];
        let mut i = 0;
        while i < labels.len() {
            labels[i] = (Route::ALL[i].name(), Route::ALL[i].pattern());
            i += 1;
        }
        labels
    };
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

/// The route for each method a path has; `allow` lists them for a 405.
struct Methods {
    get: Option<Route>,
    post: Option<Route>,
    put: Option<Route>,
    delete: Option<Route>,
    allow: &'static str,
}

impl Methods {
    /// The methods of a path's routes, and their Allow list.
    const fn of(routes: &[Route]) -> Methods {
        let mut m = Methods { get: None, post: None, put: None, delete: None, allow: "" };
        let mut bits = 0;
        let mut i = 0;
        while i < routes.len() {
            match routes[i].method() {
                Method::Get => {
                    m.get = Some(routes[i]);
                    bits |= 1;
                }
                Method::Post => {
                    m.post = Some(routes[i]);
                    bits |= 2;
                }
                Method::Put => {
                    m.put = Some(routes[i]);
                    bits |= 4;
                }
                Method::Delete => {
                    m.delete = Some(routes[i]);
                    bits |= 8;
                }
                _ => panic!("a table route answers GET, POST, PUT or DELETE"),
            }
            i += 1;
        }
        m.allow = ALLOW[bits];
        m
    }
}

/// The Allow value of each set of methods (GET, POST, PUT, DELETE as bits 0–3).
const ALLOW: [&str; 16] = [
    "",
    "GET, HEAD",
    "POST",
    "GET, HEAD, POST",
    "PUT",
    "GET, HEAD, PUT",
    "POST, PUT",
    "GET, HEAD, POST, PUT",
    "DELETE",
    "GET, HEAD, DELETE",
    "POST, DELETE",
    "GET, HEAD, POST, DELETE",
    "PUT, DELETE",
    "GET, HEAD, PUT, DELETE",
    "POST, PUT, DELETE",
    "GET, HEAD, POST, PUT, DELETE",
];

/// Finds the route for a request. The fault-injection routes exist only when
/// `test_routes` is set, the allocation count only in its build.
pub fn route(method: Method, path: &[u8], test_routes: bool) -> Result<Route, AppError> {
    // The benchmarks' one-segment GETs, matched whole before the walk below
    // (which gives the same answers: `hot_paths_route_as_the_walk_does`).
    // Splitting the path was 2.5 % of pipelined /plaintext's CPU (perf).
    if method == Method::Get {
        match path {
            b"/plaintext" => return Ok(Route::Plaintext),
            b"/json" => return Ok(Route::Json),
            b"/health" => return Ok(Route::Health),
            b"/db" => return Ok(Route::Db),
            b"/fortunes" => return Ok(Route::Fortunes),
            _ => {}
        }
    }
    walk(method, path, test_routes)
}

/// Routes by the path's segments: every route, every method.
fn walk(method: Method, path: &[u8], test_routes: bool) -> Result<Route, AppError> {
    let segments = Segments::split(path).ok_or(AppError::NotFound)?;
    let segments = segments.as_slice();
    let methods = methods(segments).ok_or(AppError::NotFound)?;
    // The log service is for servers, not pages: no preflight is granted.
    if method == Method::Options && matches!(segments, [b"api", ..]) && !matches!(segments, [b"api", b"logs"]) {
        return Ok(Route::Preflight);
    }
    let found = match method {
        Method::Get | Method::Head => methods.get,
        Method::Post => methods.post,
        Method::Put => methods.put,
        Method::Delete => methods.delete,
        _ => None,
    };
    let present = |route: Route| match route.class() {
        Class::Measuring => cfg!(feature = "count-allocations"),
        Class::Test => test_routes,
        _ => true,
    };
    // A route that is not there is not there for any method.
    let any = [methods.get, methods.post, methods.put, methods.delete];
    if !any.into_iter().flatten().any(present) {
        return Err(AppError::NotFound);
    }
    found.ok_or(AppError::MethodNotAllowed { allow: methods.allow })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_route_at_its_index() {
        for (i, route) in Route::ALL.iter().enumerate() {
            assert_eq!(*route as usize, i, "{route:?}");
            assert!(route.pattern().starts_with('/'));
        }
        assert_eq!(Route::CreateArticle.name(), "create_article");
    }

    #[test]
    fn hot_paths_route_as_the_walk_does() {
        for path in [&b"/plaintext"[..], b"/json", b"/health", b"/db", b"/fortunes"] {
            for test_routes in [false, true] {
                assert_eq!(route(Method::Get, path, test_routes), walk(Method::Get, path, test_routes));
                assert!(walk(Method::Get, path, test_routes).is_ok());
            }
        }
    }

    #[test]
    fn known_routes() {
        assert_eq!(route(Method::Get, b"/health", false), Ok(Route::Health));
        assert_eq!(route(Method::Head, b"/health", false), Ok(Route::Health));
        assert_eq!(route(Method::Get, b"/ready", false), Ok(Route::Ready));
        assert_eq!(route(Method::Get, b"/metrics", false), Ok(Route::Metrics));
        assert_eq!(route(Method::Get, b"/plaintext", false), Ok(Route::Plaintext));
        assert_eq!(route(Method::Get, b"/json", false), Ok(Route::Json));
        assert_eq!(route(Method::Post, b"/ingest", false), Ok(Route::Ingest));
        assert_eq!(route(Method::Post, b"/ingest/batch", false), Ok(Route::IngestBatch));
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
    fn api_routes() {
        use Method::*;
        let r = |m, p: &str| route(m, p.as_bytes(), false);
        assert_eq!(r(Post, "/api/users/login"), Ok(Route::Login));
        assert_eq!(r(Post, "/api/users"), Ok(Route::Register));
        assert_eq!(r(Get, "/api/user"), Ok(Route::CurrentUser));
        assert_eq!(r(Put, "/api/user"), Ok(Route::UpdateUser));
        assert_eq!(r(Get, "/api/profiles/jake"), Ok(Route::Profile));
        assert_eq!(r(Post, "/api/profiles/jake/follow"), Ok(Route::Follow));
        assert_eq!(r(Delete, "/api/profiles/jake/follow"), Ok(Route::Unfollow));
        assert_eq!(r(Get, "/api/articles"), Ok(Route::ListArticles));
        assert_eq!(r(Post, "/api/articles"), Ok(Route::CreateArticle));
        assert_eq!(r(Get, "/api/articles/feed"), Ok(Route::Feed));
        assert_eq!(r(Get, "/api/articles/how-to"), Ok(Route::Article));
        assert_eq!(r(Put, "/api/articles/how-to"), Ok(Route::UpdateArticle));
        assert_eq!(r(Delete, "/api/articles/how-to"), Ok(Route::DeleteArticle));
        assert_eq!(r(Post, "/api/articles/how-to/comments"), Ok(Route::AddComment));
        assert_eq!(r(Get, "/api/articles/how-to/comments"), Ok(Route::Comments));
        assert_eq!(r(Delete, "/api/articles/how-to/comments/7"), Ok(Route::DeleteComment));
        assert_eq!(r(Post, "/api/articles/how-to/favorite"), Ok(Route::Favorite));
        assert_eq!(r(Delete, "/api/articles/how-to/favorite"), Ok(Route::Unfavorite));
        assert_eq!(r(Get, "/api/tags"), Ok(Route::Tags));
        assert_eq!(r(Get, "/api/ids"), Ok(Route::Ids));
        assert_eq!(r(Get, "/api/ids/123"), Ok(Route::DecodeId));
        assert_eq!(r(Get, "/api/logs"), Ok(Route::Logs));
        assert_eq!(r(Options, "/api/articles/x"), Ok(Route::Preflight));
        assert_eq!(r(Delete, "/api/user"), Err(AppError::MethodNotAllowed { allow: "GET, HEAD, PUT" }));
        assert_eq!(r(Get, "/api/nope"), Err(AppError::NotFound));
        assert_eq!(r(Options, "/api/nope"), Err(AppError::NotFound));
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
