//! Client authentication with `private_key_jwt` (RFC 7523 §2.2 and §3,
//! OpenID Connect Core §9): the client sends
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! and `client_assertion=<JWT>`, a JWT it signed with its own private key.
//!
//! The assertion must:
//! - name the pinned algorithm (`ALGORITHM`) in its header: `none`, HS256
//!   keyed with the public key, or any other algorithm is refused before a
//!   key is looked at; no `crit`; a `typ`, if any, of a client assertion
//!   (`JWT`, or `client-authentication+jwt` as the OAuth working group's
//!   draft names it): an access token (`at+jwt`) is not one;
//! - have `iss` = `sub` = a registered `client_id` (and equal the
//!   `client_id` parameter, if one is sent);
//! - be signed by the key registered for that client;
//! - have `aud` = the factory's issuer or the endpoint's URL (plain or the
//!   RFC 8705 mTLS alias); an array may name only such values;
//! - have `exp`, `iat` and `nbf` as NumericDates (integer or float, read
//!   by [`s2s_auth::numeric_date`]); an `exp` in the future, at most
//!   `MAX_ASSERTION_LIFETIME_SECS` ahead (plus the leeway); an `nbf`
//!   honoured, an `iat` not in the future;
//! - have a `jti` never seen before; it is remembered until `exp` plus the
//!   leeway, as long as validation would accept the assertion.
//!
//! [`authenticate`] checks all of that but the `jti`: the endpoint first
//! checks the rest of its request (an audience the client may have, a
//! `token` to introspect), then spends the `jti` with
//! [`Authenticated::spend_jti`] just before it answers. A request refused
//! for its shape costs no room in the `jti` cache, and the same assertion
//! can be sent again, fixed.
//!
//! Every failure is `invalid_client` (401) with a description of the rule
//! broken; an unknown client and a client without a key get the same one
//! (ids cannot be enumerated), the log says which. Values the caller chose
//! are shown through [`untrusted`].

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, Validation, errors::ErrorKind};
use s2s_auth::{
    KeyId,
    jws::Claims,
    now_unix,
    numeric_date::{NumericDate, NumericDateError, numeric_date},
    untrusted,
    verify::MAX_TOKEN_LEN,
};
use serde_json::Value;

use super::{
    Form, JWT_BEARER, OAuthError,
    clients::{Client, KeySource},
    jti::JtiRefusal,
};
use crate::{custody::SharedJti, state::AppState};

/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// The `typ`s of a client assertion: the generic one, and the explicit
/// type of draft-ietf-oauth-rfc7523bis. Compared without regard to case,
/// with or without `application/`. No `typ` is accepted too (RFC 7523).
const ASSERTION_TYPS: [&str; 2] = ["JWT", "client-authentication+jwt"];

/// A client that proved who it is, with an assertion whose `jti` is not
/// spent yet.
#[derive(Debug)]
#[must_use = "spend the assertion's jti (spend_jti) before answering"]
pub struct Authenticated {
    pub client: Arc<Client>,
    jti: String,
    /// The assertion's `exp`, whole seconds, rounded up.
    exp: i64,
}

impl Authenticated {
    /// Spends the assertion's `jti`: call it once the request will be
    /// answered. An error if it was used before (a replay) or the
    /// client's share of the cache is full.
    ///
    /// With OpenBao, the `jti` is then spent for every replica as well
    /// ([`crate::custody::Custody::spend_jti`]): an assertion used on one
    /// replica is refused on the others.
    pub async fn spend_jti(&self, state: &AppState) -> Result<(), OAuthError> {
        let id = self.client.id.as_str();
        // The registry served this request's client a moment ago: if it
        // cannot be read now, one client's share is the safe guess.
        let clients = state.oauth.clients.get().map_or(1, |r| r.clients.len());
        state
            .oauth
            .jtis
            .first_use(id, &self.jti, self.exp, now_unix(), clients)
            .map_err(|e| bad(e.to_string()))?;
        let leeway = i64::try_from(state.config.leeway_secs).unwrap_or(i64::MAX / 4);
        let forget_after = self.exp.saturating_add(leeway);
        state
            .custody
            .spend_jti(id, &self.jti, forget_after)
            .await
            .map_err(|e| match e {
                SharedJti::Replay => bad(JtiRefusal::Replay.to_string()),
                SharedJti::Unavailable(why) => OAuthError::unavailable(format!(
                    "cannot make sure this assertion is used once: {why}"
                )),
            })
    }
}

/// The assertion's time claims, read as NumericDates.
struct Times {
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
}

impl Times {
    /// Reads `exp`, `iat` and `nbf` (only to refuse a bad one: the
    /// library honours `nbf`).
    fn read(payload: &Claims, max_lifetime_secs: u64) -> Result<Self, OAuthError> {
        let date =
            |claim| numeric_date(payload, claim).map_err(|e| bad(format!("client assertion {e}")));
        // An `exp` past the year 9999 is first of all too long a lifetime.
        if let Err(NumericDateError::TooLarge { .. }) = numeric_date(payload, "exp") {
            return Err(too_long(max_lifetime_secs));
        }
        let (exp, iat) = (date("exp")?, date("iat")?);
        date("nbf")?;
        Ok(Self { exp, iat })
    }
}

