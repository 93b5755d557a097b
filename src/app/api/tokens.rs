//! The product API's tokens: HS256 JWTs issued at login and registration
//! and checked on every request that presents one, and each worker's copy of
//! users' token generations.
//!
//! Tokens are HS256 only, signed with the configured secret, and carry the
//! user's id (`sub`), when they were issued (`iat`) and when they expire
//! (`exp`, required). Verification pins the algorithm, so a token that says
//! `alg: none` or any other algorithm is refused whatever its signature, and
//! checks `exp` and (when present) `nbf`. Every refusal is a 401; the reason
//! goes to the debug log, never to the client beyond "invalid".
//!
//! A token also carries its user's token generation (`gen`; 0 when absent,
//! as in tokens from before it existed), and a password change moves the
//! generation on. Each worker keeps the generations it has looked up for
//! [`GENERATION_TTL`], so a change made through another worker or node takes
//! effect within that time (at once on the worker that made it); at most
//! [`MAX_GENERATIONS`] are kept.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::sql;
use crate::http::error::AppError;
use crate::storage::Storage;

/// How long a worker trusts a user's token generation it looked up.
pub const GENERATION_TTL: Duration = Duration::from_secs(5);
/// The most generations a worker keeps (forgotten all at once beyond it).
pub const MAX_GENERATIONS: usize = 10_000;

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What every refusal of a token says.
pub const INVALID: AppError = AppError::Unauthenticated { problem: "is invalid or expired" };

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user's id, as a string (RFC 7519 §4.1.2 makes `sub` a string).
    sub: String,
    /// Ours always carry it; it is informational, so its absence is no reason to refuse.
    #[serde(default)]
    iat: Option<u64>,
    exp: u64,
    /// The user's token generation when it was issued.
    #[serde(default)]
    gen: i32,
}

/// Signs and checks tokens; one per worker, built from the same secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: Duration) -> Tokens {
        super::hs256::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A fresh token for `user`, whose token generation is `generation`.
    pub fn issue(&self, user: i64, generation: i32) -> Result<String, AppError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = Claims { sub: user.to_string(), iat: Some(now), exp: now + self.ttl.as_secs(), gen: generation };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            AppError::Internal
        })
    }

    /// The user id a token was issued to and the generation it carries, if
    /// it is genuine and unexpired (the generation is checked by the caller).
    pub fn verify(&self, token: &str) -> Result<(i64, i32), AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            tracing::debug!(error = %e, "refused a token");
            INVALID
        })?;
        let id = data.claims.sub.parse::<i64>().ok().filter(|id| *id > 0).ok_or(INVALID)?;
        Ok((id, data.claims.gen))
    }
}

/// One worker's copy of users' token generations, as last read.
#[derive(Default)]
pub struct Generations {
    known: RefCell<HashMap<i64, (Option<i32>, Instant)>>,
}

impl Generations {
    /// User `id`'s token generation (`None`: no such user), from the copy if
    /// it is fresh, else from PostgreSQL.
    pub async fn current(&self, storage: &Storage, id: i64) -> Result<Option<i32>, AppError> {
        let now = Instant::now();
        if let Some(&(generation, at)) = self.known.borrow().get(&id) {
            if now.saturating_duration_since(at) < GENERATION_TTL {
                return Ok(generation);
            }
        }
        let pg = storage.pg.for_reads()?;
        let rows = pg.run(|b| b.query(&sql::TOKEN_GENERATION, &[&id])).await?;
        let generation = rows.query(0).next().map(|r| r.int4(0)).transpose()?;
        self.remember(id, generation, now);
        Ok(generation)
    }

