//! Events in and out of the `x-s2s-trace` header: base64url of their
//! JSON, bounded by [`MAX_HEADER_BYTES`] both ways.

use axum::http::HeaderValue;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use super::{MAX_HEADER_BYTES, events::Event};

/// A callee's events, from its `x-s2s-trace` answer header.
pub(super) fn read_header(value: &HeaderValue) -> Result<Vec<Event>, String> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(format!("larger than {MAX_HEADER_BYTES} bytes"));
    }
    let json = URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("not a list of events: {e}"))
}

/// Events as an `x-s2s-trace` header value; `None` if they do not fit.
pub(super) fn write_header(events: &[Event]) -> Option<HeaderValue> {
    let json = serde_json::to_vec(events).ok()?;
    let value = URL_SAFE_NO_PAD.encode(json);
    if value.len() > MAX_HEADER_BYTES {
        return None;
    }
    HeaderValue::from_str(&value).ok()
}
