//! Who is calling: the `Authorization: Token <jwt>` header, its token
//! checked ([`super::tokens`]) and its generation compared with the user's
//! current one. [`required`] and [`caller`] refuse a token whose generation
//! is not the user's current one (a password changed since), or whose user
//! is gone.

use super::tokens::{Tokens, INVALID};
use crate::app::core::Core;
use crate::http::error::AppError;
use crate::http::request::Request;

/// The caller of a route where a token is optional: `None` when the request
/// carries no Authorization header; an error when it carries a bad one
/// (shared/conduit-api.md §1 recommends 401 over silently ignoring it), or
/// one from before its user's last password change, or whose user is gone.
pub async fn caller<'b>(core: &Core, req: &Request<'b>) -> Result<Option<Caller<'b>>, AppError> {
    let Some(caller) = presented(&core.tokens, req)? else {
        return Ok(None);
    };
    if core.generations.current(&core.storage, caller.id).await? != Some(caller.generation) {
        return Err(INVALID);
    }
    Ok(Some(caller))
}

/// The caller of a route that needs one.
pub async fn required<'b>(core: &Core, req: &Request<'b>) -> Result<Caller<'b>, AppError> {
    caller(core, req).await?.ok_or(MISSING)
}

/// A verified caller: their user id, the token they presented and its generation.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'b> {
    pub id: i64,
    pub token: &'b str,
    pub generation: i32,
}

/// The token in a request, verified but for its generation.
fn presented<'b>(tokens: &Tokens, req: &Request<'b>) -> Result<Option<Caller<'b>>, AppError> {
    let Some(value) = req.header("authorization") else {
        return Ok(None);
    };
    let token = token_of(value).ok_or(AppError::Unauthenticated { problem: "must be 'Token <jwt>'" })?;
    let (id, generation) = tokens.verify(token)?;
    Ok(Some(Caller { id, token, generation }))
}

/// The id the personalising statements take for a caller: 0 for nobody.
pub fn id_or_anonymous(caller: Option<Caller<'_>>) -> i64 {
    caller.map_or(0, |c| c.id)
}

const MISSING: AppError = AppError::Unauthenticated { problem: "is missing" };

/// The JWT in an Authorization value: `Token <jwt>`, or `Bearer <jwt>`, which
/// some clients send and which is harmless to accept.
fn token_of(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    let known = scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
    (known && !token.is_empty() && !token.contains(' ')).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_schemes() {
        assert_eq!(token_of(b"Token abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(token_of(b"Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(token_of(b"token  abc"), Some("abc"));
        assert_eq!(token_of(b"Basic abc"), None);
        assert_eq!(token_of(b"Token"), None);
        assert_eq!(token_of(b"Token a b"), None);
        assert_eq!(token_of(b"abc.def.ghi"), None);
    }
}
