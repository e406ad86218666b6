//! How fast new key ids may be created (`NEW_KEY_IDS_PER_MINUTE`).
//!
//! Why: `GET|POST /keys/{id}` creates a key id for anyone who can reach
//! the factory (the demo's simplification), and every key id grows the
//! JWK Set that every verifier fetches. The store holds at most
//! `keystore::MAX_KEY_IDS` (256), but a loop of `GET /keys/evilN` reached
//! that in 26 s. A token bucket bounds the pace: up to the per-minute
//! number at once, then one more each `60 s / per-minute`. Past it, 429
//! with `Retry-After`. Replacing or rotating the key of an id that exists
//! is not a new id and is never counted: the scenarios keep working.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// A token bucket of new key ids: `per_minute` at once, refilled at
/// `per_minute` a minute.
#[derive(Debug)]
pub struct NewKeyIdRate {
    per_minute: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// New key ids that may be created now (fractional while refilling).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// A new key id refused: the rate is spent until `retry_after`.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "too many new key ids: this factory creates at most {per_minute} new key ids a minute \
     (NEW_KEY_IDS_PER_MINUTE); retry in {}s. Replacing or rotating the key of an existing \
     key id is not limited",
    retry_after.as_secs()
)]
pub struct TooManyNewKeyIds {
    per_minute: u32,
    retry_after: Duration,
}

impl NewKeyIdRate {
    /// A full bucket: `per_minute` (at least 1) new key ids may be created
    /// at once.
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            per_minute,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(per_minute),
                at: Instant::now(),
            }),
        }
    }

    /// Takes one new key id from the bucket, or says when one is back.
    pub fn take(&self) -> Result<(), TooManyNewKeyIds> {
        let rate_per_sec = f64::from(self.per_minute) / 60.0;
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refilled = now.duration_since(bucket.at).as_secs_f64() * rate_per_sec;
        bucket.tokens = (bucket.tokens + refilled).min(f64::from(self.per_minute));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate_per_sec;
        Err(TooManyNewKeyIds {
            per_minute: self.per_minute,
            // Whole seconds, rounded up: a client that waits that long
            // gets its key id.
            retry_after: Duration::from_secs(wait.ceil().max(1.0) as u64),
        })
    }
}

impl IntoResponse for TooManyNewKeyIds {
    fn into_response(self) -> Response {
        let retry = HeaderValue::from(self.retry_after.as_secs());
        let mut body = serde_json::Map::new();
        body.insert(crate::error::ERROR_KEY.to_owned(), self.to_string().into());
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, retry);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_then_a_wait() {
        let rate = NewKeyIdRate::new(3);
        for _ in 0..3 {
            assert!(rate.take().is_ok());
        }
        let refused = rate.take().unwrap_err();
        // One id every 20 s.
        assert!(
            (19..=20).contains(&refused.retry_after.as_secs()),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("NEW_KEY_IDS_PER_MINUTE"));
    }
}
