//! Reading what a client sent: the JSON body's fields, path parameters and
//! query parameters, each refused with a 422 that names the offending field.
//!
//! Bodies are `{"<root>": {...}}` documents (shared/conduit-api.md §1); the
//! root object's fields are read off the simd-json tape and borrow from the
//! request body, so a parsed request copies no strings. Unknown fields are
//! ignored, as the spec asks; of a repeated field, the last counts.

use std::borrow::Cow;

use simd_json::prelude::*;
use simd_json::tape::{Object, Value};

use crate::http::error::AppError;
use crate::http::json;

/// What a body that does not parse gets (the spec makes it a 422, like every
/// other validation failure).
const MALFORMED: AppError = AppError::InvalidField { field: "body", problem: "is not valid JSON" };

/// Parses `body` and hands `f` the object under `root`.
pub fn with_root<'a, R>(
    body: &'a mut [u8],
    root: &'static str,
    f: impl for<'t> FnOnce(Fields<'t, 'a>) -> Result<R, AppError>,
) -> Result<R, AppError> {
    json::parse_in_place(body, MALFORMED, |value| {
        let object =
            value.as_object().ok_or(AppError::InvalidField { field: "body", problem: "must be a JSON object" })?;
        let inner = json::field(&object, root).ok_or(AppError::InvalidField { field: root, problem: "is missing" })?;
        let inner = inner.as_object().ok_or(AppError::InvalidField { field: root, problem: "must be an object" })?;
        f(Fields(inner))
    })
}

/// The fields of a request's root object.
pub struct Fields<'t, 'a>(Object<'t, 'a>);

impl<'t, 'a> Fields<'t, 'a> {
    fn value(&self, name: &'static str) -> Option<Value<'t, 'a>> {
        json::field(&self.0, name)
    }

