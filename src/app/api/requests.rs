//! The product API's request bodies as types, each read from a body and
//! checked in one call, so a handler gets a request that is already valid and
//! the fuzzer (`fuzz/`, target `requests`) can reach every rule without a
//! database.
//!
//! Invariants of a parsed request: every string borrows from the body (a
//! request copies nothing); a required field is never blank; an e-mail has an
//! `@` and no whitespace; a username has no `/` and no control character
//! (usernames are path segments); tags are sorted, unique and not blank; every
//! string is within its [`Cap`] (so every answer built from stored fields has
//! a size bound too); a new password has at least [`MIN_PASSWORD_CHARS`]
//! characters. The first rule a body breaks is the one its 422 names, in the
//! order the fields are listed here.

use super::input::with_root;
use crate::http::error::AppError;

/// The most bytes (UTF-8, after JSON unescaping) a field may hold; beyond it
/// the request gets a 422 that names the field and the cap.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub field: &'static str,
    pub max: usize,
    problem: &'static str,
}

macro_rules! cap {
    ($field:literal, $max:literal) => {
        Cap { field: $field, max: $max, problem: concat!("is too long (at most ", $max, " bytes)") }
    };
}

pub const USERNAME: Cap = cap!("username", 64);
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets.
pub const EMAIL: Cap = cap!("email", 254);
/// Hashing cost grows with the password; no one types more.
pub const PASSWORD: Cap = cap!("password", 1024);
pub const BIO: Cap = cap!("bio", 1024);
pub const IMAGE: Cap = cap!("image", 2048);
pub const TITLE: Cap = cap!("title", 256);
pub const DESCRIPTION: Cap = cap!("description", 1024);
/// About 10,000 words of Markdown.
pub const ARTICLE_BODY: Cap = cap!("body", 65536);
pub const TAG: Cap = cap!("tagList", 64);
pub const COMMENT_BODY: Cap = cap!("body", 8192);
/// The most tags an article may carry.
pub const MAX_TAGS: usize = 20;
/// The fewest characters a new password may have (logins of older, shorter
/// passwords still work; only setting one is refused).
pub const MIN_PASSWORD_CHARS: usize = 8;

impl Cap {
    pub fn check(self, value: &str) -> Result<(), AppError> {
        if value.len() > self.max {
            return Err(AppError::InvalidField { field: self.field, problem: self.problem });
        }
        Ok(())
    }

    fn check_some(self, value: Option<&str>) -> Result<(), AppError> {
        value.map_or(Ok(()), |v| self.check(v))
    }
}

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
        let login =
            with_root(body, USER, |f| Ok(Login { email: f.required("email")?, password: f.required("password")? }))?;
        EMAIL.check(login.email)?;
        PASSWORD.check(login.password)?;
        Ok(login)
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
        check_new_password(r.password)?;
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
        if let Some(password) = c.password {
            check_new_password(password)?;
        }
        BIO.check_some(c.bio.flatten())?;
        IMAGE.check_some(c.image.flatten())?;
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
        let a = with_root(body, ARTICLE, |f| {
            Ok(NewArticle {
                title: f.required("title")?,
                description: f.required("description")?,
                body: f.required("body")?,
                tags: tag_list(f.strings("tagList")?),
            })
        })?;
        check_article(Some(a.title), Some(a.description), Some(a.body))?;
        if a.tags.len() > MAX_TAGS {
            return Err(AppError::InvalidField { field: "tagList", problem: "has too many tags (at most 20)" });
        }
        a.tags.iter().try_for_each(|t| TAG.check(t))?;
        Ok(a)
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
        let c = with_root(body, ARTICLE, |f| {
            Ok(ArticleChanges {
                title: f.optional_not_blank("title")?,
                description: f.optional_not_blank("description")?,
                body: f.optional_not_blank("body")?,
            })
        })?;
        check_article(c.title, c.description, c.body)?;
        Ok(c)
    }
}

/// `POST /api/articles/:slug/comments`
#[derive(Debug, PartialEq, Eq)]
pub struct NewComment<'a> {
    pub body: &'a str,
}

