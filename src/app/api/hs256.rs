//! The one signature algorithm the API's tokens use, HMAC-SHA256, given to
//! jsonwebtoken as its crypto provider.
//!
//! jsonwebtoken keeps the parts that are easy to get wrong (header and claim
//! parsing, `exp`/`nbf` checks, the algorithm pin); its built-in providers
//! link code for every JWT algorithm, RSA and elliptic curves included, which
//! tokens signed only with HS256 never run (about 0.5 MB of the binary). This
//! provider signs and verifies with ring, the crypto library rustls already
//! uses here, and refuses any other algorithm, so a token that names one is
//! invalid whatever jsonwebtoken's own checks would have said.
//!
//! Invariant: [`install`] runs before the first token is signed or checked
//! (`Tokens::new` calls it), or jsonwebtoken would panic on a missing provider.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::hmac;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    // Keys come from the configured secret, never from a JWK set.
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes HS256-on-ring jsonwebtoken's provider for this process. Idempotent;
/// an `Err` means it is installed already (only this module installs one).
pub fn install() {
    let _ = PROVIDER.install_default();
}

/// An HMAC key, for signing and for checking.
struct Hs256(hmac::Key);

impl Hs256 {
    fn new(algorithm: &Algorithm, secret: Result<&[u8]>) -> Result<Hs256> {
        if *algorithm != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Ok(Hs256(hmac::Key::new(hmac::HMAC_SHA256, secret?)))
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret())?))
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret())?))
}

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        Ok(hmac::sign(&self.0, message).as_ref().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        // ring compares in constant time.
        hmac::verify(&self.0, message, tag).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_rfc_4231_test_vector() {
        // RFC 4231 §4.3, test case 2: key "Jefe".
        install();
        let key = EncodingKey::from_secret(b"Jefe");
        let tag = signer(&Algorithm::HS256, &key).unwrap().try_sign(b"what do ya want for nothing?").unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn refuses_every_other_algorithm() {
        let key = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        for alg in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(verifier(&alg, &key).is_err(), "{alg:?}");
        }
        let v = verifier(&Algorithm::HS256, &key).unwrap();
        let s = signer(&Algorithm::HS256, &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef")).unwrap();
        let tag = s.try_sign(b"msg").unwrap();
        assert!(v.verify(b"msg", &tag).is_ok());
        assert!(v.verify(b"msg!", &tag).is_err());
        assert!(v.verify(b"msg", &tag[..31].to_vec()).is_err());
    }
}