    /// A string that must be present and not blank.
    pub fn required(&self, name: &'static str) -> Result<&'a str, AppError> {
        match self.optional(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(AppError::InvalidField { field: name, problem: "can't be blank" }),
        }
    }

    /// A string that may be absent (or null); present, it must not be blank.
    pub fn optional(&self, name: &'static str) -> Result<Option<&'a str>, AppError> {
        match self.value(name) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => match v.into_string() {
                Some(s) => Ok(Some(s)),
                None => Err(AppError::InvalidField { field: name, problem: "must be a string" }),
            },
        }
    }

    /// Like [`optional`](Self::optional), but a present value may not be blank either.
    pub fn optional_not_blank(&self, name: &'static str) -> Result<Option<&'a str>, AppError> {
        match self.optional(name)? {
            Some(s) if s.trim().is_empty() => Err(AppError::InvalidField { field: name, problem: "can't be blank" }),
            other => Ok(other),
        }
    }

    /// A field that can be set, cleared with `null`, or left alone by leaving
    /// it out: `None` absent, `Some(None)` null, `Some(Some(s))` a string.
    pub fn clearable(&self, name: &'static str) -> Result<Option<Option<&'a str>>, AppError> {
        match self.value(name) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(Some(None)),
            Some(v) => v
                .into_string()
                .map(|s| Some(Some(s)))
                .ok_or(AppError::InvalidField { field: name, problem: "must be a string or null" }),
        }
    }

    /// An optional array of strings (absent or null: empty).
    pub fn strings(&self, name: &'static str) -> Result<Vec<&'a str>, AppError> {
        let bad = AppError::InvalidField { field: name, problem: "must be an array of strings" };
        match self.value(name) {
            None => Ok(Vec::new()),
            Some(v) if v.is_null() => Ok(Vec::new()),
            Some(v) => {
                let array = v.as_array().ok_or(bad)?;
                array.iter().map(|item| item.into_string().ok_or(bad)).collect()
            }
        }
    }
}

/// A path segment or query value, percent-decoded (and, in a query, `+` as a
/// space). `None` when the result is not UTF-8 or an escape is broken.
pub fn decode(raw: &[u8], plus_is_space: bool) -> Option<Cow<'_, str>> {
    if !raw.iter().any(|&b| b == b'%' || (plus_is_space && b == b'+')) {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// A non-negative integer query parameter; absent means `default`.
pub fn count_param(raw: Option<&[u8]>, name: &'static str, default: i64, min: i64) -> Result<i64, AppError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let text = std::str::from_utf8(raw).ok();
    match text.and_then(|t| t.parse::<i64>().ok()) {
        Some(n) if n >= min => Ok(n),
        _ => Err(AppError::InvalidField {
            field: name,
            problem: if min > 0 { "must be a positive integer" } else { "must be a non-negative integer" },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<R>(body: &str, f: impl for<'t, 'a> FnOnce(Fields<'t, 'a>) -> Result<R, AppError>) -> Result<R, AppError> {
        let mut bytes = body.as_bytes().to_vec();
        with_root(&mut bytes, "user", f)
    }

    #[test]
    fn required_and_optional_strings() {
        let body = r#"{"user":{"email":"a@b","bio":null,"blank":"  ","n":5,"extra":{"x":1}}}"#;
        assert_eq!(parse(body, |f| f.required("email").map(str::to_owned)), Ok("a@b".to_owned()));
        let blank = AppError::InvalidField { field: "blank", problem: "can't be blank" };
        assert_eq!(parse(body, |f| f.required("blank").map(str::to_owned)), Err(blank));
        let missing = AppError::InvalidField { field: "password", problem: "can't be blank" };
        assert_eq!(parse(body, |f| f.required("password").map(str::to_owned)), Err(missing));
        let typed = AppError::InvalidField { field: "n", problem: "must be a string" };
        assert_eq!(parse(body, |f| f.optional("n").map(|_| ())), Err(typed));
        assert_eq!(parse(body, |f| f.optional("bio").map(|o| o.is_none())), Ok(true));
        assert_eq!(parse(body, |f| f.clearable("bio").map(|o| o == Some(None))), Ok(true));
        assert_eq!(parse(body, |f| f.clearable("image").map(|o| o.is_none())), Ok(true));
    }

    #[test]
    fn strings_borrow_from_the_body() {
        let mut bytes = br#"{"user":{"email":"a\"b@c","tags":["x","y"]}}"#.to_vec();
        let range = bytes.as_ptr_range();
        let (email, tags) = with_root(&mut bytes, "user", |f| Ok((f.required("email")?, f.strings("tags")?))).unwrap();
        assert_eq!(email, "a\"b@c");
        assert_eq!(tags, ["x", "y"]);
        assert!(range.contains(&email.as_ptr()));
    }

    #[test]
    fn shape_errors_name_the_key() {
        for (body, field, problem) in [
            ("", "body", "is not valid JSON"),
            ("{", "body", "is not valid JSON"),
            ("[1]", "body", "must be a JSON object"),
            ("{}", "user", "is missing"),
            (r#"{"user":"x"}"#, "user", "must be an object"),
        ] {
            assert_eq!(parse(body, |_| Ok(())), Err(AppError::InvalidField { field, problem }), "{body:?}");
        }
        let bad = AppError::InvalidField { field: "tags", problem: "must be an array of strings" };
        assert_eq!(parse(r#"{"user":{"tags":[1]}}"#, |f| f.strings("tags").map(|_| ())), Err(bad));
        assert_eq!(parse(r#"{"user":{"tags":"x"}}"#, |f| f.strings("tags").map(|_| ())), Err(bad));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decode(b"plain", false).as_deref(), Some("plain"));
        assert_eq!(decode(b"a%20b", false).as_deref(), Some("a b"));
        assert_eq!(decode(b"a+b", true).as_deref(), Some("a b"));
        assert_eq!(decode(b"a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decode(b"%C3%A9", false).as_deref(), Some("é"));
        assert_eq!(decode(b"%zz", false), None);
        assert_eq!(decode(b"%4", false), None);
        assert_eq!(decode(b"%FF", false), None);
    }

    #[test]
    fn counts() {
        assert_eq!(count_param(None, "limit", 20, 1), Ok(20));
        assert_eq!(count_param(Some(b"5"), "limit", 20, 1), Ok(5));
        assert!(count_param(Some(b"0"), "limit", 20, 1).is_err());
        assert_eq!(count_param(Some(b"0"), "offset", 0, 0), Ok(0));
        assert!(count_param(Some(b"-1"), "offset", 0, 0).is_err());
        assert!(count_param(Some(b"x"), "offset", 0, 0).is_err());
        assert!(count_param(Some(b""), "limit", 20, 1).is_err());
    }
}
