//! The signing algorithm is configuration (`ALGORITHM`), never taken from a
//! token. Verifiers accept exactly this one algorithm, which is what defeats
//! `alg: none` and RSA/HMAC key confusion: a token whose header names any
//! other algorithm is refused before its signature is looked at.
//!
//! Only the RSA family is offered because the factory's keys are RSA-2048.

use std::{fmt, str::FromStr};

use aws_lc_rs::signature::{self as sig, RsaEncoding};
use jsonwebtoken::Algorithm;

/// An RSA JWS algorithm (RFC 7518 section 3.3 and 3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    #[default]
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 6] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
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
        }
    }

    /// The aws-lc-rs padding and digest, for signing.
    pub(crate) fn encoding(self) -> &'static dyn RsaEncoding {
        match self {
            Self::RS256 => &sig::RSA_PKCS1_SHA256,
            Self::RS384 => &sig::RSA_PKCS1_SHA384,
            Self::RS512 => &sig::RSA_PKCS1_SHA512,
            Self::PS256 => &sig::RSA_PSS_SHA256,
            Self::PS384 => &sig::RSA_PSS_SHA384,
            Self::PS512 => &sig::RSA_PSS_SHA512,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Refusal to use an algorithm we do not offer (`none`, `HS256`, ...).
#[derive(Debug, thiserror::Error)]
#[error("unsupported algorithm {0:?}: use one of RS256, RS384, RS512, PS256, PS384, PS512")]
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
    fn parses_only_the_rsa_family() {
        for a in SigningAlgorithm::ALL {
            assert_eq!(a.name().parse::<SigningAlgorithm>().ok(), Some(a));
        }
        for bad in ["none", "None", "HS256", "ES256", "rs256", ""] {
            assert!(bad.parse::<SigningAlgorithm>().is_err(), "{bad}");
        }
    }
}
