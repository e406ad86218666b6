//! Public keys as JWKs (RFC 7517), and key ids (`kid`) derived from them.
//!
//! A `kid` names one key pair, not a key id: `servicea.Xb3f0Q2k` is
//! servicea's key id, a dot, and the start of the key's RFC 7638 thumbprint.
//! So a rotated key gets a new `kid` by construction, the same key always
//! gets the same `kid` (also after a restart), and nothing has to be stored
//! for it. The dot occurs in neither a key id nor base64url, so a verifier
//! can tell whose key a `kid` names ([`key_id_of`]) and refuse a token that
//! names another key id's key, however valid its signature.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};

use crate::{KeyId, PublicKey, SigningAlgorithm};

/// Characters of the thumbprint kept in a `kid`: 48 bits, plenty to tell a
/// handful of keys apart.
const THUMBPRINT_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("cannot describe the key as a JWK")]
pub struct JwkError(#[source] jsonwebtoken::errors::Error);

/// The public JWK of `key` for `alg`, with `use: sig` and its `kid`.
pub fn public_jwk(key_id: &KeyId, key: &PublicKey, alg: SigningAlgorithm) -> Result<Jwk, JwkError> {
    let mut jwk = Jwk::from_decoding_key(key.decoding_key(), Some(alg.jwt())).map_err(JwkError)?;
    let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).map_err(JwkError)?;
    let short: String = thumbprint.chars().take(THUMBPRINT_CHARS).collect();
    jwk.common.key_id = Some(format!("{key_id}.{short}"));
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// The key id a `kid` made by [`public_jwk`] belongs to.
pub fn key_id_of(kid: &str) -> Option<&str> {
    kid.split_once('.').map(|(id, _)| id)
}

/// The `kid` of a JWK made by [`public_jwk`].
pub fn kid_of(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    #[test]
    fn kid_is_stable_per_key_and_differs_between_keys() -> Result<(), Box<dyn std::error::Error>> {
        let id = KeyId::parse("servicea")?;
        for alg in [
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
        ] {
            let a = KeyPair::generate(alg)?;
            let b = KeyPair::generate(alg)?;
            let ja = public_jwk(&id, a.public(), alg)?;
            let again = public_jwk(
                &id,
                KeyPair::from_private_pem(a.private_pem())?.public(),
                alg,
            )?;
            assert_eq!(kid_of(&ja), kid_of(&again));
            assert_ne!(kid_of(&ja), kid_of(&public_jwk(&id, b.public(), alg)?));
            assert!(kid_of(&ja).starts_with("servicea."));
            assert_eq!(key_id_of(kid_of(&ja)), Some("servicea"));
            let json = serde_json::to_value(&ja)?;
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], alg.name());
            // It round-trips into a key that verifies what `a` signed.
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&ja)?;
            let token = crate::jws::sign(&serde_json::Map::new(), &a, alg)?;
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            v.validate_exp = false;
            v.validate_aud = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &v)?;
        }
        Ok(())
    }
}
