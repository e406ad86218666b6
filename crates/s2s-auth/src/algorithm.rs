//! The signing algorithm is configuration (`ALGORITHM`), never taken from a
//! token. Verifiers accept exactly this one algorithm, which is what defeats
//! `alg: none` and RSA/HMAC key confusion: a token whose header names any
//! other algorithm is refused before its signature is looked at.
//!
//! Offered: the RSA family (RS256..PS512, RSA-2048 keys, the default because
//! the original demo used it), ECDSA (ES256 on P-256, ES384 on P-384) and
//! EdDSA (Ed25519). The elliptic-curve algorithms sign tens of times faster
//! than RSA-2048 with much smaller keys and tokens; `scripts/bench.sh`
//! measures the difference end to end. HMAC is not offered: a shared secret
//! would let every verifier mint tokens.

use std::{fmt, str::FromStr};

use aws_lc_rs::signature::{self as sig, RsaEncoding};
use jsonwebtoken::Algorithm;

/// A JWS algorithm (RFC 7518 section 3, RFC 8037).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of key an algorithm signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, 2048 bits when we generate it.
    Rsa,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
        })
    }
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The same algorithm as `jsonwebtoken` names it, for verification.
    pub fn jwt(self) -> Algorithm {
        match self {
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The key this algorithm needs.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Self::ES256 => KeyKind::EcP256,
            Self::ES384 => KeyKind::EcP384,
            Self::EdDSA => KeyKind::Ed25519,
            _ => KeyKind::Rsa,
        }
    }

    /// The aws-lc-rs padding and digest, for RSA signing.
    pub(crate) fn rsa_encoding(self) -> Option<&'static dyn RsaEncoding> {
        Some(match self {
            Self::RS256 => &sig::RSA_PKCS1_SHA256,
            Self::RS384 => &sig::RSA_PKCS1_SHA384,
            Self::RS512 => &sig::RSA_PKCS1_SHA512,
            Self::PS256 => &sig::RSA_PSS_SHA256,
            Self::PS384 => &sig::RSA_PSS_SHA384,
            Self::PS512 => &sig::RSA_PSS_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Refusal to use an algorithm we do not offer (`none`, `HS256`, ...).
#[derive(Debug, thiserror::Error)]
#[error(
    "unsupported algorithm {0:?}: use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
)]
pub struct UnsupportedAlgorithm(String);

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnsupportedAlgorithm(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_what_is_offered() {
        for a in SigningAlgorithm::ALL {
            assert_eq!(a.name().parse::<SigningAlgorithm>().ok(), Some(a));
        }
        for bad in ["none", "None", "HS256", "ES512", "rs256", "EDDSA", ""] {
            assert!(bad.parse::<SigningAlgorithm>().is_err(), "{bad}");
        }
    }
}
