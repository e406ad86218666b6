//! Verification rules, stated explicitly, and errors a caller can act on.
//!
//! What a token must satisfy here (RFC 8725, "JWT Best Current Practices"):
//! - its header names exactly the pinned algorithm: `none`, HMAC keyed with
//!   the public key, or any other algorithm is refused before the signature
//!   is checked (a key is only ever used with the algorithm it was made for);
//! - no `crit` header: we understand no extensions, so we must refuse them
//!   (RFC 7515 section 4.1.11); `jku`, `x5u`, `jwk`, `x5c` and `kid` are never
//!   used to find a key: the verifier brings its own key;
//! - a valid signature by the expected key;
//! - `exp`, `iss`, `aud` and `sub` present and equal to what the verifier
//!   expects; `nbf` honoured when present; `iat`, when present, not in the
//!   future; an `exp` no further ahead than the configured maximum lifetime;
//! - clock tolerance ([`Expectations::leeway_secs`]) is explicit, never the
//!   library's silent 60 s default.
//!
//! Errors keep the shape of Node's `jsonwebtoken` (`TokenExpiredError`,
//! `NotBeforeError`, `JsonWebTokenError`), so the original demo's README
//! outputs read true against this implementation.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    PublicKey, SigningAlgorithm,
    jws::Claims,
    now_unix,
    numeric_date::{NumericDate, NumericDateError, numeric_date},
    time_fmt::iso_millis,
};

/// Longest token accepted, in bytes. Real tokens here are ~600 bytes; the
/// bound keeps a hostile header from costing base64 and JSON work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

pub use crate::jwk::MAX_KID_LEN;

/// The `typ` both the factory and servicea issue, and so what every
/// verifier here expects (RFC 8725 section 3.11: explicit typing).
pub const TYP_JWT: &str = "JWT";

/// The `typ` of an RFC 9068 JWT access token (`application/at+jwt` in
/// full), which the factory's `POST /token` issues (scenario 6).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";

/// What the verifier expects of a token. Nothing is taken from the token.
#[derive(Clone, Debug)]
pub struct Expectations {
    pub algorithm: SigningAlgorithm,
    /// The `typ` header the token kind is issued with ([`TYP_JWT`]): a token
    /// of another kind (or with none) is refused before its signature is
    /// checked, so one kind cannot pass for another (RFC 8725 section 3.11).
    /// Compared without regard to case, with or without `application/`.
    pub typ: &'static str,
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    /// Clock tolerance for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Refuse tokens whose `exp` is further than this ahead of now (plus
    /// leeway): a stolen long-lived token is a long-lived credential.
    pub max_lifetime_secs: u64,
}

/// A refused token, serialized exactly as Node's `jsonwebtoken` names it.
/// It also deserializes, so a verdict relayed by jwt-factory (`/verify`)
/// becomes this type again instead of travelling as raw JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "name")]
pub enum JwtError {
    #[serde(rename = "TokenExpiredError")]
    #[error("{message} at {expired_at}")]
    Expired {
        message: String,
        #[serde(rename = "expiredAt")]
        expired_at: String,
    },
    #[serde(rename = "NotBeforeError")]
    #[error("{message} until {date}")]
    NotBefore { message: String, date: String },
    #[serde(rename = "JsonWebTokenError")]
    #[error("{message}")]
    Invalid { message: String },
}

impl JwtError {
    /// A `JsonWebTokenError` with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }

    fn malformed() -> Self {
        Self::invalid("jwt malformed")
    }

    /// The human-readable message alone.
    pub fn message(&self) -> &str {
        match self {
            Self::Expired { message, .. }
            | Self::NotBefore { message, .. }
            | Self::Invalid { message } => message,
        }
    }
}

impl Expectations {
    /// What is required, as JSON (`alg`, `typ`, `iss`, `aud`, `sub`,
    /// leeway): for the console's trace of a check.
    pub fn required(&self) -> Value {
        serde_json::json!({
            "alg": self.algorithm.to_string(),
            "typ": self.typ,
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "leeway_secs": self.leeway_secs,
        })
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(self.algorithm.jwt());
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.sub = Some(self.subject.clone());
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = self.leeway_secs;
        v
    }

