//! What every handler shares ([`AppState`]), built once at start-up from
//! the configuration: its own module, so routes and OAuth handlers import
//! it from a sibling rather than from the crate root.

use std::sync::Arc;

use crate::{
    config::Config,
    keystore::{self, KeyStore},
    new_key_ids, oauth,
};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The key pairs; shared because `/keys` writes while others read.
    pub keys: Arc<KeyStore>,
    /// Issuer, algorithm, lifetimes: read-only after start-up.
    pub config: Arc<Config>,
    /// Key generations running at once (RSA-2048 takes tens of ms of CPU).
    pub keygen: Arc<tokio::sync::Semaphore>,
    /// `POST /token` and `/introspect`: the client registry, used `jti`s.
    pub oauth: Arc<oauth::Oauth>,
    /// How fast `/keys/{keyId}` may create new key ids.
    pub new_key_ids: Arc<new_key_ids::NewKeyIdRate>,
}

/// At most this many key pairs are generated at once.
pub const KEYGEN_AT_ONCE: usize = 2;

impl AppState {
    /// State for `config`, with the key pairs found in its `keys_dir`.
    pub fn load(config: Config) -> Self {
        Self {
            keys: Arc::new(KeyStore::load(
                &config.keys_dir,
                config.algorithm,
                keystore::Windows {
                    overlap_secs: config.rotation_overlap_secs(),
                    publish_ahead_secs: config.publish_ahead_secs(),
                },
            )),
            oauth: Arc::new(oauth::Oauth::new(&config)),
            new_key_ids: Arc::new(new_key_ids::NewKeyIdRate::new(
                config.new_key_ids_per_minute,
            )),
            config: Arc::new(config),
            keygen: Arc::new(tokio::sync::Semaphore::new(KEYGEN_AT_ONCE)),
        }
    }
}
