//! What a receiver's handlers share: its settings, one http client, the
//! caller's watched key files, the JWK Set cache and the policy.

use std::{path::PathBuf, sync::Arc};

use s2s_auth::watched::WatchedFile;
use s2s_web::outbound::{self, ClientError};

use super::{args::Settings, authz};
use crate::{
    jwks::JwksCache,
    key_set::{self, NamedKey},
};

shared_state! {
    /// What a receiver's handlers share.
    State => Inner {
        pub(crate) settings: Settings,
        /// The one http client of the process (jwt-factory's `/verify` and JWK Set).
        pub(crate) http: reqwest::Client,
        /// servicea's public key, parsed once, reloaded when the file changes.
        pub(crate) caller_key: WatchedFile<NamedKey>,
        /// The other keys of servicea's key set during a rotation: the next one
        /// (`jwt-public.next.pem`) and the retiring one
        /// (`jwt-public.previous.pem`); usually absent. See [`crate::key_set`].
        pub(crate) caller_other_keys: [WatchedFile<NamedKey>; 2],
        /// Scenario 5: the factory's JWK Set, fetched when needed and cached.
        pub(crate) jwks: JwksCache,
        /// Scenario 7: the authorization policy, re-read when it changes.
        pub(crate) policy: Option<WatchedFile<authz::Policy>>,
    }
}

impl State {
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let alg = settings.common.algorithm;
        let http = outbound::client(settings.common.timeouts, None)?;
        let caller_file = |path: PathBuf, what: &'static str| {
            let owner = settings.caller.clone();
            WatchedFile::new(
                path,
                what,
                crate::defaults::gen_keys_on_servicea_hint(),
                move |pem| NamedKey::parse(pem, &owner, alg),
            )
        };
        let caller_key = caller_file(settings.caller_key.clone(), "servicea's public key");
        let caller_other_keys = [
            caller_file(
                key_set::tagged(&settings.caller_key, "next"),
                "servicea's next public key",
            ),
            caller_file(
                key_set::tagged(&settings.caller_key, "previous"),
                "servicea's retiring public key",
            ),
        ];
        let jwks = JwksCache::new(
            &settings.jwks,
            settings.caller.clone(),
            alg,
            settings.common.timeouts,
        );
        let policy = settings.authz_policy.as_deref().map(authz::watch);
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            caller_key,
            caller_other_keys,
            jwks,
            policy,
        })))
    }

    /// How often the JWK Set was fetched, and how many background
    /// refreshes failed (for tests of the cache).
    pub fn jwks_fetches(&self) -> (u64, u64) {
        (self.jwks.fetches(), self.jwks.background_failures())
    }

    /// `MTLS_MODE`, as the https listener must ask for client certificates.
    pub fn mtls_mode(&self) -> s2s_web::tls::MtlsMode {
        self.settings.mtls_mode
    }

    /// `SERVICE_NAME`.
    pub fn name(&self) -> &str {
        &self.settings.common.name
    }
}
