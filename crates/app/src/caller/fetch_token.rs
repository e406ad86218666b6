//! `app fetch-token`: a token exactly as servicea gets one, printed. The
//! workshop's stand-in for a token captured on the wire, to show which
//! replays work and which do not.

use std::sync::Arc;

use s2s_web::{outbound::Deadline, request_tracing::RequestId};

use super::{self_signed, state::State, sts_client::Cached};
use crate::error::AppError;

/// How servicea gets the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Scenario 6: `POST /token` over plain http, a bearer token.
    Bearer,
    /// Scenario 8: `POST /token` over mTLS, bound to servicea's certificate.
    Bound,
}

impl State {
    /// A token for `audience` from the factory's `POST /token`, through
    /// servicea's cache, as scenarios 6 and 8 get theirs.
    pub async fn token(&self, audience: &str, grant: Grant) -> Result<Arc<Cached>, AppError> {
        let sts = match grant {
            Grant::Bearer => &self.sts,
            Grant::Bound => &self.sts_bound,
        };
        let deadline = Deadline::start(self.settings.common.timeouts);
        sts.token(audience, &RequestId(None), deadline).await
    }

    /// A token for `audience` signed by servicea itself (scenario 3's).
    pub async fn self_signed(&self, audience: &str) -> Result<String, AppError> {
        self_signed::mint(&self.self_key, &self.settings, audience, false).await
    }
}