    /// Checks `token` against these expectations and `key`; the claims on success.
    pub fn verify(&self, token: &str, key: &PublicKey) -> Result<Claims, JwtError> {
        self.verify_with(token, key.decoding_key())
    }

    /// As [`Expectations::verify`], with a key from a JWK Set.
    pub fn verify_with(&self, token: &str, key: &DecodingKey) -> Result<Claims, JwtError> {
        self.check_header(token)?;
        self.check_signature_form(token)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation()) {
            Ok(data) => {
                self.check_claims(&data.claims)?;
                Ok(data.claims)
            }
            Err(err) => Err(self.explain(err.kind(), token)),
        }
    }

    /// The header's `kid`, after the same structure, algorithm and `crit`
    /// checks as [`Expectations::verify`]. The `kid` only *selects* among
    /// the verifier's own keys (a JWK Set it fetched itself); it never
    /// brings a key, and naming no known key is a refusal.
    pub fn kid(&self, token: &str) -> Result<Option<String>, JwtError> {
        self.check_header(token)
    }

    /// Structure, algorithm and `crit`, before any cryptography runs; the `kid`.
    fn check_header(&self, token: &str) -> Result<Option<String>, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::invalid(format!(
                "jwt too large: over {MAX_TOKEN_LEN} bytes"
            )));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::malformed());
        };
        let header = decode_segment(header).ok_or_else(JwtError::malformed)?;
        match header.get("alg").and_then(Value::as_str) {
            Some(alg) if alg == self.algorithm.name() => {}
            _ => return Err(JwtError::invalid("invalid algorithm")),
        }
        if header.get("crit").is_some() {
            return Err(JwtError::invalid(
                "unsupported critical header parameter (crit)",
            ));
        }
        let typ = header.get("typ").and_then(Value::as_str);
        if !typ.is_some_and(|t| typ_is(t, self.typ)) {
            return Err(JwtError::invalid(format!(
                "jwt type invalid. expected: {} (typ header)",
                self.typ
            )));
        }
        // A `kid` is looked up and logged: only plain characters may pass,
        // so it can neither traverse a path nor forge a log line.
        match header.get("kid") {
            None => Ok(None),
            Some(Value::String(kid)) if crate::jwk::plain_kid(kid) => Ok(Some(kid.clone())),
            Some(_) => Err(JwtError::invalid(format!(
                "jwt malformed: kid must be 1-{MAX_KID_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'"
            ))),
        }
    }

    /// ECDSA signatures must be in low-s form (see [`crate::ecdsa`]): the
    /// library accepts both twins, so a token could be re-encoded.
    fn check_signature_form(&self, token: &str) -> Result<(), JwtError> {
        if !matches!(
            self.algorithm,
            SigningAlgorithm::ES256 | SigningAlgorithm::ES384
        ) {
            return Ok(());
        }
        let signature = token
            .rsplit('.')
            .next()
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or_else(JwtError::malformed)?;
        if crate::ecdsa::is_canonical(self.algorithm, &signature) {
            Ok(())
        } else {
            Err(JwtError::invalid(
                "invalid signature: non-canonical ECDSA signature (high s)",
            ))
        }
    }

    /// What `jsonwebtoken` does not check: `iss` must be one string (it
    /// accepts an array holding ours among others), `iat` not in the future,
    /// and the remaining lifetime.
    fn check_claims(&self, claims: &Claims) -> Result<(), JwtError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwtError::invalid(format!(
                "jwt issuer invalid. expected: {}",
                crate::untrusted(&self.issuer)
            )));
        }
        let now = now_unix();
        let leeway = i64::try_from(self.leeway_secs).unwrap_or(i64::MAX);
        let date = |claim: &str| {
            numeric_date(claims, claim)
                .map_err(|e| JwtError::invalid(format!("invalid {claim} value: {e}")))
        };
        let max = i64::try_from(self.max_lifetime_secs).unwrap_or(i64::MAX);
        let too_long = || {
            JwtError::invalid(format!(
                "jwt lifetime too long: exp more than {max} s ahead"
            ))
        };
        // An `exp` past the year 9999 is first of all too long a lifetime.
        let exp = match numeric_date(claims, "exp") {
            Err(NumericDateError::TooLarge { .. }) => return Err(too_long()),
            _ => date("exp")?,
        };
        let iat = date("iat")?;
        date("nbf")?;
        if let Some(iat) = iat {
            if iat.secs() <= 0.0 {
                return Err(JwtError::invalid(
                    "invalid iat value: must be a time after 1970",
                ));
            }
            if iat.floor() > now.saturating_add(leeway) {
                return Err(JwtError::invalid("jwt issued in the future (iat)"));
            }
        }
        if let Some(exp) = exp
            && exp.ceil() > now.saturating_add(max).saturating_add(leeway)
        {
            return Err(too_long());
        }
        Ok(())
    }

    /// Turns a `jsonwebtoken` error kind into the Node-shaped error.
    fn explain(&self, kind: &ErrorKind, token: &str) -> JwtError {
        let expected = |what: &str, value: &str| {
            // The expectations may come from a request (the factory's
            // `/verify` body): shown bounded and escaped.
            JwtError::invalid(format!(
                "jwt {what} invalid. expected: {}",
                crate::untrusted(value)
            ))
        };
        match kind {
            // Only reported after the signature verified, so reading the
            // payload again to say *when* it expired is safe.
            ErrorKind::ExpiredSignature => JwtError::Expired {
                message: "jwt expired".into(),
                expired_at: iso_millis(claim_secs(token, "exp")),
            },
            ErrorKind::ImmatureSignature => JwtError::NotBefore {
                message: "jwt not active".into(),
                date: iso_millis(claim_secs(token, "nbf")),
            },
            ErrorKind::InvalidSignature => JwtError::invalid("invalid signature"),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm => JwtError::invalid("invalid algorithm"),
            ErrorKind::InvalidAudience => expected("audience", &self.audience),
            ErrorKind::InvalidSubject => expected("subject", &self.subject),
            ErrorKind::InvalidIssuer => expected("issuer", &self.issuer),
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "aud" => expected("audience", &self.audience),
                "sub" => expected("subject", &self.subject),
                "iss" => expected("issuer", &self.issuer),
                other => JwtError::invalid(format!("jwt {other} claim required")),
            },
            ErrorKind::InvalidClaimFormat(claim) => {
                JwtError::invalid(format!("invalid {claim} value"))
            }
            _ => JwtError::malformed(),
        }
    }
}

/// Whether a `typ` header value names `expected`, with or without the
/// `application/` prefix, in any case (RFC 8725 section 3.11).
pub fn typ_is(typ: &str, expected: &str) -> bool {
    let bare = match typ.split_at_checked(12) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("application/") => rest,
        _ => typ,
    };
    bare.eq_ignore_ascii_case(expected)
}

/// Whether `token`'s header, not verified, declares `typ` (by the rule
/// [`Expectations::verify_with`] applies). Only for choosing which
/// expectations to verify a token with: the verification checks `typ`
/// again.
pub fn declares_typ(token: &str, typ: &str) -> bool {
    token
        .split('.')
        .next()
        .and_then(decode_segment)
        .and_then(|h| h.get("typ").and_then(Value::as_str).map(|t| typ_is(t, typ)))
        .unwrap_or(false)
}

/// Decodes one base64url segment holding a JSON object.
fn decode_segment(segment: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A numeric claim from the payload, for error messages only.
fn claim_secs(token: &str, claim: &str) -> i64 {
    token
        .split('.')
        .nth(1)
        .and_then(decode_segment)
        .and_then(|c| numeric_date(&c, claim).ok().flatten())
        .map_or(0, NumericDate::floor)
}
