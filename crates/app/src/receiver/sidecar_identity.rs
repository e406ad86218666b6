//! The receiver's side of the mesh (scenario 10): what its sidecar verified.
//!
//! serviceb checks nothing itself here. Its sidecar (Envoy, configured from
//! `deploy/istio/`) terminated mTLS, verified the token and applied the
//! AuthorizationPolicy before the request arrived, and says what it found
//! in two headers:
//!
//! - `x-forwarded-client-cert`: the caller's certificate identity (`URI=`,
//!   its SPIFFE ID) and the sidecar's own (`By=`). The laptop's sidecars
//!   replace any such header a caller sent (`SANITIZE_SET`), so it holds
//!   exactly one element, and it is read strictly: more than one element
//!   (Istio's own sidecars append to a caller's, `APPEND_FORWARD`), an
//!   unbalanced quote, a `By` that is not this service's SPIFFE ID, or a
//!   `URI` outside the trust domain is a refusal, never a best guess.
//! - `x-mesh-jwt-payload`: the verified token's claims, base64url JSON
//!   (`outputPayloadToHeader`); the sidecar removes any a caller sent.
//!
//! These headers are believable because the sidecar is the only way in. In
//! a cluster, iptables sends every inbound packet of the pod to the
//! sidecar. On a laptop nothing does: a process on the same machine can
//! call the application's port directly and write these headers itself.
//! The README's mesh section says so; the lesson is the platform's part in
//! the trust.

use axum::{
    Json,
    extract::{MatchedPath, State as Shared},
    http::HeaderMap,
};
use base64::Engine as _;
use s2s_auth::untrusted;
use s2s_web::BadInput;
use serde_json::{Value, json};

use super::state::State;
use crate::error::AppError;

/// The header the sidecar writes the verified claims to.
pub(super) const PAYLOAD_HEADER: &str = mesh::jwt::PAYLOAD_HEADER;
const XFCC: &str = "x-forwarded-client-cert";

/// `/scenario10-server`: answers what the sidecar verified.
pub(super) async fn via_sidecar(
    Shared(state): Shared<State>,
    path: MatchedPath,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    let text = |name: &str| -> Result<Option<&str>, AppError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    AppError::from(BadInput::bad_request(format!("{name}: not ASCII")))
                })
            })
            .transpose()
    };
    let Some(xfcc) = text(XFCC)? else {
        return Err(AppError::NoIdentity(format!(
            "{} is served through the mesh only: no {XFCC} header, so this request did not \
             come through my sidecar over mTLS",
            path.as_str()
        )));
    };
    let trust_domain = &state.settings.common.serve.trust_domain;
    let me = format!("spiffe://{trust_domain}/ns/default/sa/{}", state.name());
    let refuse = |why: String| AppError::NoIdentity(format!("{XFCC} refused: {why}"));
    let element = xfcc_element(xfcc).map_err(refuse)?;
    let by = element.get("by").map(String::as_str);
    if by != Some(me.as_str()) {
        return Err(refuse(format!(
            "it was set for {}, not for me ({me})",
            by.map_or("nobody (no By)".to_owned(), |by| untrusted(by).to_string())
        )));
    }
    let Some(peer) = element
        .get("uri")
        .filter(|uri| uri.starts_with(&format!("spiffe://{trust_domain}/")))
    else {
        return Err(refuse(format!(
            "no SPIFFE ID of trust domain {trust_domain} in the caller's certificate"
        )));
    };
    let claims = match text(PAYLOAD_HEADER)? {
        Some(encoded) => Some(decode_payload(encoded)?),
        None => None,
    };
    let principal = peer.strip_prefix("spiffe://").unwrap_or(peer);
    let request_principal = claims.as_ref().and_then(|c| {
        Some(format!(
            "{}/{}",
            c.get("iss")?.as_str()?,
            c.get("sub")?.as_str()?
        ))
    });
    // Header values: shown bounded and escaped (a 400 KB header must not
    // become 400 KB of log per request).
    let token = request_principal
        .as_deref()
        .map_or("no token".to_owned(), |p| format!("token {}", untrusted(p)));
    tracing::info!(
        "{}: my sidecar verified it: peer {} (mTLS), {token}",
        path.as_str(),
        untrusted(principal)
    );
    s2s_web::trace::check(|| {
        s2s_web::trace::Verdict::allowed(format!(
            "what my sidecar verified: peer {} (mTLS), {token}",
            untrusted(principal)
        ))
    });
    Ok(Json(json!({
        "valid": true,
        "verifiedBy": format!("my sidecar ({me})"),
        "principal": principal,
        "requestPrincipal": request_principal,
        "claims": claims,
    })))
}

/// The claims the sidecar verified.
fn decode_payload(encoded: &str) -> Result<Value, AppError> {
    let bad = |why: &str| AppError::from(BadInput::bad_request(format!("{PAYLOAD_HEADER}: {why}")));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| bad("not base64url"))?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| bad("not JSON"))?;
    if !claims.is_object() {
        return Err(bad("not a JSON object"));
    }
    Ok(claims)
}

/// The one element of an `x-forwarded-client-cert` value, as lower-case
/// keys and unquoted values; why not, if it has more than one element, an
/// unbalanced quote or escape, or a key twice.
pub(super) fn xfcc_element(
    value: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let elements = split_unquoted(value, ',')?;
    let [element] = elements.as_slice() else {
        return Err(format!(
            "{} elements: my sidecar sets exactly one",
            elements.len()
        ));
    };
    let mut pairs = std::collections::BTreeMap::new();
    for pair in split_unquoted(element, ';')? {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not KEY=VALUE", untrusted(&pair)))?;
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\""),
            None => value.to_owned(),
        };
        let key = key.trim().to_ascii_lowercase();
        if pairs.insert(key.clone(), value).is_some() {
            return Err(format!("{} appears twice", untrusted(&key)));
        }
    }
    Ok(pairs)
}

/// Splits at `sep` outside double quotes; an unbalanced quote or a
/// trailing escape is an error.
fn split_unquoted(s: &str, sep: char) -> Result<Vec<String>, String> {
    let (mut parts, mut current, mut quoted, mut escaped) =
        (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted || escaped {
        return Err("an unbalanced quote".to_owned());
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envoys_sanitize_set_value() {
        let e = xfcc_element(
            "By=spiffe://cluster.local/ns/default/sa/serviceb;Hash=ab12;Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/servicea",
        )
        .unwrap();
        assert_eq!(e["uri"], "spiffe://cluster.local/ns/default/sa/servicea");
        assert_eq!(e["by"], "spiffe://cluster.local/ns/default/sa/serviceb");
    }

    #[test]
    fn refuses_what_a_caller_could_have_shaped() {
        for bad in [
            // A forged element before the sidecar's (APPEND_FORWARD).
            "URI=spiffe://cluster.local/ns/default/sa/admin,By=spiffe://x;URI=spiffe://y",
            // A stray quote that would swallow the real element.
            "URI=spiffe://cluster.local/ns/default/sa/admin;X=\",By=b;URI=spiffe://real",
            "URI=spiffe://a;URI=spiffe://b",
            r#"URI="a\""#,
            "no-equals-sign",
        ] {
            assert!(xfcc_element(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_payload_is_a_400() {
        for bad in ["%%%", "bm90IGpzb24", "WzFd"] {
            let e = decode_payload(bad).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        let ok = decode_payload("eyJzdWIiOiJzZXJ2aWNlYSJ9").unwrap();
        assert_eq!(ok["sub"], "servicea");
    }
}
