//! The static router: a `match` on path segments, then on the method.
//!
//! The path is split on `/` into a fixed array of borrowed segments on the
//! stack, and routes are slice patterns over it, so a path parameter is just a
//! binding in a pattern (`[b"api", b"articles", slug]`) that borrows from the
//! request buffer: routing never allocates. An unknown path is 404; a known path
//! with a method it does not have is 405 with the methods it does have. HEAD is
//! allowed wherever GET is (RFC 9110 §9.3.2).

use swiftlet_protocol::Method;

use crate::http::error::AppError;

/// Paths with more segments than this match no route.
pub const MAX_SEGMENTS: usize = 8;

/// A matched route. Routes with path parameters will carry them as borrowed
/// byte slices (see the `segments_bind_parameters_without_copying` test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    /// `GET /ready`: 200 only when PostgreSQL and Redis answer.
    Ready,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    Plaintext,
    Json,
    /// `POST /ingest`: one log event.
    Ingest,
    /// `POST /ingest/batch`: log events as NDJSON.
    IngestBatch,
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
    // The product API (shared/conduit-api.md §3), in the spec's order.
    /// `POST /api/users/login`
    Login,
    /// `POST /api/users`
    Register,
    /// `GET /api/user`
    CurrentUser,
    /// `PUT /api/user`
    UpdateUser,
    /// `GET /api/profiles/:username`
    Profile,
    /// `POST /api/profiles/:username/follow`
    Follow,
    /// `DELETE /api/profiles/:username/follow`
    Unfollow,
    /// `GET /api/articles`
    ListArticles,
    /// `GET /api/articles/feed`
    Feed,
    /// `GET /api/articles/:slug`
    Article,
    /// `POST /api/articles`
    CreateArticle,
    /// `PUT /api/articles/:slug`
    UpdateArticle,
    /// `DELETE /api/articles/:slug`
    DeleteArticle,
    /// `POST /api/articles/:slug/comments`
    AddComment,
    /// `GET /api/articles/:slug/comments`
    Comments,
    /// `DELETE /api/articles/:slug/comments/:id`
    DeleteComment,
    /// `POST /api/articles/:slug/favorite`
    Favorite,
    /// `DELETE /api/articles/:slug/favorite`
    Unfavorite,
    /// `GET /api/tags`
    Tags,
    /// `GET /api/ids?count=N`: new time-ordered IDs.
    Ids,
    /// `GET /api/ids/:id`: an ID's parts.
    DecodeId,
    /// `GET /api/logs`: ingested events, newest first.
    Logs,
    /// `POST /api/videos`: an upload, streamed to object storage.
    CreateVideo,
    /// `GET /api/videos?author=&limit=&cursor=`
    ListVideos,
    /// `GET /api/videos/feed`: videos by the authors the caller follows.
    VideoFeed,
    /// `GET /api/videos/:id`
    Video,
    /// `DELETE /api/videos/:id`
    DeleteVideo,
    /// `GET /api/videos/:id/content`: the video's bytes, with Range.
    VideoContent,
    /// `OPTIONS` on any `/api` path: a CORS preflight.
    Preflight,
    /// `GET /__allocations`: heap allocations so far (only in the
    /// `count-allocations` build, for perf/services.py).
    Allocations,
    /// `GET /__test/panic`: a handler that panics (only with `--test-routes`).
    TestPanic,
    /// `GET /__test/sleep?ms=N`: a handler that takes N ms (only with `--test-routes`).
    TestSleep,
}

impl Route {
    /// Every route, in declaration order: `Route::ALL[r as usize] == r`.
    pub const ALL: [Route; 44] = [
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::Plaintext,
        Route::Json,
        Route::Ingest,
        Route::IngestBatch,
        Route::Db,
        Route::Queries,
        Route::Updates,
        Route::Fortunes,
        Route::CachedQueries,
        Route::Login,
        Route::Register,
        Route::CurrentUser,
        Route::UpdateUser,
        Route::Profile,
        Route::Follow,
        Route::Unfollow,
        Route::ListArticles,
        Route::Feed,
        Route::Article,
        Route::CreateArticle,
        Route::UpdateArticle,
        Route::DeleteArticle,
        Route::AddComment,
        Route::Comments,
        Route::DeleteComment,
        Route::Favorite,
        Route::Unfavorite,
        Route::Tags,
        Route::Ids,
        Route::DecodeId,
        Route::Logs,
        Route::CreateVideo,
        Route::ListVideos,
        Route::VideoFeed,
        Route::Video,
        Route::DeleteVideo,
        Route::VideoContent,
        Route::Preflight,
        Route::Allocations,
        Route::TestPanic,
        Route::TestSleep,
    ];

