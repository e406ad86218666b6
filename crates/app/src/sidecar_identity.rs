//! The receiver's side of the mesh (scenario 10): what its sidecar verified.
//!
//! serviceb checks nothing itself here. Its sidecar (Envoy, configured from
//! `deploy/istio/`) terminated mTLS, verified the token and applied the
//! AuthorizationPolicy before the request arrived, and says what it found
//! in two headers:
//!
//! - `x-forwarded-client-cert`: the caller's certificate identity (`URI=`,
//!   its SPIFFE ID) and the sidecar's own (`By=`). The sidecar replaces any
//!   such header a caller sent (`SANITIZE_SET`).
//! - `x-mesh-jwt-payload`: the verified token's claims, base64url JSON
//!   (`outputPayloadToHeader`); the sidecar removes any a caller sent.
//!
//! These headers are believable because the sidecar is the only way in. In
//! a cluster, iptables sends every inbound packet of the pod to the
//! sidecar. On a laptop nothing does: a process on the same machine can
//! call the application's port directly and write these headers itself.
//! The README's mesh section says so; the lesson is the platform's part in
//! the trust.

use axum::{Json, extract::MatchedPath, http::HeaderMap};
use base64::Engine as _;
use s2s_web::BadInput;
use serde_json::{Value, json};

use crate::error::AppError;

/// The header the sidecar writes the verified claims to.
pub const PAYLOAD_HEADER: &str = "x-mesh-jwt-payload";
const XFCC: &str = "x-forwarded-client-cert";

/// `/scenario10-server`: answers what the sidecar verified.
pub async fn via_sidecar(path: MatchedPath, headers: HeaderMap) -> Result<Json<Value>, AppError> {
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
    let element = xfcc_element(xfcc);
    let (Some(peer), by) = (element.get("uri"), element.get("by")) else {
        return Err(AppError::NoIdentity(format!(
            "my sidecar saw no SPIFFE ID in the caller's certificate ({XFCC}: {xfcc})"
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
    tracing::info!(
        "{}: my sidecar verified it: peer {principal} (mTLS), {}",
        path.as_str(),
        match &request_principal {
            Some(p) => format!("token {p}"),
            None => "no token".to_owned(),
        }
    );
    Ok(Json(json!({
        "valid": true,
        "verifiedBy": by.map_or("my sidecar".to_owned(), |by| format!("my sidecar ({by})")),
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

/// The last element of an `x-forwarded-client-cert` value (the one the
/// nearest proxy set), as lower-case keys and unquoted values.
pub fn xfcc_element(value: &str) -> std::collections::BTreeMap<String, String> {
    let last = split_unquoted(value, ',').pop().unwrap_or_default();
    split_unquoted(&last, ';')
        .into_iter()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\\\"", "\""),
                None => value.to_owned(),
            };
            Some((key.trim().to_ascii_lowercase(), value))
        })
        .collect()
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
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
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_envoys_sanitize_set_value() {
        let e = xfcc_element(
            "By=spiffe://cluster.local/ns/default/sa/serviceb;Hash=ab12;URI=spiffe://cluster.local/ns/default/sa/servicea",
        );
        assert_eq!(e["uri"], "spiffe://cluster.local/ns/default/sa/servicea");
        assert_eq!(e["by"], "spiffe://cluster.local/ns/default/sa/serviceb");
    }

    #[test]
    fn takes_the_last_element_and_unquotes() {
        let e =
            xfcc_element(r#"URI=spiffe://forged;By=x,By=b;Subject="CN=a,O=b";URI=spiffe://real"#);
        assert_eq!(e["uri"], "spiffe://real");
        assert_eq!(e["subject"], "CN=a,O=b");
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
