//! Signing: a claims object in, a compact JWS (`header.payload.signature`) out.
//!
//! Why not `jsonwebtoken::encode`? Version 11 with aws-lc-rs re-parses the
//! private key on every call, which for RSA costs more than the signature
//! itself (`cargo bench -p s2s-auth --bench jwt`: 628 µs against 254 µs per
//! RS256 token here). This module signs with a key parsed once ([`KeyPair`])
//! and keeps `jsonwebtoken` for what it does well: decoding and validation.
//! The format is RFC 7515 compact serialization, base64url without padding.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

pub use crate::keys::SignError;
use crate::{KeyPair, SigningAlgorithm};

/// A claims set: a JSON object.
pub type Claims = Map<String, Value>;

/// How far in the past an expired-on-purpose token (`?expired=1`) expired.
pub const EXPIRED_BY_SECS: i64 = 3600;

/// Sets `iat` and `exp` for a token living `lifetime_secs`: from now, or,
/// with `expired`, one that expired [`EXPIRED_BY_SECS`] ago (to show the
/// refusal). Returns `exp`.
pub fn set_times(claims: &mut Claims, lifetime_secs: u64, expired: bool) -> i64 {
    let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX / 4);
    let now = crate::now_unix();
    let exp = if expired {
        now - EXPIRED_BY_SECS
    } else {
        now.saturating_add(lifetime)
    };
    claims.insert("iat".into(), exp.saturating_sub(lifetime).into());
    claims.insert("exp".into(), exp.into());
    exp
}

/// Signs `claims` with `key` using `alg`; the header is `{"alg","typ":"JWT"}`.
pub fn sign(claims: &Claims, key: &KeyPair, alg: SigningAlgorithm) -> Result<String, SignError> {
    sign_with_kid(claims, key, alg, None)
}

/// As [`sign`], naming the key in the header (`"kid"`) so a verifier holding
/// a JWK Set knows which key to check the signature with.
pub fn sign_with_kid(
    claims: &Claims,
    key: &KeyPair,
    alg: SigningAlgorithm,
    kid: Option<&str>,
) -> Result<String, SignError> {
    sign_typed(claims, key, alg, kid, "JWT")
}

/// As [`sign_with_kid`], with the header's `typ` set to `typ`: `at+jwt`
/// for an RFC 9068 access token, so it cannot be mistaken for another
/// kind of JWT signed by the same key.
pub fn sign_typed(
    claims: &Claims,
    key: &KeyPair,
    alg: SigningAlgorithm,
    kid: Option<&str>,
    typ: &str,
) -> Result<String, SignError> {
    let token = signing_input(claims, alg, kid, typ)?;
    let signature = key.sign(alg, token.as_bytes())?;
    Ok(with_signature(token, &signature))
}

/// The part of a compact JWS that is signed: `header.payload`, base64url,
/// with the header `{"alg","typ","kid"}`. For a signer that is not a
/// [`KeyPair`] (a key held by OpenBao's Transit engine): sign these bytes,
/// then [`with_signature`].
pub fn signing_input(
    claims: &Claims,
    alg: SigningAlgorithm,
    kid: Option<&str>,
    typ: &str,
) -> Result<String, SignError> {
    let header = match kid {
        Some(kid) => serde_json::json!({ "alg": alg.name(), "typ": typ, "kid": kid }),
        None => serde_json::json!({ "alg": alg.name(), "typ": typ }),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignError)?;

    let mut token = String::with_capacity(64 + payload.len() * 4 / 3 + 350);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    Ok(token)
}

/// The compact JWS: `input` (from [`signing_input`]), a dot, `signature`.
pub fn with_signature(mut input: String, signature: &[u8]) -> String {
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut input);
    input
}