    /// The route's path pattern, which metrics label requests with (several
    /// routes share one; the method tells them apart).
    pub const fn pattern(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Metrics => "/metrics",
            Route::Plaintext => "/plaintext",
            Route::Json => "/json",
            Route::Ingest => "/ingest",
            Route::IngestBatch => "/ingest/batch",
            Route::Db => "/db",
            Route::Queries => "/queries",
            Route::Updates => "/updates",
            Route::Fortunes => "/fortunes",
            Route::CachedQueries => "/cached-queries",
            Route::Login => "/api/users/login",
            Route::Register => "/api/users",
            Route::CurrentUser => "/api/user",
            Route::UpdateUser => "/api/user",
            Route::Profile => "/api/profiles/:username",
            Route::Follow => "/api/profiles/:username/follow",
            Route::Unfollow => "/api/profiles/:username/follow",
            Route::ListArticles => "/api/articles",
            Route::Feed => "/api/articles/feed",
            Route::Article => "/api/articles/:slug",
            Route::CreateArticle => "/api/articles",
            Route::UpdateArticle => "/api/articles/:slug",
            Route::DeleteArticle => "/api/articles/:slug",
            Route::AddComment => "/api/articles/:slug/comments",
            Route::Comments => "/api/articles/:slug/comments",
            Route::DeleteComment => "/api/articles/:slug/comments/:id",
            Route::Favorite => "/api/articles/:slug/favorite",
            Route::Unfavorite => "/api/articles/:slug/favorite",
            Route::Tags => "/api/tags",
            Route::Ids => "/api/ids",
            Route::DecodeId => "/api/ids/:id",
            Route::Logs => "/api/logs",
            Route::CreateVideo => "/api/videos",
            Route::ListVideos => "/api/videos",
            Route::VideoFeed => "/api/videos/feed",
            Route::Video => "/api/videos/:id",
            Route::DeleteVideo => "/api/videos/:id",
            Route::VideoContent => "/api/videos/:id/content",
            Route::Preflight => "/api/*",
            Route::Allocations => "/__allocations",
            Route::TestPanic => "/__test/panic",
            Route::TestSleep => "/__test/sleep",
        }
    }

    /// A short snake-case name for metrics labels.
    pub const fn name(self) -> &'static str {
        ROUTE_NAMES[self as usize]
    }

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

// The last variant closes the list: a route added after it without a place in
// ALL fails to compile here.
const _: () = assert!(Route::TestSleep as usize + 1 == Route::ALL.len());

const ROUTE_NAMES: [&str; 44] = [
    "health",
    "ready",
    "metrics",
    "plaintext",
    "json",
    "ingest",
    "ingest_batch",
    "db",
    "queries",
    "updates",
    "fortunes",
    "cached_queries",
    "login",
    "register",
    "current_user",
    "update_user",
    "profile",
    "follow",
    "unfollow",
    "list_articles",
    "feed",
    "article",
    "create_article",
    "update_article",
    "delete_article",
    "add_comment",
    "comments",
    "delete_comment",
    "favorite",
    "unfavorite",
    "tags",
    "ids",
    "decode_id",
    "logs",
    "create_video",
    "list_videos",
    "video_feed",
    "video",
    "delete_video",
    "video_content",
    "preflight",
    "allocations",
    "test_panic",
    "test_sleep",
];

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

const NONE: Methods = Methods { get: None, post: None, put: None, delete: None, allow: "" };

const fn get(route: Route) -> Methods {
    Methods { get: Some(route), allow: "GET, HEAD", ..NONE }
}

const fn post(route: Route) -> Methods {
    Methods { post: Some(route), allow: "POST", ..NONE }
}

