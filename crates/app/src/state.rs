//! What every handler of a service shares, built once at start-up.

use std::{ops::Deref, sync::Arc, time::Duration};

use s2s_auth::{KeyPair, PublicKey, watched::WatchedFile};

use crate::{
    config::{Role, ServiceArgs},
    jwks::JwksCache,
    outbound,
};

/// Cheap to clone: one `Arc`.
#[derive(Clone, Debug)]
pub struct ServiceState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    /// Which service this is; decides the routes it serves.
    pub role: Role,
    /// `SERVICE_NAME`: the `aud` it accepts, the `sub` it signs as.
    pub name: String,
    /// Endpoints, paths, lifetimes, timeouts.
    pub args: ServiceArgs,
    /// The one plain-http client of the process (jwt-factory, scenarios 1-2):
    /// pooled keep-alive connections, connect and request timeouts.
    pub http: reqwest::Client,
    /// The https client for scenarios 3-4, trusting `CA_CERT_PATH` and
    /// nothing else. Built when the CA file is first needed and rebuilt only
    /// if that file changes, so `gen-certs` can run after servicea starts.
    pub https: WatchedFile<reqwest::Client>,
    /// servicea's scenario-3 signing key, parsed once, reloaded on change.
    pub signing_key: WatchedFile<KeyPair>,
    /// servicea's public key, with which serviceb/servicec verify locally.
    pub caller_key: WatchedFile<PublicKey>,
    /// Scenario 5: the factory's JWK Set, fetched when needed and cached.
    pub jwks: JwksCache,
}

impl Deref for ServiceState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ServiceState {
    pub fn new(role: Role, args: ServiceArgs) -> Result<Self, String> {
        let timeouts = args.timeouts();
        // A key file of the wrong kind for ALGORITHM is a clear 503, not a
        // signature that fails later.
        let alg = args.algorithm;
        let http = outbound::client(timeouts, None)?;
        let https = WatchedFile::new(
            &args.ca_cert_path,
            "CA certificate (https trust)",
            move |pem| outbound::client(timeouts, Some(pem.as_bytes())),
        );
        let signing_key = WatchedFile::new(
            &args.service_a_private_key_path,
            "scenario-3 signing key",
            move |pem| KeyPair::from_private_pem_for(pem, alg).map_err(|e| e.to_string()),
        );
        let caller_key = WatchedFile::new(
            &args.service_a_public_key_path,
            "servicea's public key",
            move |pem| PublicKey::from_pem_for(pem, alg).map_err(|e| e.to_string()),
        );
        let jwks = JwksCache::new(
            args.jwks_url(),
            args.caller.clone(),
            alg,
            Duration::from_secs(args.jwks_max_age_secs),
            Duration::from_secs(args.jwks_refresh_min_secs),
            Duration::from_secs(args.jwks_max_stale_secs),
        );
        Ok(Self(Arc::new(Inner {
            role,
            name: args.service_name(role),
            args,
            http,
            https,
            signing_key,
            caller_key,
            jwks,
        })))
    }
}
