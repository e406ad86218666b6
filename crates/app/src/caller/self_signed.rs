//! Scenarios 3-4: servicea signs its own short-lived token with its own key.
//!
//! Lifetime is seconds (`SELF_SIGNED_LIFETIME_SECS`, default 30): long enough to
//! cross one hop, short enough that a leaked token is soon useless. The
//! receivers allow `LEEWAY_SECS` (default 5) of clock skew. (The original
//! used a 1 s lifetime, which only works with zero skew.)

use s2s_auth::jws::{self, Claims};

use super::{args::Settings, self_key::SelfKey};
use crate::error::AppError;

/// A token from servicea for `audience`; expired an hour ago if `expired`.
pub(super) async fn mint(
    self_key: &SelfKey,
    settings: &Settings,
    audience: &str,
    expired: bool,
) -> Result<String, AppError> {
    let me = &settings.common.name;
    let alg = settings.common.algorithm;
    let mut claims = Claims::new();
    claims.insert("iss".into(), settings.self_signed.issuer.clone().into());
    claims.insert("sub".into(), me.as_str().into());
    claims.insert("aud".into(), audience.into());
    jws::set_times(&mut claims, settings.self_signed.lifetime_secs, expired);
    // The kid lets receivers pick this key among servicea's key set
    // (next, current, retiring: see `key_set`) during a rotation.
    let (token, kid) = self_key.sign(&claims, alg, true).await?;
    tracing::info!(
        "signed {} token myself (iss {}, sub {}, aud {audience}, {} s lifetime, {alg}) with {} (kid {})",
        if expired { "an EXPIRED" } else { "a" },
        settings.self_signed.issuer,
        me,
        settings.self_signed.lifetime_secs,
        self_key.describe(),
        kid,
    );
    s2s_web::trace::note(|| {
        format!(
            "signed {} token myself with my own key (kid {})",
            if expired { "an EXPIRED" } else { "a" },
            kid
        )
    });
    Ok(token)
}