/// Checks the form's client assertion; `audiences` are the `aud` values
/// accepted (the issuer, the endpoint's URLs). The `jti` is checked for
/// form only: [`Authenticated::spend_jti`] spends it.
pub async fn authenticate(
    state: &AppState,
    form: &Form,
    audiences: &[String],
) -> Result<Authenticated, OAuthError> {
    let assertion = assertion_of(form)?;
    let alg = state.config.algorithm;
    let (header, payload) = unverified_parts(assertion).ok_or_else(|| {
        bad("client assertion malformed: not a compact JWS with JSON header and payload")
    })?;
    check_header(&header, alg)?;
    let times = Times::read(&payload, state.config.max_assertion_lifetime_secs)?;
    let id = claimed_client(&payload, form)?;
    let (client, key) = client_key(state, &id, &header).await?;
    let claims = verify_signature(state, assertion, &key, &id, audiences)?;
    check_aud(&claims, audiences)?;
    let exp = check_times(state, &times)?;
    let jti = jti_of(&claims)?;
    tracing::info!(
        client = %id,
        "client {id} authenticated: assertion signed with its registered key ({alg}), aud ok, expires in {} s",
        exp - now_unix()
    );
    Ok(Authenticated {
        client,
        jti: jti.to_owned(),
        exp,
    })
}

/// Who the assertion claims to be (its `iss`), only used to find the key
/// that checks that claim; it must equal the `client_id` parameter, if sent.
fn claimed_client(payload: &Claims, form: &Form) -> Result<KeyId, OAuthError> {
    let claimed = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("client assertion has no iss (it must be your client_id)"))?;
    let id = KeyId::parse(claimed).map_err(|_| {
        bad(format!(
            "client assertion iss {:?} is not a valid client_id",
            untrusted(claimed)
        ))
    })?;
    if let Some(param) = form.get("client_id")
        && param != id.as_str()
    {
        return Err(bad("client_id parameter and the assertion's iss differ"));
    }
    Ok(id)
}

/// The assertion's claims, once its signature verifies with `key` and the
/// library's checks pass: pinned algorithm, `iss` = `sub` = `id`, an
/// accepted `aud`, `exp` and `nbf` with the leeway.
fn verify_signature(
    state: &AppState,
    assertion: &str,
    key: &DecodingKey,
    id: &KeyId,
    audiences: &[String],
) -> Result<Claims, OAuthError> {
    let mut v = Validation::new(state.config.algorithm.jwt());
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v.set_issuer(&[id.as_str()]);
    v.sub = Some(id.to_string());
    v.set_audience(audiences);
    v.validate_nbf = true;
    v.leeway = state.config.leeway_secs;
    jsonwebtoken::decode::<Claims>(assertion, key, &v)
        .map(|data| data.claims)
        .map_err(|e| bad(explain(e.kind(), id, audiences)))
}

/// The assertion's `jti`, checked for form only (spent later).
fn jti_of(claims: &Claims) -> Result<&str, OAuthError> {
    claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| (1..=MAX_JTI_LEN).contains(&j.len()))
        .ok_or_else(|| {
            bad(format!(
                "client assertion needs a jti (1-{MAX_JTI_LEN} characters), used once"
            ))
        })
}

/// `client_assertion`, after `client_assertion_type` says it is a JWT.
fn assertion_of(form: &Form) -> Result<&str, OAuthError> {
    match form.get("client_assertion_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(bad(format!(
                "client_assertion_type {:?} is not supported: use {JWT_BEARER} (private_key_jwt)",
                untrusted(other)
            )));
        }
        None => {
            return Err(bad(format!(
                "no client authentication: send client_assertion_type={JWT_BEARER} and a \
                 client_assertion signed with your private key (private_key_jwt)"
            )));
        }
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| bad("client_assertion missing"))?;
    if assertion.len() > MAX_TOKEN_LEN {
        return Err(bad(format!(
            "client assertion too large: over {MAX_TOKEN_LEN} bytes"
        )));
    }
    Ok(assertion)
}

/// The pinned `alg`, no `crit`, and a client assertion's `typ` (or none).
fn check_header(header: &Claims, alg: s2s_auth::SigningAlgorithm) -> Result<(), OAuthError> {
    if header.get("alg").and_then(Value::as_str) != Some(alg.name()) {
        let named = header.get("alg").unwrap_or(&Value::Null).to_string();
        return Err(bad(format!(
            "client assertion must be signed with {alg} (alg {} refused)",
            untrusted(&named)
        )));
    }
    if header.contains_key("crit") {
        return Err(bad("client assertion has a crit header: not supported"));
    }
    let is_assertion = |t: &str| {
        ASSERTION_TYPS
            .iter()
            .any(|a| s2s_auth::verify::typ_is(t, a))
    };
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(t)) if is_assertion(t) => Ok(()),
        Some(other) => Err(bad(format!(
            "client assertion typ {} is not a client assertion's: use JWT or \
             client-authentication+jwt (or none)",
            untrusted(&other.to_string())
        ))),
    }
}

