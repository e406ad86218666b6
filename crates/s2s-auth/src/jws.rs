//! Signing: a claims object in, a compact JWS (`header.payload.signature`) out.
//!
//! Why not `jsonwebtoken::encode`? Version 11 with aws-lc-rs re-parses the
//! RSA private key on every call, which costs more than the signature itself.
//! This module signs with an aws-lc-rs key parsed once ([`RsaKeyPair`]) and
//! keeps `jsonwebtoken` for what it does well: decoding and validation. The
//! format is RFC 7515 compact serialization, base64url without padding.

use aws_lc_rs::rand::SystemRandom;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

use crate::{RsaKeyPair, SigningAlgorithm};

/// A claims set: a JSON object.
pub type Claims = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

/// Signs `claims` with `key` using `alg`; the header is `{"alg","typ":"JWT"}`.
pub fn sign(claims: &Claims, key: &RsaKeyPair, alg: SigningAlgorithm) -> Result<String, SignError> {
    let header = serde_json::json!({ "alg": alg.name(), "typ": "JWT" });
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?;
    let payload = serde_json::to_vec(claims).map_err(|_| SignError)?;

    let mut token = String::with_capacity(64 + payload.len() * 4 / 3 + 350);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);

    let signer = key.signer();
    let mut signature = vec![0; signer.public_modulus_len()];
    signer
        .sign(
            alg.encoding(),
            &SystemRandom::new(),
            token.as_bytes(),
            &mut signature,
        )
        .map_err(|_| SignError)?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}
