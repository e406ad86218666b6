//! A refusal's reason, in the refusing service's own words, read from
//! whichever JSON error shape it answers with.

use serde_json::Value;

/// The words of a JSON error, whichever shape the service uses:
/// `error_description`, `error.message` (the Node-shaped verify error),
/// `message`, `error`, or Envoy's `details`.
pub(super) fn refusal_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => reason_of(&json),
        Err(_) => String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// [`refusal_reason`] of a JSON answer already parsed.
///
/// An answer that gathers others (servicea's fan-out: `{"serviceb": ...,
/// "servicec": ...}`) gives the reason of the first one that has one.
/// Otherwise the JSON itself, at most 300 characters.
pub fn reason_of(json: &Value) -> String {
    known_reason(json)
        .or_else(|| {
            json.as_object()?
                .values()
                .filter(|v| v.is_object())
                .find_map(known_reason)
        })
        .unwrap_or_else(|| json.to_string().chars().take(300).collect())
}

/// The reason in one of the shapes [`reason_of`] knows.
fn known_reason(json: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let error = json.get("error");
    json.get("error_description")
        .and_then(text)
        .or_else(|| error.and_then(|e| e.get("message")).and_then(text))
        .or_else(|| json.get("message").and_then(text))
        .or_else(|| error.and_then(text))
        .or_else(|| json.get("details").and_then(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_in_each_shape() {
        let r = |s: &str| refusal_reason(s.as_bytes());
        assert_eq!(
            r(
                r#"{"message":"invalid token","error":{"name":"TokenExpiredError","message":"jwt expired"}}"#
            ),
            "jwt expired"
        );
        assert_eq!(
            r(r#"{"error":"invalid_token","error_description":"no cnf"}"#),
            "no cnf"
        );
        assert_eq!(r(r#"{"message":"no route"}"#), "no route");
        assert_eq!(
            r(r#"{"valid":false,"error":"key not found"}"#),
            "key not found"
        );
        assert_eq!(r("plain text"), "plain text");
        assert_eq!(
            r(
                r#"{"serviceb":{"valid":true},"servicec":{"message":"invalid token","error":{"message":"jwt expired"}}}"#
            ),
            "jwt expired",
            "a fan-out answer: the leg that refused"
        );
        assert_eq!(r(&format!(r#"{{"x":"{}"}}"#, "y".repeat(1000))).len(), 300);
    }
}