impl<'a> NewComment<'a> {
    pub fn parse(body: &'a mut [u8]) -> Result<NewComment<'a>, AppError> {
        let c = with_root(body, COMMENT, |f| Ok(NewComment { body: f.required("body")? }))?;
        COMMENT_BODY.check(c.body)?;
        Ok(c)
    }
}

fn check_article(title: Option<&str>, description: Option<&str>, body: Option<&str>) -> Result<(), AppError> {
    TITLE.check_some(title)?;
    DESCRIPTION.check_some(description)?;
    ARTICLE_BODY.check_some(body)
}

fn check_new_password(password: &str) -> Result<(), AppError> {
    PASSWORD.check(password)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AppError::InvalidField { field: "password", problem: "is too short (at least 8 characters)" });
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), AppError> {
    EMAIL.check(email)?;
    if email.contains('@') && !email.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(AppError::InvalidField { field: "email", problem: "is invalid" })
    }
}

fn check_username(username: &str) -> Result<(), AppError> {
    USERNAME.check(username)?;
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
    fn every_field_has_a_cap_and_new_passwords_a_minimum() {
        let long = |n: usize| "x".repeat(n);
        let cases = [
            (format!(r#"{{"user":{{"username":"{}","email":"a@b","password":"password1"}}}}"#, long(65)), "username"),
            (format!(r#"{{"user":{{"username":"u","email":"a@{}","password":"password1"}}}}"#, long(253)), "email"),
            (format!(r#"{{"user":{{"username":"u","email":"a@b","password":"{}"}}}}"#, long(1025)), "password"),
            (r#"{"user":{"username":"u","email":"a@b","password":"seven77"}}"#.to_string(), "password"),
            (r#"{"user":{"username":"u","email":"a@b","password":"ééééééé"}}"#.to_string(), "password"),
        ];
        for (body, field) in cases {
            let mut body = bytes(&body);
            let e = Registration::parse(&mut body).unwrap_err();
            assert!(matches!(e, AppError::InvalidField { field: f, .. } if f == field), "{e:?}");
        }
        // Eight characters, not bytes: four two-byte letters and four ASCII are enough.
        let mut body = bytes(r#"{"user":{"username":"u","email":"a@b","password":"éééé1234"}}"#);
        assert!(Registration::parse(&mut body).is_ok());
        // A login with an older, shorter password is still read.
        let mut body = bytes(r#"{"user":{"email":"a@b","password":"short"}}"#);
        assert!(Login::parse(&mut body).is_ok());
        let mut body = bytes(&format!(r#"{{"user":{{"bio":"{}"}}}}"#, long(1025)));
        assert_eq!(
            UserChanges::parse(&mut body).unwrap_err(),
            AppError::InvalidField { field: "bio", problem: BIO.problem }
        );
        let article = |title: usize, body: usize, tags: &str| {
            format!(
                r#"{{"article":{{"title":"{}","description":"d","body":"{}","tagList":[{tags}]}}}}"#,
                long(title),
                long(body)
            )
        };
        let mut ok = bytes(&article(256, 65536, r#""a""#));
        assert!(NewArticle::parse(&mut ok).is_ok());
        for (body, field) in [
            (article(257, 1, ""), "title"),
            (article(1, 65537, ""), "body"),
            (article(1, 1, &format!(r#""{}""#, long(65))), "tagList"),
            (article(1, 1, &(0..21).map(|i| format!(r#""t{i}""#)).collect::<Vec<_>>().join(",")), "tagList"),
        ] {
            let e = NewArticle::parse(&mut bytes(&body)).unwrap_err();
            assert!(matches!(e, AppError::InvalidField { field: f, .. } if f == field), "{e:?}");
        }
        let mut body = bytes(&format!(r#"{{"comment":{{"body":"{}"}}}}"#, long(8193)));
        assert_eq!(
            NewComment::parse(&mut body),
            Err(AppError::InvalidField { field: "body", problem: COMMENT_BODY.problem })
        );
        let mut body = bytes(&format!(r#"{{"comment":{{"body":"{}"}}}}"#, long(8192)));
        assert!(NewComment::parse(&mut body).is_ok());
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
