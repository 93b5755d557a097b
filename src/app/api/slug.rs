//! Slugs: the URL identifier of an article, derived from its title
//! (shared/conduit-api.md §6.1).
//!
//! Lowercase ASCII letters and digits are kept; every run of anything else
//! becomes one `-`, and leading and trailing dashes go. Non-ASCII characters
//! count as separators, so a slug never needs percent-encoding. A title with
//! nothing left gets `article`; a slug another route holds (`feed`) is
//! always taken. Uniqueness is the caller's business: on a clash it retries with
//! [`with_suffix`].

use swiftlet_protocol::Method;

use crate::http::router::{self, Route};

/// Longest slug kept from a title, in bytes, before any suffix.
const MAX_LEN: usize = 100;

pub fn slugify(title: &str) -> String {
    let mut slug = String::with_capacity(title.len().min(MAX_LEN));
    let mut dash = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            // Cut before a dash as well as before a letter, so no slug ends in one.
            let needed = if dash && !slug.is_empty() { 2 } else { 1 };
            if slug.len() + needed > MAX_LEN {
                break;
            }
            if needed == 2 {
                slug.push('-');
            }
            dash = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    if slug.is_empty() {
        slug.push_str("article");
    }
    // A slug the router gives to another route (`feed`: the feed) could never
    // be read as an article: that route holds it, so it is taken.
    if !routes_to_an_article(&slug) {
        return with_suffix(&slug);
    }
    slug
}

fn routes_to_an_article(slug: &str) -> bool {
    let path = format!("/api/articles/{slug}");
    router::route(Method::Get, path.as_bytes(), false) == Ok(Route::Article)
}

/// `slug` with a short random suffix, for when the plain slug is taken.
pub fn with_suffix(slug: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..6).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect();
    format!("{slug}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(slugify("How to train your dragon"), "how-to-train-your-dragon");
        assert_eq!(slugify("  --Hello,   World!!  "), "hello-world");
        assert_eq!(slugify("C++ & Rust: 2024"), "c-rust-2024");
        assert_eq!(slugify("Crème brûlée"), "cr-me-br-l-e");
        assert_eq!(slugify("日本語"), "article");
        assert_eq!(slugify(""), "article");
    }

    #[test]
    fn the_feed_path_is_never_a_slug() {
        let slug = slugify("Feed!");
        assert!(slug.starts_with("feed-") && slug.len() == "feed-".len() + 6, "{slug}");
        assert_eq!(slugify("Feed me"), "feed-me");
    }

    #[test]
    fn long_titles_are_cut() {
        let slug = slugify(&"word ".repeat(100));
        assert!(slug.len() <= MAX_LEN, "{}", slug.len());
        assert!(!slug.ends_with('-'));
    }

    #[test]
    fn suffixes_differ() {
        let a = with_suffix("x");
        assert!(a.starts_with("x-") && a.len() == 8, "{a}");
        assert_ne!(with_suffix("x"), with_suffix("x"));
    }
}