    /// What this worker just wrote or read: user `id` is at `generation`.
    pub fn remember(&self, id: i64, generation: Option<i32>, now: Instant) {
        let mut known = self.known.borrow_mut();
        if known.len() >= MAX_GENERATIONS && !known.contains_key(&id) {
            known.clear();
        }
        known.insert(id, (generation, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn tokens() -> Tokens {
        Tokens::new(SECRET, Duration::from_secs(3600))
    }

    fn b64(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    /// A token with any header and payload, signed HS256 with `key`.
    fn forge(header: &str, payload: &str, key: &[u8]) -> String {
        use hmac::Mac;
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn issued_tokens_verify() {
        let t = tokens();
        let token = t.issue(42, 3).unwrap();
        assert_eq!(t.verify(&token), Ok((42, 3)));
    }

    #[test]
    fn a_hand_made_token_with_the_right_key_verifies() {
        // Guards the forge helper the refusals below depend on.
        let token = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &format!(r#"{{"sub":"7","exp":{}}}"#, now() + 60), SECRET);
        // Without `gen`: generation 0, as tokens from before it existed.
        assert_eq!(tokens().verify(&token), Ok((7, 0)));
    }

    #[test]
    fn refuses_alg_none() {
        let payload = format!(r#"{{"sub":"7","exp":{}}}"#, now() + 60);
        let token = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(payload.as_bytes()));
        assert_eq!(tokens().verify(&token), Err(INVALID));
    }

    #[test]
    fn refuses_other_algorithms() {
        let payload = format!(r#"{{"sub":"7","exp":{}}}"#, now() + 60);
        // HS512-labelled, and an RS256 label over an HMAC signature (algorithm confusion).
        for header in [r#"{"alg":"HS512","typ":"JWT"}"#, r#"{"alg":"RS256","typ":"JWT"}"#] {
            assert_eq!(tokens().verify(&forge(header, &payload, SECRET)), Err(INVALID), "{header}");
        }
    }

    #[test]
    fn refuses_wrong_key_tampering_and_expiry() {
        let t = tokens();
        let payload = format!(r#"{{"sub":"7","exp":{}}}"#, now() + 60);
        assert_eq!(
            t.verify(&forge(r#"{"alg":"HS256"}"#, &payload, b"another secret of enough length!!")),
            Err(INVALID)
        );
        // Tampered: a genuine token whose payload is swapped for another user's.
        let genuine = t.issue(7, 0).unwrap();
        let parts: Vec<&str> = genuine.split('.').collect();
        let other = b64(format!(r#"{{"sub":"8","iat":0,"exp":{}}}"#, now() + 60).as_bytes());
        assert_eq!(t.verify(&format!("{}.{}.{}", parts[0], other, parts[2])), Err(INVALID));
        let expired = format!(r#"{{"sub":"7","exp":{}}}"#, now() - 60);
        assert_eq!(t.verify(&forge(r#"{"alg":"HS256"}"#, &expired, SECRET)), Err(INVALID));
        let not_yet = format!(r#"{{"sub":"7","exp":{},"nbf":{}}}"#, now() + 600, now() + 300);
        assert_eq!(t.verify(&forge(r#"{"alg":"HS256"}"#, &not_yet, SECRET)), Err(INVALID));
        let no_exp = r#"{"sub":"7"}"#;
        assert_eq!(t.verify(&forge(r#"{"alg":"HS256"}"#, no_exp, SECRET)), Err(INVALID));
        let no_sub = format!(r#"{{"exp":{}}}"#, now() + 60);
        assert_eq!(t.verify(&forge(r#"{"alg":"HS256"}"#, &no_sub, SECRET)), Err(INVALID));
        assert_eq!(t.verify("not.a.token"), Err(INVALID));
        assert_eq!(t.verify(""), Err(INVALID));
    }

    #[test]
    fn the_generation_copy_never_holds_more_than_its_bound() {
        let generations = Generations::default();
        let now = Instant::now();
        for id in 0..(3 * MAX_GENERATIONS as i64) {
            generations.remember(id, Some(1), now);
            assert!(generations.known.borrow().len() <= MAX_GENERATIONS, "{id}");
        }
        // One already known is updated in place, whatever the size.
        let last = 3 * MAX_GENERATIONS as i64 - 1;
        let before = generations.known.borrow().len();
        generations.remember(last, Some(2), now);
        assert_eq!(generations.known.borrow().len(), before);
        assert_eq!(generations.known.borrow()[&last].0, Some(2));
    }
}
