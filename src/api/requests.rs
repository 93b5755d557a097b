//! The product API's request bodies as types, each read from a body and
//! checked in one call, so a handler gets a request that is already valid and
//! the fuzzer (`fuzz/`, target `requests`) can reach every rule without a
//! database.
//!
//! Invariants of a parsed request: every string borrows from the body (a
//! request copies nothing); a required field is never blank; an e-mail has an
//! `@` and no whitespace; a username has no `/` and no control character
//! (usernames are path segments); tags are sorted, unique and not blank. The
//! first rule a body breaks is the one its 422 names, in the order the fields
//! are listed here.

use super::input::with_root;
use crate::error::AppError;

const USER: &str = "user";
const ARTICLE: &str = "article";
const COMMENT: &str = "comment";

/// `POST /api/users/login`
#[derive(Debug, PartialEq, Eq)]
pub struct Login<'a> {
    pub email: &'a str,
    pub password: &'a str,
}

impl<'a> Login<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<Login<'a>, AppError> {
        with_root(body, USER, |f| Ok(Login { email: f.required("email")?, password: f.required("password")? }))
    }
}

/// `POST /api/users`
#[derive(Debug, PartialEq, Eq)]
pub struct Registration<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
}

impl<'a> Registration<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<Registration<'a>, AppError> {
        let r = with_root(body, USER, |f| {
            Ok(Registration {
                username: f.required("username")?,
                email: f.required("email")?,
                password: f.required("password")?,
            })
        })?;
        check_username(r.username)?;
        check_email(r.email)?;
        Ok(r)
    }
}

/// `PUT /api/user`: each field absent is left as it is; `bio` and `image`
/// may also be cleared with `null` (`Some(None)`).
#[derive(Debug, PartialEq, Eq)]
pub struct UserChanges<'a> {
    pub email: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub bio: Option<Option<&'a str>>,
    pub image: Option<Option<&'a str>>,
}

impl<'a> UserChanges<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<UserChanges<'a>, AppError> {
        let c = with_root(body, USER, |f| {
            Ok(UserChanges {
                email: f.optional_not_blank("email")?,
                username: f.optional_not_blank("username")?,
                password: f.optional_not_blank("password")?,
                bio: f.clearable("bio")?,
                image: f.clearable("image")?,
            })
        })?;
        if let Some(email) = c.email {
            check_email(email)?;
        }
        if let Some(username) = c.username {
            check_username(username)?;
        }
        Ok(c)
    }
}

/// `POST /api/articles`
#[derive(Debug, PartialEq, Eq)]
pub struct NewArticle<'a> {
    pub title: &'a str,
    pub description: &'a str,
    pub body: &'a str,
    /// As stored: sorted, without duplicates or blanks (conduit-api.md §6.2).
    pub tags: Vec<&'a str>,
}

impl<'a> NewArticle<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<NewArticle<'a>, AppError> {
        with_root(body, ARTICLE, |f| {
            Ok(NewArticle {
                title: f.required("title")?,
                description: f.required("description")?,
                body: f.required("body")?,
                tags: tag_list(f.strings("tagList")?),
            })
        })
    }
}

/// `PUT /api/articles/:slug`: each field absent is left as it is.
#[derive(Debug, PartialEq, Eq)]
pub struct ArticleChanges<'a> {
    pub title: Option<&'a str>,
    pub description: Option<&'a str>,
    pub body: Option<&'a str>,
}

impl<'a> ArticleChanges<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<ArticleChanges<'a>, AppError> {
        with_root(body, ARTICLE, |f| {
            Ok(ArticleChanges {
                title: f.optional_not_blank("title")?,
                description: f.optional_not_blank("description")?,
                body: f.optional_not_blank("body")?,
            })
        })
    }
}

/// `POST /api/articles/:slug/comments`
#[derive(Debug, PartialEq, Eq)]
pub struct NewComment<'a> {
    pub body: &'a str,
}

impl<'a> NewComment<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<NewComment<'a>, AppError> {
        with_root(body, COMMENT, |f| Ok(NewComment { body: f.required("body")? }))
    }
}

fn check_email(email: &str) -> Result<(), AppError> {
    if email.contains('@') && !email.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(AppError::InvalidField { field: "email", problem: "is invalid" })
    }
}

fn check_username(username: &str) -> Result<(), AppError> {
    // Usernames go in URLs (/api/profiles/:username); '/' would split the path.
    if username.contains('/') || username.chars().any(char::is_control) {
        Err(AppError::InvalidField { field: "username", problem: "may not contain '/' or control characters" })
    } else {
        Ok(())
    }
}

fn tag_list(mut tags: Vec<&str>) -> Vec<&str> {
    tags.retain(|t| !t.trim().is_empty());
    tags.sort_unstable();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn tags_are_sorted_unique_and_not_blank() {
        let mut body = bytes(
            r#"{"article":{"title":"t","description":"d","body":"b","tagList":["training","dragons","training"," ","Dragons"]}}"#,
        );
        assert_eq!(NewArticle::parse(&mut body).unwrap().tags, ["Dragons", "dragons", "training"]);
    }

    #[test]
    fn a_repeated_field_counts_by_its_last_value() {
        let mut body = bytes(r#"{"comment":{"body":"first"},"comment":{"body":"second","body":"third"}}"#);
        assert_eq!(NewComment::parse(&mut body), Ok(NewComment { body: "third" }));
    }

    #[test]
    fn registration_checks_fields_in_order() {
        let mut body = bytes(r#"{"user":{"username":"a/b","email":"nope","password":"p"}}"#);
        let slash = AppError::InvalidField { field: "username", problem: "may not contain '/' or control characters" };
        assert_eq!(Registration::parse(&mut body), Err(slash));
        let mut body = bytes(r#"{"user":{"username":"ab","email":"no pe@x","password":"p"}}"#);
        assert_eq!(
            Registration::parse(&mut body),
            Err(AppError::InvalidField { field: "email", problem: "is invalid" })
        );
        let mut body = bytes(r#"{"user":{"username":"ab","email":"a@x"}}"#);
        let blank = AppError::InvalidField { field: "password", problem: "can't be blank" };
        assert_eq!(Registration::parse(&mut body), Err(blank));
    }

    #[test]
    fn user_changes_tell_absent_from_cleared() {
        let mut body = bytes(r#"{"user":{"bio":null,"image":"i.png","username":"x\u0000"}}"#);
        let control =
            AppError::InvalidField { field: "username", problem: "may not contain '/' or control characters" };
        assert_eq!(UserChanges::parse(&mut body), Err(control));
        let mut body = bytes(r#"{"user":{"bio":null,"image":"i.png"}}"#);
        let c = UserChanges::parse(&mut body).unwrap();
        assert_eq!((c.email, c.bio, c.image), (None, Some(None), Some(Some("i.png"))));
        let mut body = bytes(r#"{"user":{"email":" "}}"#);
        assert_eq!(
            UserChanges::parse(&mut body),
            Err(AppError::InvalidField { field: "email", problem: "can't be blank" })
        );
    }
}
