//! The product API (shared/conduit-api.md) over real sockets, against a real
//! PostgreSQL (a throwaway database per test) and Redis: every endpoint, its
//! error paths and its authorization rules, checked field by field.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::storage::{eventually, free_port, redis, redis_addr, PrivateRedis, TestDb};
use common::{Client, TestServer, TEST_JWT_SECRET};
use simd_json::prelude::*;
use simd_json::OwnedValue as Json;

struct Api {
    _server: TestServer,
    client: Client,
    db: TestDb,
}

/// swiftlet on a fresh database, once the API answers (the migrations ran).
fn start() -> Api {
    start_with(&redis_addr(), &[])
}

fn start_with(redis_at: &str, args: &[&str]) -> Api {
    let db = TestDb::create();
    let redis_url = format!("redis://{redis_at}");
    let server = TestServer::start_with_env(args, &[("DATABASE_URL", &db.url), ("REDIS_URL", &redis_url)]);
    let mut client = server.connect();
    // Ready when the migrations ran and the node holds an id for new rows' keys.
    let ready = eventually(Duration::from_secs(30), || {
        client.get("/api/tags").status == 200 && client.get("/api/ids").status == 200
    });
    assert!(ready, "/api/tags or /api/ids never answered 200; log: {:#?}", server.log_lines());
    Api { _server: server, client, db }
}

struct Reply {
    status: u16,
    json: Json,
    content_type: Option<String>,
}

impl Api {
    fn call(&mut self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        // Like real clients: a JSON content type on every request, bodies or not.
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Requested-With: XMLHttpRequest\r\n"
        );
        if let Some(token) = token {
            raw.push_str(&format!("Authorization: Token {token}\r\n"));
        }
        let body = body.unwrap_or("");
        raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let res = self.client.request(raw.as_bytes());
        let json = if res.body.is_empty() {
            Json::null()
        } else {
            let mut bytes = res.body.clone();
            simd_json::to_owned_value(&mut bytes).unwrap_or_else(|e| panic!("{e}: {}", res.text()))
        };
        Reply { status: res.status, json, content_type: res.header("content-type").map(str::to_owned) }
    }

    fn get(&mut self, path: &str, token: Option<&str>) -> Reply {
        self.call("GET", path, token, None)
    }

    /// Registers `name` (e-mail `name@example.com`, password `pw-name-secret`); returns the token.
    fn register(&mut self, name: &str) -> String {
        let body =
            format!(r#"{{"user":{{"username":"{name}","email":"{name}@example.com","password":"pw-{name}-secret"}}}}"#);
        let r = self.call("POST", "/api/users", None, Some(&body));
        assert_eq!(r.status, 201, "{}", r.json);
        r.json["user"]["token"].as_str().unwrap().to_owned()
    }

    fn create_article(&mut self, token: &str, title: &str, tags: &[&str]) -> Json {
        let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
        let body = format!(
            r#"{{"article":{{"title":"{title}","description":"about {title}","body":"text of {title}","tagList":[{}]}}}}"#,
            tags.join(",")
        );
        let r = self.call("POST", "/api/articles", Some(token), Some(&body));
        assert_eq!(r.status, 201, "{}", r.json);
        r.json["article"].clone()
    }
}

/// `{"errors":{key:[message]}}` with exactly this key and message.
fn assert_error(r: &Reply, status: u16, key: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    let messages = r.json["errors"].get(key).unwrap_or_else(|| panic!("no errors.{key} in {}", r.json));
    assert_eq!(messages.as_array().unwrap()[0].as_str(), Some(message), "{}", r.json);
}

/// The pattern Conduit clients check timestamps against (§6.5).
fn assert_timestamp(v: &Json) {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp {v} is not a string"));
    assert!(swiftlet_protocol::date::is_rfc3339_millis(s), "timestamp {s:?}");
}

/// The counters of migration 0003 agree with the rows they count.
fn assert_counters(db: &TestDb) {
    let checks = [
        "SELECT (SELECT coalesce(sum(n), 0) FROM article_count_shards) = (SELECT count(*) FROM articles)",
        "SELECT bool_and(u.article_count = (SELECT count(*) FROM articles a WHERE a.author_id = u.id)) FROM users u",
        "SELECT coalesce(bool_and(t.article_count = (SELECT count(*) FROM article_tags x WHERE x.tag = t.name)), true) \
         FROM tags t",
    ];
    for check in checks {
        assert_eq!(db.sql(check)[0][0].as_deref(), Some("t"), "{check}");
    }
}