/// The registered client `id` and the key its assertion must verify
/// with. An unknown client and one without a key get the same answer;
/// the log tells them apart.
async fn client_key(
    state: &AppState,
    id: &KeyId,
    header: &Claims,
) -> Result<(Arc<Client>, Arc<DecodingKey>), OAuthError> {
    let registry = state.oauth.clients.get().map_err(|e| {
        tracing::warn!("client registry unusable: {e}");
        OAuthError::unavailable("the client registry is not usable (see the factory's log)")
    })?;
    let shown = untrusted(id.as_str());
    let cannot = || bad(cannot_authenticate(id));
    let Some(client) = registry.get(id) else {
        tracing::info!(client = %shown, "refused: {shown} is not in the client registry");
        return Err(cannot());
    };
    let Some(source) = client.key.as_ref() else {
        tracing::info!(client = %shown, "refused: {shown} is registered without a key");
        return Err(cannot());
    };
    let key: Arc<DecodingKey> = match source {
        KeySource::File(file) => {
            let key = file.get().map_err(|e| {
                tracing::warn!(client = %id, "refused: {id}'s registered key is unusable: {e}");
                cannot()
            })?;
            Arc::new(key.decoding_key().clone())
        }
        KeySource::Jwks(jwks) => {
            let kid = header.get("kid").and_then(Value::as_str).ok_or_else(|| {
                tracing::info!(client = %id, "refused: {id}'s keys are a JWK Set, and the assertion names no kid");
                cannot()
            })?;
            let http = state.oauth.http.as_ref().ok_or_else(|| {
                OAuthError::unavailable("jwt-factory cannot fetch JWK Sets (see its log)")
            })?;
            jwks.key_for(
                kid,
                http,
                state.config.client_jwks.limits(state.oauth.timeouts),
            )
            .await
            .map_err(|e| {
                tracing::info!(client = %id, "refused: no key of {id}'s JWK Set for this assertion: {e}");
                cannot()
            })?
        }
    };
    Ok((client, key))
}

/// The library accepts an `aud` array that names one accepted value among
/// others; here every value must be accepted (RFC 7523 §3: the assertion
/// is meant for this server alone).
fn check_aud(claims: &Claims, audiences: &[String]) -> Result<(), OAuthError> {
    let accepted = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
    let ok = match claims.get("aud") {
        Some(Value::Array(all)) => !all.is_empty() && all.iter().all(accepted),
        Some(one) => accepted(one),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "client assertion aud must name only this server: one or more of {}",
            audiences.join(", ")
        )))
    }
}

fn too_long(max_lifetime_secs: u64) -> OAuthError {
    bad(format!(
        "client assertion lives too long: exp more than {max_lifetime_secs} s ahead \
         (MAX_ASSERTION_LIFETIME_SECS)"
    ))
}

/// The lifetime cap and `iat`; `exp` in whole seconds, rounded up.
fn check_times(state: &AppState, times: &Times) -> Result<i64, OAuthError> {
    let now = now_unix();
    let leeway = i64::try_from(state.config.leeway_secs).unwrap_or(0);
    let max = i64::try_from(state.config.max_assertion_lifetime_secs).unwrap_or(i64::MAX);
    let exp = times
        .exp
        .ok_or_else(|| bad("client assertion has no exp claim"))?
        .ceil();
    if exp > now.saturating_add(max).saturating_add(leeway) {
        return Err(too_long(state.config.max_assertion_lifetime_secs));
    }
    if times.iat.is_some_and(|iat| iat.floor() > now + leeway) {
        return Err(bad("client assertion issued in the future (iat)"));
    }
    Ok(exp)
}

/// The one answer for every reason a claimed client cannot be believed
/// (not registered, registered without a key, its key unusable or not
/// found, a signature by another key), so the answers cannot tell which
/// client ids exist (item 15). The log says which it was.
fn cannot_authenticate(id: &KeyId) -> String {
    format!(
        "client {} cannot authenticate: no key registered for it verifies this assertion",
        untrusted(id.as_str())
    )
}

fn bad(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(description)
}

/// The header and payload of a compact JWS, not verified.
fn unverified_parts(jwt: &str) -> Option<(Claims, Claims)> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let object = |s: &str| -> Option<Claims> {
        match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    Some((object(h)?, object(p)?))
}

fn explain(kind: &ErrorKind, id: &KeyId, audiences: &[String]) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "client assertion expired".into(),
        ErrorKind::ImmatureSignature => "client assertion not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => {
            tracing::info!(client = %id, "refused: the assertion's signature does not verify with {id}'s registered key");
            cannot_authenticate(id)
        }
        ErrorKind::InvalidAudience => format!(
            "client assertion aud must be one of: {}",
            audiences.join(", ")
        ),
        ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
            "client assertion iss and sub must both be your client_id".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("client assertion has no {c} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "client assertion algorithm refused".into()
        }
        _ => "client assertion malformed".into(),
    }
}
