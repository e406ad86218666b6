//! Scenarios 3-4: servicea signs its own short-lived token with its own key.
//!
//! Lifetime is seconds (`TOKEN_LIFETIME_SECS`, default 30): long enough to
//! cross one hop, short enough that a leaked token is soon useless. The
//! receivers allow `LEEWAY_SECS` (default 5) of clock skew. (The original
//! used a 1 s lifetime, which only works with zero skew.)

use s2s_auth::jws::{self, Claims};

use crate::{error::AppError, state::ServiceState};

/// What to do when the key is missing: the two ways to create it.
pub const KEY_HINT: &str = "Create it with `curl -X POST localhost:3000/gen-keys` \
     (or `cargo run --release --bin app -- gen-keys`)";

/// A token from servicea for `audience`; expired an hour ago if `expired`.
pub fn mint(state: &ServiceState, audience: &str, expired: bool) -> Result<String, AppError> {
    let key = state
        .signing_key
        .get()
        .map_err(|source| AppError::FileUnavailable {
            what: "scenario-3 signing key",
            source,
            hint: KEY_HINT,
        })?;
    let mut claims = Claims::new();
    claims.insert("iss".into(), state.args.issuer.clone().into());
    claims.insert("sub".into(), state.name.clone().into());
    claims.insert("aud".into(), audience.into());
    jws::set_times(&mut claims, state.args.token_lifetime_secs, expired);
    let token = jws::sign(&claims, &key, state.args.algorithm)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tracing::info!(
        "signed {} token myself (iss {}, sub {}, aud {audience}, {} s lifetime, {}) with {}",
        if expired { "an EXPIRED" } else { "a" },
        state.args.issuer,
        state.name,
        state.args.token_lifetime_secs,
        state.args.algorithm,
        state.signing_key.path().display(),
    );
    Ok(token)
}
