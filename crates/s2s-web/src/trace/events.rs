//! What a trace holds: hops, checks and notes, serialized as they travel
//! back from service to service in the `x-s2s-trace` header.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One thing that happened while serving the request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Hop(Hop),
    Check(Verdict),
    Note(Note),
}

impl Event {
    pub(super) fn at_ms(&self) -> f64 {
        match self {
            Self::Hop(h) => h.at_ms,
            Self::Check(c) => c.at_ms,
            Self::Note(n) => n.at_ms,
        }
    }
}

/// A call from one service to another.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hop {
    pub from: String,
    pub to: String,
    pub method: String,
    pub url: String,
    /// The answer's status; none if there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer (refused connection, TLS, timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the call started, ms after the trace of the caller began.
    pub at_ms: f64,
    /// How long until the whole answer was read.
    pub ms: f64,
    /// The bearer token the call carried, decoded (no signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<DecodedToken>,
    /// The request id the call carried: the one in every log line the
    /// called service wrote for it, and its events below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the called service recorded, under that request id.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// A verification, authorization or refusal, by the service that made it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Filled in by the recorder.
    #[serde(default)]
    pub by: String,
    /// What was checked, in words ("JWK Set, kid servicea.v1").
    pub what: String,
    pub result: Outcome,
    /// The refusal's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was refused, in the verifier's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The key that verified the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The claims that were required (`iss`, `aud`, `sub`, `typ`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// Filled in by the recorder.
    #[serde(default)]
    pub at_ms: f64,
}

/// What a check decided.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A token passed every check.
    #[default]
    Valid,
    /// A caller's identity is allowed here.
    Allowed,
    /// The request was refused (4xx/5xx).
    Refused,
}

impl Verdict {
    /// A token that passed: `what` says which checks.
    pub fn valid(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            result: Outcome::Valid,
            ..Self::default()
        }
    }

    /// A caller allowed: `what` says by which rule.
    pub fn allowed(what: impl Into<String>) -> Self {
        Self {
            result: Outcome::Allowed,
            ..Self::valid(what)
        }
    }

    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    pub fn expected(mut self, expected: Value) -> Self {
        self.expected = Some(expected);
        self
    }
}

/// A step in words ("token from my cache, 41 s left").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Note {
    #[serde(default)]
    pub by: String,
    pub text: String,
    #[serde(default)]
    pub at_ms: f64,
}

/// A JWT's header and claims, decoded for display. Nothing is verified
/// here, and the signature is not kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DecodedToken {
    pub header: Value,
    pub claims: Value,
}

impl DecodedToken {
    /// The first two parts of a compact JWS, if they are base64url JSON
    /// objects.
    pub fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let mut part = || -> Option<Value> {
            let bytes = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
        };
        Some(Self {
            header: part()?,
            claims: part()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_objects_decode_as_a_token() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for (header, claims) in [("null", "{}"), ("{}", "[1]"), ("\"x\"", "{}"), ("{}", "7")] {
            let token = format!("{}.{}.sig", b64(header), b64(claims));
            assert!(DecodedToken::decode(&token).is_none(), "{header} {claims}");
        }
        assert!(DecodedToken::decode(&format!("{}.{}.sig", b64("{}"), b64("{}"))).is_some());
    }
}