fn keys(v: &Json) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn register_login_and_the_current_user() {
    let mut api = start();
    let r = api.call(
        "POST",
        "/api/users",
        None,
        Some(r#"{"user":{"username":"jake","email":"jake@jake.jake","password":"jakejake","role":"admin"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.content_type.as_deref(), Some("application/json; charset=utf-8"));
    let user = &r.json["user"];
    assert_eq!(keys(user), ["bio", "email", "image", "token", "username"]);
    assert_eq!(user["username"].as_str(), Some("jake"));
    assert_eq!(user["email"].as_str(), Some("jake@jake.jake"));
    assert!(user["bio"].is_null() && user["image"].is_null());
    let token = user["token"].as_str().unwrap().to_owned();
    // Only a hash is stored.
    let stored = api.db.sql("SELECT password_hash FROM users WHERE username = 'jake'");
    let stored = stored[0][0].as_deref().unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains("jakejake"), "{stored}");

    // Duplicates, named by field; the e-mail compares case-insensitively.
    let dup = r#"{"user":{"username":"jake","email":"other@x.y","password":"password1"}}"#;
    assert_error(&api.call("POST", "/api/users", None, Some(dup)), 422, "username", "has already been taken");
    let dup = r#"{"user":{"username":"jacob","email":"JAKE@jake.jake","password":"password1"}}"#;
    assert_error(&api.call("POST", "/api/users", None, Some(dup)), 422, "email", "has already been taken");
    // Validation.
    for (body, key) in [
        (r#"{"user":{"email":"a@b","password":"p"}}"#, "username"),
        (r#"{"user":{"username":"","email":"a@b","password":"p"}}"#, "username"),
        (r#"{"user":{"username":"a","email":"a@b"}}"#, "password"),
        (r#"{"user":{"username":"a","email":5,"password":"p"}}"#, "email"),
        (r#"{"user":{"username":"a","email":"no-at-sign","password":"p"}}"#, "email"),
        // Eight characters at least, for a new password.
        (r#"{"user":{"username":"a","email":"a@b","password":"seven-7"}}"#, "password"),
        (r#"{"person":{}}"#, "user"),
        (r#"{"user":"#, "body"),
        ("", "body"),
    ] {
        let r = api.call("POST", "/api/users", None, Some(body));
        assert_eq!(r.status, 422, "{body}: {}", r.json);
        assert!(r.json["errors"].get(key).is_some(), "{body}: {}", r.json);
    }

    // Login.
    let r = api.call(
        "POST",
        "/api/users/login",
        None,
        Some(r#"{"user":{"email":"jake@jake.jake","password":"jakejake"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["user"]["username"].as_str(), Some("jake"));
    let login_token = r.json["user"]["token"].as_str().unwrap().to_owned();
    for body in [
        r#"{"user":{"email":"jake@jake.jake","password":"wrong"}}"#,
        r#"{"user":{"email":"nobody@jake.jake","password":"jakejake"}}"#,
    ] {
        assert_error(&api.call("POST", "/api/users/login", None, Some(body)), 401, "email or password", "is invalid");
    }
    let r = api.call("POST", "/api/users/login", None, Some(r#"{"user":{"email":"jake@jake.jake"}}"#));
    assert_error(&r, 422, "password", "can't be blank");

    // The current user, with either token.
    for t in [&token, &login_token] {
        let r = api.get("/api/user", Some(t));
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["user"]["email"].as_str(), Some("jake@jake.jake"));
        assert_eq!(r.json["user"]["token"].as_str(), Some(t.as_str()));
    }
    assert_error(&api.get("/api/user", None), 401, "token", "is missing");
    assert_error(&api.get("/api/user", Some("garbage")), 401, "token", "is invalid or expired");
}

#[test]
fn update_user_is_partial_and_excludes_the_caller_from_uniqueness() {
    let mut api = start();
    let token = api.register("jake");
    api.register("anna");
    // Setting the e-mail to the one it already has succeeds.
    let r = api.call(
        "PUT",
        "/api/user",
        Some(&token),
        Some(r#"{"user":{"email":"jake@example.com","bio":"I like to skateboard"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["user"]["bio"].as_str(), Some("I like to skateboard"));
    assert!(r.json["user"]["image"].is_null());
    // Only what is sent changes; null clears.
    let r = api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"image":"https://i.example/j.png"}}"#));
    assert_eq!(r.json["user"]["bio"].as_str(), Some("I like to skateboard"));
    assert_eq!(r.json["user"]["image"].as_str(), Some("https://i.example/j.png"));
    let r = api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"bio":null}}"#));
    assert!(r.json["user"]["bio"].is_null(), "{}", r.json);
    assert_eq!(r.json["user"]["image"].as_str(), Some("https://i.example/j.png"));
    // Another user's name or e-mail is taken.
    let r = api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"username":"anna"}}"#));
    assert_error(&r, 422, "username", "has already been taken");
    let r = api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"email":"ANNA@example.com"}}"#));
    assert_error(&r, 422, "email", "has already been taken");
    let r = api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"username":""}}"#));
    assert_error(&r, 422, "username", "can't be blank");
    // A new password works at login; the old one no longer does.
    let r =
        api.call("PUT", "/api/user", Some(&token), Some(r#"{"user":{"password":"new-secret","username":"jacob"}}"#));
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["user"]["username"].as_str(), Some("jacob"));
    let login = |pw: &str| format!(r#"{{"user":{{"email":"jake@example.com","password":"{pw}"}}}}"#);
    assert_eq!(api.call("POST", "/api/users/login", None, Some(&login("new-secret"))).status, 200);
    assert_eq!(api.call("POST", "/api/users/login", None, Some(&login("pw-jake"))).status, 401);
    assert_eq!(api.call("PUT", "/api/user", None, Some(r#"{"user":{"bio":"x"}}"#)).status, 401);
}

#[test]
fn profiles_and_follows() {
    let mut api = start();
    let jake = api.register("jake");
    api.register("anna");
    let r = api.get("/api/profiles/anna", None);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(keys(&r.json["profile"]), ["bio", "following", "image", "username"]);
    assert_eq!(r.json["profile"]["following"].as_bool(), Some(false));
    // Follow: idempotent; an irrelevant body is ignored.
    for _ in 0..2 {
        let r = api.call("POST", "/api/profiles/anna/follow", Some(&jake), Some(r#"{"anything":1}"#));
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["profile"]["following"].as_bool(), Some(true));
    }
    assert_eq!(api.db.sql("SELECT count(*) FROM follows")[0][0].as_deref(), Some("1"));
    assert_eq!(api.get("/api/profiles/anna", Some(&jake)).json["profile"]["following"].as_bool(), Some(true));
    assert_eq!(api.get("/api/profiles/anna", None).json["profile"]["following"].as_bool(), Some(false));
    for _ in 0..2 {
        let r = api.call("DELETE", "/api/profiles/anna/follow", Some(&jake), None);
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["profile"]["following"].as_bool(), Some(false));
    }
    assert_error(&api.get("/api/profiles/nobody", None), 404, "profile", "not found");
    assert_error(&api.call("POST", "/api/profiles/nobody/follow", Some(&jake), None), 404, "profile", "not found");
    assert_error(&api.call("DELETE", "/api/profiles/nobody/follow", Some(&jake), None), 404, "profile", "not found");
    assert_error(
        &api.call("POST", "/api/profiles/jake/follow", Some(&jake), None),
        422,
        "profile",
        "you cannot follow yourself",
    );
    assert_eq!(api.call("POST", "/api/profiles/anna/follow", None, None).status, 401);
}

#[test]
fn article_crud_and_authorization() {
    let mut api = start();
    let jake = api.register("jake");
    let anna = api.register("anna");
    let article = api.create_article(&jake, "How to train your dragon", &["training", "dragons", "training"]);
    assert_eq!(
        keys(&article),
        [
            "author",
            "body",
            "createdAt",
            "description",
            "favorited",
            "favoritesCount",
            "slug",
            "tagList",
            "title",
            "updatedAt"
        ]
    );
    assert_eq!(article["slug"].as_str(), Some("how-to-train-your-dragon"));
    let tags: Vec<&str> = article["tagList"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tags, ["dragons", "training"]);
    assert_timestamp(&article["createdAt"]);
    assert_eq!(article["createdAt"], article["updatedAt"]);
    assert_eq!(article["favorited"].as_bool(), Some(false));
    assert_eq!(article["favoritesCount"].as_i64(), Some(0));
    assert_eq!(article["author"]["username"].as_str(), Some("jake"));
    assert_eq!(article["author"]["following"].as_bool(), Some(false));

    // The same title again gets a different slug instead of an error.
    let again = api.create_article(&anna, "How to train your dragon", &[]);
    let again_slug = again["slug"].as_str().unwrap().to_owned();
    assert!(again_slug.starts_with("how-to-train-your-dragon-"), "{again_slug}");
    assert_eq!(again["tagList"].as_array().unwrap().len(), 0);

    // Read, anonymously and as someone who follows the author.
    let r = api.get("/api/articles/how-to-train-your-dragon", None);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["article"]["body"].as_str(), Some("text of How to train your dragon"));
    api.call("POST", "/api/profiles/jake/follow", Some(&anna), None);
    let r = api.get("/api/articles/how-to-train-your-dragon", Some(&anna));
    assert_eq!(r.json["article"]["author"]["following"].as_bool(), Some(true));
    assert_error(&api.get("/api/articles/nope", None), 404, "article", "not found");

    // Validation.
    let r = api.call(
        "POST",
        "/api/articles",
        Some(&jake),
        Some(r#"{"article":{"title":" ","description":"d","body":"b"}}"#),
    );
    assert_error(&r, 422, "title", "can't be blank");
    let r = api.call(
        "POST",
        "/api/articles",
        Some(&jake),
        Some(r#"{"article":{"title":"t","description":"d","body":"b","tagList":"x"}}"#),
    );
    assert_error(&r, 422, "tagList", "must be an array of strings");
    assert_eq!(api.call("POST", "/api/articles", None, Some(r#"{"article":{}}"#)).status, 401);

    // Only the author may update; a new title means a new slug.
    let path = "/api/articles/how-to-train-your-dragon";
    let r = api.call("PUT", path, Some(&anna), Some(r#"{"article":{"body":"mine now"}}"#));
    assert_error(&r, 403, "article", "may only be changed by its author");
    std::thread::sleep(Duration::from_millis(5));
    let r = api.call("PUT", path, Some(&jake), Some(r#"{"article":{"title":"Did you train your dragon?"}}"#));
    assert_eq!(r.status, 200, "{}", r.json);
    let updated = &r.json["article"];
    assert_eq!(updated["slug"].as_str(), Some("did-you-train-your-dragon"));
    assert_eq!(updated["body"].as_str(), Some("text of How to train your dragon"));
    assert_eq!(updated["createdAt"], article["createdAt"]);
    assert_ne!(updated["updatedAt"], article["updatedAt"]);
    assert_eq!(api.get(path, None).status, 404);
    // The same title again keeps the slug; only the body changes.
    let r = api.call(
        "PUT",
        "/api/articles/did-you-train-your-dragon",
        Some(&jake),
        Some(r#"{"article":{"title":"Did you train your dragon?","body":"new"}}"#),
    );
    assert_eq!(r.json["article"]["slug"].as_str(), Some("did-you-train-your-dragon"));
    assert_eq!(r.json["article"]["body"].as_str(), Some("new"));
    assert_eq!(api.call("PUT", "/api/articles/nope", Some(&jake), Some(r#"{"article":{}}"#)).status, 404);

    // Only the author may delete; the comments, favorites and tags go with it.
    let slug = "/api/articles/did-you-train-your-dragon";
    api.call("POST", &format!("{slug}/comments"), Some(&anna), Some(r#"{"comment":{"body":"nice"}}"#));
    api.call("POST", &format!("{slug}/favorite"), Some(&anna), None);
    assert_error(&api.call("DELETE", slug, Some(&anna), None), 403, "article", "may only be changed by its author");
    let r = api.call("DELETE", slug, Some(&jake), None);
    assert_eq!(r.status, 204);
    assert_eq!(api.get(slug, None).status, 404);
    assert_eq!(api.call("DELETE", slug, Some(&jake), None).status, 404);
    for table in ["comments", "favorites", "article_tags"] {
        assert_eq!(api.db.sql(&format!("SELECT count(*) FROM {table}"))[0][0].as_deref(), Some("0"), "{table}");
    }
    assert_counters(&api.db);
}

#[test]
fn lists_filters_pagination_and_the_feed() {
    let mut api = start();
    let jake = api.register("jake");
    let anna = api.register("anna");
    let reader = api.register("reader");
    for i in 0..5 {
        api.create_article(&jake, &format!("Jake {i}"), &["rust", if i % 2 == 0 { "even" } else { "odd" }]);
    }
    for i in 0..3 {
        api.create_article(&anna, &format!("Anna {i}"), &["go"]);
    }
    let titles = |r: &Reply| -> Vec<String> {
        r.json["articles"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect()
    };
    let r = api.get("/api/articles", None);
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["articlesCount"].as_i64(), Some(8));
    assert_eq!(titles(&r), ["Anna 2", "Anna 1", "Anna 0", "Jake 4", "Jake 3", "Jake 2", "Jake 1", "Jake 0"]);
    // List entries carry no body (§2.4), and everything else.
    let first = &r.json["articles"][0];
    assert!(first.get("body").is_none(), "{first}");
    assert_eq!(keys(first).len(), 9);

    let r = api.get("/api/articles?limit=3&offset=2", None);
    assert_eq!(titles(&r), ["Anna 0", "Jake 4", "Jake 3"]);
    assert_eq!(r.json["articlesCount"].as_i64(), Some(8), "the count ignores the page");
    assert_eq!(titles(&api.get("/api/articles?offset=100", None)).len(), 0);
    // Absurd offsets are an empty page, not an overflow.
    for path in ["/api/articles?offset=9223372036854775807", "/api/articles/feed?offset=9223372036854775807"] {
        let r = api.get(path, Some(&reader));
        assert_eq!((r.status, titles(&r).len()), (200, 0), "{path}: {}", r.json);
    }
    assert_eq!(titles(&api.get("/api/articles?author=anna", None)), ["Anna 2", "Anna 1", "Anna 0"]);
    let r = api.get("/api/articles?tag=even", None);
    assert_eq!(titles(&r), ["Jake 4", "Jake 2", "Jake 0"]);
    assert_eq!(r.json["articlesCount"].as_i64(), Some(3));
    assert_eq!(titles(&api.get("/api/articles?tag=rust&author=anna", None)).len(), 0);
    assert_eq!(titles(&api.get("/api/articles?tag=rust&author=jake&limit=2", None)), ["Jake 4", "Jake 3"]);
    // Unknown filter values are an empty list, never a 404.
    for q in ["tag=nope", "author=nobody", "favorited=nobody"] {
        let r = api.get(&format!("/api/articles?{q}"), None);
        assert_eq!((r.status, r.json["articlesCount"].as_i64()), (200, Some(0)), "{q}");
    }
    for q in ["limit=0", "limit=x", "offset=-1", "limit=-5"] {
        let r = api.get(&format!("/api/articles?{q}"), None);
        assert_eq!(r.status, 422, "{q}: {}", r.json);
    }

    // favorited=<username>
    api.call("POST", "/api/articles/jake-1/favorite", Some(&reader), None);
    api.call("POST", "/api/articles/anna-0/favorite", Some(&reader), None);
    let r = api.get("/api/articles?favorited=reader", Some(&reader));
    assert_eq!(titles(&r), ["Anna 0", "Jake 1"]);
    assert!(r.json["articles"].as_array().unwrap().iter().all(|a| a["favorited"].as_bool() == Some(true)));
    assert_eq!(titles(&api.get("/api/articles?favorited=reader&tag=rust", None)), ["Jake 1"]);

    // The feed: articles by followed users only, newest first.
    let r = api.get("/api/articles/feed", Some(&reader));
    assert_eq!((r.status, r.json["articlesCount"].as_i64()), (200, Some(0)));
    api.call("POST", "/api/profiles/anna/follow", Some(&reader), None);
    let r = api.get("/api/articles/feed?limit=2", Some(&reader));
    assert_eq!(titles(&r), ["Anna 2", "Anna 1"]);
    assert_eq!(r.json["articlesCount"].as_i64(), Some(3));
    assert!(r.json["articles"][0]["author"]["following"].as_bool() == Some(true));
    // The author's own articles are not in their feed.
    assert_eq!(api.get("/api/articles/feed", Some(&anna)).json["articlesCount"].as_i64(), Some(0));
    assert_eq!(api.get("/api/articles/feed", None).status, 401);
    assert_counters(&api.db);
}

#[test]
fn favorites_are_counted_once_per_user() {
    let mut api = start();
    let jake = api.register("jake");
    let anna = api.register("anna");
    api.create_article(&jake, "Fav", &[]);
    for _ in 0..2 {
        let r = api.call("POST", "/api/articles/fav/favorite", Some(&anna), None);
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["article"]["favorited"].as_bool(), Some(true));
        assert_eq!(r.json["article"]["favoritesCount"].as_i64(), Some(1));
    }
    let r = api.call("POST", "/api/articles/fav/favorite", Some(&jake), None);
    assert_eq!(r.json["article"]["favoritesCount"].as_i64(), Some(2));
    let r = api.get("/api/articles/fav", None);
    assert_eq!(
        (r.json["article"]["favorited"].as_bool(), r.json["article"]["favoritesCount"].as_i64()),
        (Some(false), Some(2))
    );
    for _ in 0..2 {
        let r = api.call("DELETE", "/api/articles/fav/favorite", Some(&anna), None);
        assert_eq!(r.json["article"]["favorited"].as_bool(), Some(false));
        assert_eq!(r.json["article"]["favoritesCount"].as_i64(), Some(1));
    }
    assert_error(&api.call("POST", "/api/articles/nope/favorite", Some(&anna), None), 404, "article", "not found");
    assert_eq!(api.call("POST", "/api/articles/fav/favorite", None, None).status, 401);
}

#[test]
fn comments() {
    let mut api = start();
    let jake = api.register("jake");
    let anna = api.register("anna");
    api.create_article(&jake, "Talk", &[]);
    api.create_article(&jake, "Other", &[]);
    let r = api.call("POST", "/api/articles/talk/comments", Some(&anna), Some(r#"{"comment":{"body":"first"}}"#));
    assert_eq!(r.status, 200, "{}", r.json);
    let c = &r.json["comment"];
    assert_eq!(keys(c), ["author", "body", "createdAt", "id", "updatedAt"]);
    assert!(c["id"].is_i64() || c["id"].is_u64(), "{c}");
    assert_timestamp(&c["createdAt"]);
    assert_eq!(c["author"]["username"].as_str(), Some("anna"));
    let first = c["id"].as_i64().unwrap();
    let second = api
        .call("POST", "/api/articles/talk/comments", Some(&jake), Some(r#"{"comment":{"body":"second"}}"#))
        .json["comment"]["id"]
        .as_i64()
        .unwrap();
    let r = api.get("/api/articles/talk/comments", Some(&jake));
    let bodies: Vec<&str> =
        r.json["comments"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["first", "second"], "oldest first");
    assert_eq!(api.get("/api/articles/other/comments", None).json["comments"].as_array().unwrap().len(), 0);
    assert_error(&api.get("/api/articles/nope/comments", None), 404, "article", "not found");
    let r = api.call("POST", "/api/articles/nope/comments", Some(&anna), Some(r#"{"comment":{"body":"x"}}"#));
    assert_error(&r, 404, "article", "not found");
    let r = api.call("POST", "/api/articles/talk/comments", Some(&anna), Some(r#"{"comment":{"body":""}}"#));
    assert_error(&r, 422, "body", "can't be blank");

    // Deleting: only the comment's author, only through its own article.
    let path = |slug: &str, id: i64| format!("/api/articles/{slug}/comments/{id}");
    assert_error(
        &api.call("DELETE", &path("talk", first), Some(&jake), None),
        403,
        "comment",
        "may only be changed by its author",
    );
    assert_error(&api.call("DELETE", &path("other", first), Some(&anna), None), 404, "comment", "not found");
    assert_eq!(api.call("DELETE", "/api/articles/talk/comments/abc", Some(&anna), None).status, 404);
    assert_eq!(api.call("DELETE", &path("talk", first), None, None).status, 401);
    assert_eq!(api.call("DELETE", &path("talk", first), Some(&anna), None).status, 204);
    assert_eq!(api.call("DELETE", &path("talk", first), Some(&anna), None).status, 404);
    let r = api.get("/api/articles/talk/comments", None);
    let ids: Vec<i64> = r.json["comments"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [second]);
}

#[test]
fn users_and_articles_are_keyed_by_time_ordered_ids() {
    let mut api = start();
    let jake = api.register("jake");
    api.create_article(&jake, "Keyed", &[]);
    let token = api.register("anna");
    api.call("POST", "/api/articles/keyed/comments", Some(&token), Some(r#"{"comment":{"body":"hi"}}"#));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let ids = api.db.sql("SELECT id FROM users UNION ALL SELECT id FROM articles");
    assert_eq!(ids.len(), 3);
    for row in ids {
        let id = row[0].clone().unwrap();
        // Made by this node's generator just now: it decodes to the present.
        let r = api.get(&format!("/api/ids/{id}"), None);
        assert_eq!(r.status, 200, "{}", r.json);
        let made_ms = r.json["unix_ms"].as_i64().unwrap();
        assert!((now_ms - made_ms).abs() < 60_000, "id {id} decodes to {made_ms}, now is {now_ms}");
        assert!(id.parse::<i64>().unwrap() > 1 << 53, "{id} is not a 64-bit time-ordered id");
    }
    // Comment ids stay JSON-safe numbers (migration 0005 says why).
    let comment: i64 = api.db.sql("SELECT id FROM comments")[0][0].as_ref().unwrap().parse().unwrap();
    assert!(comment < 1 << 53);
}

#[test]
fn tags_lists_every_tag_in_use() {
    let mut api = start();
    assert_eq!(api.get("/api/tags", None).json["tags"].as_array().unwrap().len(), 0);
    let jake = api.register("jake");
    api.create_article(&jake, "A", &["rust", "db"]);
    api.create_article(&jake, "B", &["rust"]);
    let r = api.get("/api/tags", None);
    let tags: Vec<&str> = r.json["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tags, ["rust", "db"], "most used first");
    // A tag whose last article goes is no longer listed.
    let a = api.db.sql("SELECT slug FROM articles WHERE title = 'A'")[0][0].clone().unwrap();
    assert_eq!(api.call("DELETE", &format!("/api/articles/{a}"), Some(&jake), None).status, 204);
    let r = api.get("/api/tags", None);
    let tags: Vec<&str> = r.json["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tags, ["rust"]);
    assert_counters(&api.db);
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A token signed with the test server's secret, with any header and claims.
fn forge(header: &str, claims: &str) -> String {
    use hmac::Mac;
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TEST_JWT_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

#[test]
fn tokens_are_checked_on_every_route_that_reads_them() {
    let mut api = start();
    let jake = api.register("jake");
    let id = api.db.sql("SELECT id FROM users WHERE username = 'jake'")[0][0].clone().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let good = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &format!(r#"{{"sub":"{id}","exp":{}}}"#, now + 60));
    assert_eq!(api.get("/api/user", Some(&good)).status, 200, "the forge helper makes valid tokens");
    let expired = forge(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"{id}","exp":{}}}"#, now - 60));
    let none =
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(format!(r#"{{"sub":"{id}","exp":{}}}"#, now + 60).as_bytes()));
    let other_user = forge(r#"{"alg":"HS256"}"#, &format!(r#"{{"sub":"999999","exp":{}}}"#, now + 60));
    for bad in [&expired, &none, &format!("{jake}x")] {
        assert_error(&api.get("/api/user", Some(bad)), 401, "token", "is invalid or expired");
        // An optional route refuses a bad token rather than ignoring it.
        assert_eq!(api.get("/api/articles", Some(bad)).status, 401);
    }
    // A genuine token for a user who does not exist.
    assert_eq!(api.get("/api/user", Some(&other_user)).status, 401);
    // Bearer works as well as Token; other schemes do not.
    let res = api
        .client
        .request(format!("GET /api/user HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {jake}\r\n\r\n").as_bytes());
    assert_eq!(res.status, 200);
    let res = api
        .client
        .request(format!("GET /api/user HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {jake}\r\n\r\n").as_bytes());
    assert_eq!(res.status, 401);
}

#[test]
fn cors_preflight_and_headers() {
    let mut api = start();
    let res = api.client.request(b"OPTIONS /api/articles HTTP/1.1\r\nHost: t\r\nOrigin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n");
    assert_eq!(res.status, 204);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert!(res.header("access-control-allow-headers").unwrap().contains("Authorization"));
    assert!(res.header("access-control-allow-methods").unwrap().contains("PUT"));
    let res = api.client.get("/api/articles/nope");
    assert_eq!(res.status, 404);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"), "errors carry it too");
    assert_eq!(api.client.get("/health").header("access-control-allow-origin"), None);
}

#[test]
fn api_routes_answer_503_without_a_database() {
    let server = TestServer::start(&[]);
    let mut client = server.connect();
    let res = client.get("/api/articles");
    assert_eq!(res.status, 503, "{}", res.text());
    assert!(res.text().contains("database"), "{}", res.text());
}

fn body_of(r: &Reply) -> String {
    r.json["article"]["body"].as_str().unwrap_or_else(|| panic!("no article body in {}", r.json)).to_owned()
}

#[test]
fn anonymous_reads_are_cached_and_every_write_invalidates_them() {
    let mut api = start();
    let jake = api.register("jake");
    let anna = api.register("anna");
    api.create_article(&jake, "Cached", &["one"]);
    let path = "/api/articles/cached";
    assert_eq!(body_of(&api.get(path, None)), "text of Cached");
    let key = format!("swiftlet:{}:api:e:article:cached", api.db.name);
    let stored = eventually(Duration::from_secs(5), || {
        matches!(redis(&redis_addr(), &[b"EXISTS", key.as_bytes()]), swiftlet_protocol::resp::Reply::Integer(1))
    });
    assert!(stored, "the anonymous read was not cached under {key}");

    // Changed behind the API's back: anonymous readers get the cached copy,
    // a caller with a token reads PostgreSQL.
    api.db.sql("UPDATE articles SET body = 'changed behind our back' WHERE slug = 'cached'");
    assert_eq!(body_of(&api.get(path, None)), "text of Cached", "served from the cache");
    assert_eq!(body_of(&api.get(path, Some(&anna))), "changed behind our back");

    // Each write through the API is visible to the next anonymous read.
    api.call("PUT", path, Some(&jake), Some(r#"{"article":{"body":"v2"}}"#));
    assert_eq!(body_of(&api.get(path, None)), "v2");
    api.call("POST", &format!("{path}/favorite"), Some(&anna), None);
    assert_eq!(api.get(path, None).json["article"]["favoritesCount"].as_i64(), Some(1));
    api.call("DELETE", &format!("{path}/favorite"), Some(&anna), None);
    assert_eq!(api.get(path, None).json["article"]["favoritesCount"].as_i64(), Some(0));

    // The author's profile is embedded in articles and cached on its own.
    assert!(api.get("/api/profiles/jake", None).json["profile"]["bio"].is_null());
    api.call("PUT", "/api/user", Some(&jake), Some(r#"{"user":{"bio":"new bio","username":"jacob"}}"#));
    assert_eq!(api.get("/api/profiles/jacob", None).json["profile"]["bio"].as_str(), Some("new bio"));
    assert_eq!(api.get("/api/profiles/jake", None).status, 404);
    assert_eq!(api.get(path, None).json["article"]["author"]["username"].as_str(), Some("jacob"));

    // The first page of the list and the tags.
    let count = |api: &mut Api| api.get("/api/articles", None).json["articlesCount"].as_i64();
    assert_eq!(count(&mut api), Some(1));
    let tags = |api: &mut Api| api.get("/api/tags", None).json["tags"].as_array().unwrap().len();
    assert_eq!(tags(&mut api), 1);
    // A caller with a token gets the list from PostgreSQL, with the cached count.
    let personal = |api: &mut Api, t: &str| api.get("/api/articles", Some(t)).json["articlesCount"].as_i64();
    assert_eq!(personal(&mut api, &anna), Some(1));
    api.create_article(&anna, "Second", &["two"]);
    assert_eq!(count(&mut api), Some(2));
    assert_eq!(personal(&mut api, &anna), Some(2));
    assert_eq!(api.get("/api/articles?offset=1", None).json["articlesCount"].as_i64(), Some(2));
    assert_eq!(tags(&mut api), 2);
    // A title change moves the article to a new slug; the old one is gone from the cache too.
    api.call("PUT", path, Some(&jake), Some(r#"{"article":{"title":"Renamed"}}"#));
    assert_eq!(api.get(path, None).status, 404);
    assert_eq!(body_of(&api.get("/api/articles/renamed", None)), "v2");
    assert_eq!(api.call("DELETE", "/api/articles/renamed", Some(&jake), None).status, 204);
    assert_eq!(api.get("/api/articles/renamed", None).status, 404);
    assert_eq!(count(&mut api), Some(1));
    assert_eq!(personal(&mut api, &anna), Some(1));
    assert_eq!(tags(&mut api), 1);
}

#[test]
fn without_redis_everything_reads_and_writes_through_postgres() {
    let closed = format!("127.0.0.1:{}", free_port());
    // Without Redis there is no lease: the node id comes from configuration.
    let mut api = start_with(&closed, &["--node-id", "1"]);
    let jake = api.register("jake");
    api.create_article(&jake, "No cache", &["t"]);
    for _ in 0..2 {
        assert_eq!(body_of(&api.get("/api/articles/no-cache", None)), "text of No cache");
    }
    api.call("PUT", "/api/articles/no-cache", Some(&jake), Some(r#"{"article":{"body":"v2"}}"#));
    assert_eq!(body_of(&api.get("/api/articles/no-cache", None)), "v2");
    assert_eq!(api.get("/api/articles", None).json["articlesCount"].as_i64(), Some(1));
    assert_eq!(api.get("/api/tags", None).json["tags"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/api/profiles/jake", None).status, 200);
}

#[test]
fn a_write_whose_invalidation_is_not_confirmed_is_still_read_back() {
    let mut redis_server = PrivateRedis::start();
    let mut api = start_with(&redis_server.addr(), &["--storage-timeout", "1"]);
    let jake = api.register("jake");
    api.create_article(&jake, "Away", &[]);
    let path = "/api/articles/away";
    // Cached (a change behind the API's back is not seen), then saved to disk,
    // so the stale copy comes back when Redis restarts.
    let cached = eventually(Duration::from_secs(5), || {
        let body = body_of(&api.get(path, None));
        api.db.sql("UPDATE articles SET body = 'behind' WHERE slug = 'away'");
        body == "text of Away" && body_of(&api.get(path, None)) == "text of Away"
    });
    assert!(cached, "the article never came from the cache");
    redis(&redis_server.addr(), &[b"SAVE"]);
    redis_server.stop_server();

    // The write commits while Redis is away; its invalidation cannot be sent.
    let r = api.call("PUT", path, Some(&jake), Some(r#"{"article":{"body":"v2"}}"#));
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(body_of(&api.get(path, None)), "v2");

    // Redis returns with the stale copy on disk. The worker delivers its
    // pending invalidation before it trusts the cache again.
    redis_server.start_server();
    let stale = format!("swiftlet:{}:api:e:article:away", api.db.name);
    assert!(
        matches!(
            redis(&redis_server.addr(), &[b"EXISTS", stale.as_bytes()]),
            swiftlet_protocol::resp::Reply::Integer(1)
        ),
        "the restarted Redis should hold the stale copy"
    );
    for _ in 0..20 {
        assert_eq!(body_of(&api.get(path, None)), "v2");
        std::thread::sleep(Duration::from_millis(50));
    }
    let delivered = eventually(Duration::from_secs(10), || {
        matches!(
            redis(&redis_server.addr(), &[b"EXISTS", stale.as_bytes()]),
            swiftlet_protocol::resp::Reply::Integer(0)
        ) || body_of(&api.get(path, None)) == "v2"
            && matches!(
                redis(&redis_server.addr(), &[b"GET", stale.as_bytes()]),
                swiftlet_protocol::resp::Reply::BulkString(ref b) if String::from_utf8_lossy(b).contains("v2")
            )
    });
    assert!(delivered, "the pending invalidation never reached Redis");
}

#[test]
fn bodies_over_the_api_limit_are_refused_with_413() {
    let mut api = start_with(&redis_addr(), &["--api-body-limit", "1024"]);
    let big = format!(r#"{{"user":{{"username":"{}","email":"a@b","password":"p"}}}}"#, "x".repeat(2000));
    let r = api.call("POST", "/api/users", None, Some(&big));
    assert_eq!(r.status, 413, "{}", r.json);
    assert!(r.json["errors"].is_object(), "{}", r.json);
    // The refused body was not read, so that connection is closed; a new one
    // within the limit works.
    api.client = api._server.connect();
    assert_eq!(
        api.call("POST", "/api/users", None, Some(r#"{"user":{"username":"a","email":"a@b","password":"password1"}}"#))
            .status,
        201
    );
}
