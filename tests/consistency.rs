//! Data that stays right under races, against the real PostgreSQL and Redis:
//! the defects a code review found, each with the test that showed it.

mod common;

use std::sync::{Arc, Barrier};

use common::site::{token_in, Site};
use common::Client;

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

fn one(site: &Site, sql: &str) -> i64 {
    site.db.sql(sql)[0][0].as_deref().unwrap_or("0").parse().unwrap()
}

/// Two deletes of one article at once: one removes it, the other finds it
/// gone (404), and the author's, the tags' and the total counters move once.
#[test]
fn deleting_an_article_twice_at_once_moves_its_counters_once() {
    let mut site = Site::start(&["--workers", "2"], &[]);
    let body = br#"{"user":{"username":"racer","email":"racer@example.com","password":"racer-password"}}"#;
    let r = site.call("POST", "/api/users", None, &JSON, body);
    assert_eq!(r.status, 201, "{}", r.text());
    let token = token_in(&r);
    let addr = site.server.addr;
    // Both workers' database connections up (the second may open after the
    // first answered): twenty fresh connections in a row answered.
    let warm = common::storage::eventually(std::time::Duration::from_secs(30), || {
        (0..20).all(|_| Client::connect_to(addr).get("/api/tags").status == 200)
    });
    assert!(warm, "the workers never all reached the database");
    let mut outcomes = Vec::new();
    for round in 0..15 {
        let body = format!(
            r#"{{"article":{{"title":"Race {round}","description":"d","body":"b","tagList":["race-tag","other-tag"]}}}}"#
        );
        let r = site.call("POST", "/api/articles", Some(&token), &JSON, body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        let slug = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let deleters: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, token, slug) = (Arc::clone(&barrier), token.clone(), slug.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect_to(addr);
                    let raw = format!(
                        "DELETE /api/articles/{slug} HTTP/1.1\r\nHost: t\r\nAuthorization: Token {token}\r\n\r\n"
                    );
                    barrier.wait();
                    client.request(raw.as_bytes()).status
                })
            })
            .collect();
        let mut statuses: Vec<u16> = deleters.into_iter().map(|d| d.join().unwrap()).collect();
        statuses.sort_unstable();
        outcomes.push(statuses);
    }
    for statuses in &outcomes {
        assert_eq!(statuses, &[204, 404], "two deletes of one article: {outcomes:?}");
    }
    assert_eq!(one(&site, "SELECT count(*) FROM articles"), 0);
    assert_eq!(one(&site, "SELECT article_count FROM users WHERE username = 'racer'"), 0, "author's count");
    assert_eq!(one(&site, "SELECT article_count FROM tags WHERE name = 'race-tag'"), 0, "tag count");
    assert_eq!(one(&site, "SELECT article_count FROM tags WHERE name = 'other-tag'"), 0, "tag count");
    assert_eq!(one(&site, "SELECT coalesce(sum(n), 0) FROM article_count_shards"), 0, "total");
}

/// Usernames may hold `#` and `:`. A profile's cache entry and another
/// profile's generation counter must never share a key: with the old keys,
/// user `ann#gen`'s cached profile was user `ann`'s generation, so Ann's
/// edits could not be invalidated (INCR on a JSON document) and the worker
/// read around the cache until the entry expired.
#[test]
fn cache_keys_stay_apart_whatever_a_username_holds() {
    let mut site = Site::start(&[], &[]);
    let mut tokens = Vec::new();
    for name in ["ann", "ann#gen", "ann:e", "e:ann"] {
        let body = format!(
            r#"{{"user":{{"username":"{name}","email":"{}@example.com","password":"ann-password"}}}}"#,
            name.replace(['#', ':'], "-")
        );
        let r = site.call("POST", "/api/users", None, &JSON, body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        tokens.push(token_in(&r));
    }
    // Every profile cached, then each edited and read back.
    for name in ["ann", "ann%23gen", "ann%3Ae", "e%3Aann"] {
        assert_eq!(site.call("GET", &format!("/api/profiles/{name}"), None, &[], b"").status, 200);
    }
    for (i, name) in ["ann", "ann%23gen", "ann%3Ae", "e%3Aann"].iter().enumerate() {
        let bio = format!(r#"{{"user":{{"bio":"bio {i}"}}}}"#);
        assert_eq!(site.call("PUT", "/api/user", Some(&tokens[i]), &JSON, bio.as_bytes()).status, 200);
        let r = site.call("GET", &format!("/api/profiles/{name}"), None, &[], b"");
        assert!(r.text().contains(&format!("\"bio {i}\"")), "{name}: {}", r.text());
    }
    let troubles: Vec<String> = site
        .server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("invalidation") && !l.contains("delivered"))
        .collect();
    assert!(troubles.is_empty(), "{troubles:#?}");
}