/// Routes under `/api`. `feed` is matched before `:slug`, so it is never a slug.
fn api_route(rest: &[&[u8]]) -> Option<Methods> {
    use Route::*;
    Some(match rest {
        [b"users", b"login"] => post(Login),
        [b"users"] => post(Register),
        [b"user"] => Methods { get: Some(CurrentUser), put: Some(UpdateUser), allow: "GET, HEAD, PUT", ..NONE },
        [b"profiles", _] => get(Profile),
        [b"profiles", _, b"follow"] => {
            Methods { post: Some(Follow), delete: Some(Unfollow), allow: "POST, DELETE", ..NONE }
        }
        [b"articles"] => {
            Methods { get: Some(ListArticles), post: Some(CreateArticle), allow: "GET, HEAD, POST", ..NONE }
        }
        [b"articles", b"feed"] => get(Feed),
        [b"articles", _] => Methods {
            get: Some(Article),
            put: Some(UpdateArticle),
            delete: Some(DeleteArticle),
            allow: "GET, HEAD, PUT, DELETE",
            ..NONE
        },
        [b"articles", _, b"comments"] => {
            Methods { get: Some(Comments), post: Some(AddComment), allow: "GET, HEAD, POST", ..NONE }
        }
        [b"articles", _, b"comments", _] => Methods { delete: Some(DeleteComment), allow: "DELETE", ..NONE },
        [b"articles", _, b"favorite"] => {
            Methods { post: Some(Favorite), delete: Some(Unfavorite), allow: "POST, DELETE", ..NONE }
        }
        [b"tags"] => get(Tags),
        [b"ids"] => get(Ids),
        [b"ids", _] => get(DecodeId),
        [b"logs"] => get(Logs),
        [b"videos"] => Methods { get: Some(ListVideos), post: Some(CreateVideo), allow: "GET, HEAD, POST", ..NONE },
        [b"videos", b"feed"] => get(VideoFeed),
        [b"videos", _] => Methods { get: Some(Video), delete: Some(DeleteVideo), allow: "GET, HEAD, DELETE", ..NONE },
        [b"videos", _, b"content"] => get(VideoContent),
        _ => return None,
    })
}

/// Finds the route for a request. The fault-injection routes exist only when
/// `test_routes` is set.
pub fn route(method: Method, path: &[u8], test_routes: bool) -> Result<Route, AppError> {
    let segments = Segments::split(path).ok_or(AppError::NotFound)?;
    let methods = match segments.as_slice() {
        [b"api", rest @ ..] => {
            let methods = api_route(rest).ok_or(AppError::NotFound)?;
            // The log service is for servers, not pages: no preflight is granted.
            if method == Method::Options && rest != [b"logs"] {
                return Ok(Route::Preflight);
            }
            methods
        }
        other => benchmark_route(other, test_routes).ok_or(AppError::NotFound)?,
    };
    let found = match method {
        Method::Get | Method::Head => methods.get,
        Method::Post => methods.post,
        Method::Put => methods.put,
        Method::Delete => methods.delete,
        _ => None,
    };
    found.ok_or(AppError::MethodNotAllowed { allow: methods.allow })
}

/// The benchmark and operations routes outside `/api`.
fn benchmark_route(segments: &[&[u8]], test_routes: bool) -> Option<Methods> {
    Some(match segments {
        [b"health"] => get(Route::Health),
        [b"ready"] => get(Route::Ready),
        [b"metrics"] => get(Route::Metrics),
        [b"plaintext"] => get(Route::Plaintext),
        [b"json"] => get(Route::Json),
        [b"ingest"] => post(Route::Ingest),
        [b"ingest", b"batch"] => post(Route::IngestBatch),
        [b"db"] => get(Route::Db),
        [b"queries"] => get(Route::Queries),
        [b"updates"] => get(Route::Updates),
        [b"fortunes"] => get(Route::Fortunes),
        [b"cached-queries"] => get(Route::CachedQueries),
        [b"__allocations"] if cfg!(feature = "count-allocations") => get(Route::Allocations),
        [b"__test", b"panic"] if test_routes => get(Route::TestPanic),
        [b"__test", b"sleep"] if test_routes => get(Route::TestSleep),
        _ => return None,
    })
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
