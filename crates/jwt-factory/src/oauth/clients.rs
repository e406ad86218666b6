//! The client registry: which clients may ask `POST /token` for tokens,
//! the public keys their assertions are checked with, and the audiences
//! each may ask for.
//!
//! A JSON file (`CLIENTS_FILE`, committed default `env/clients.json`),
//! loaded when first needed and reloaded when it changes (it is a
//! [`WatchedFile`]), so a client can be added without a restart:
//!
//! ```json
//! {"clients": [
//!   {"client_id": "servicea", "key_file": "scenario-3-keys/jwt-public.pem",
//!    "audiences": ["serviceb", "servicec"]},
//!   {"client_id": "serviceb", "audiences": []}
//! ]}
//! ```
//!
//! Every `client_id` and audience is checked with the key-id rule
//! ([`KeyId::parse`]) before it reaches a map; unknown fields are refused,
//! so a misspelt `audience` is an error, not a client with no audiences.
//! A key file is itself watched: when servicea's `gen-keys` writes a new
//! key pair, the factory uses the new public key at the next request.
//! Instead of `key_file`, a client may name `jwks_uri` (as RFC 7591 does):
//! a JWK Set it serves itself, so it can rotate its own key without
//! touching the factory ([`RemoteJwks`]). A client with neither is
//! registered but cannot authenticate.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::Duration,
};

use jsonwebtoken::DecodingKey;
use s2s_auth::{KeyId, PublicKey, SigningAlgorithm, watched::WatchedFile};
use s2s_web::{
    jwks_cache::{Bounds, JwksCache, JwksError, Source},
    outbound::Timeouts,
    request_tracing::RequestId,
};
use serde::Deserialize;

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    clients: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    client_id: String,
    /// A public key PEM file (the client's own key pair's public half).
    #[serde(default)]
    key_file: Option<PathBuf>,
    /// Or a JWK Set URL the client serves (http or https).
    #[serde(default)]
    jwks_uri: Option<String>,
    /// The audiences (`resource` / `audience` values) it may ask for.
    #[serde(default)]
    audiences: Vec<String>,
}

/// One registered client.
#[derive(Debug)]
pub struct Client {
    pub id: KeyId,
    /// Where its public keys are; `None`: it cannot authenticate.
    pub key: Option<KeySource>,
    /// What it may ask for, each a valid key id.
    pub audiences: Vec<String>,
}

/// Where a client's public keys are.
#[derive(Debug)]
pub enum KeySource {
    /// A PEM file, reloaded when it changes.
    File(WatchedFile<PublicKey>),
    /// A JWK Set the client serves; the assertion's `kid` picks the key.
    Jwks(RemoteJwks),
}

/// How the factory holds its clients' JWK Sets: the receivers' rules
/// ([`s2s_web::jwks_cache`]), with bounds of their own. Flattened into
/// [`crate::config::Config`].
#[derive(clap::Args, Debug, Clone)]
pub struct ClientJwksArgs {
    /// Longest time a client's JWK Set (`jwks_uri`) is fresh, seconds (less
    /// if the client's Cache-Control max-age says so; never less than
    /// CLIENT_JWKS_REFRESH_MIN_SECS). Refreshed in the background at 80%
    /// of it, so a key a client publishes this long before it signs with
    /// it is always known in time.
    #[arg(long, env = "CLIENT_JWKS_MAX_AGE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub client_jwks_max_age_secs: u64,

    /// At most one refetch of a client's JWK Set per this many seconds,
    /// however many unknown `kid`s its assertions name.
    #[arg(long, env = "CLIENT_JWKS_REFRESH_MIN_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub client_jwks_refresh_min_secs: u64,

    /// How long past its freshness a client's cached JWK Set still serves
    /// while the client's server cannot be reached, seconds: a key the
    /// client withdrew stops working after this at most.
    #[arg(long, env = "CLIENT_JWKS_MAX_STALE_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub client_jwks_max_stale_secs: u64,
}

impl ClientJwksArgs {
    /// The caches' limits, with the factory's outbound `timeouts`.
    pub fn limits(&self, timeouts: Timeouts) -> JwksLimits {
        JwksLimits {
            bounds: Bounds {
                max_age: Duration::from_secs(self.client_jwks_max_age_secs),
                min_refresh: Duration::from_secs(self.client_jwks_refresh_min_secs),
                max_stale: Duration::from_secs(self.client_jwks_max_stale_secs),
            },
            timeouts,
        }
    }
}

/// What a client's JWK Set cache needs beyond its URL: its bounds and the
/// outbound timeouts (both from the factory's configuration).
#[derive(Clone, Copy, Debug)]
pub struct JwksLimits {
    pub bounds: Bounds,
    pub timeouts: Timeouts,
}

/// A client's JWK Set, fetched when needed and cached with the receivers'
/// rules ([`s2s_web::jwks_cache`]): duplicate `kid`s name no key, `use`,
/// `key_ops`, `alg` and `crv` must fit the pinned algorithm, `kid`s are
/// plain and bounded, a stale copy serves CLIENT_JWKS_MAX_STALE_SECS at
/// most, unknown `kid`s refetch at most once per
/// CLIENT_JWKS_REFRESH_MIN_SECS, and a background refresh keeps the set
/// fresh so made-up `kid`s cannot delay a client's published next key.
#[derive(Debug)]
pub struct RemoteJwks {
    pub url: String,
    alg: SigningAlgorithm,
    /// Built at first use, with the factory's limits.
    cache: OnceLock<Arc<JwksCache>>,
}

impl RemoteJwks {
    fn new(url: String, alg: SigningAlgorithm) -> Self {
        Self {
            url,
            alg,
            cache: OnceLock::new(),
        }
    }

    fn cache(&self, limits: JwksLimits) -> &Arc<JwksCache> {
        self.cache.get_or_init(|| {
            let source = Source {
                who: "the client's JWK Set",
                url: self.url.clone(),
                owner: None,
                alg: self.alg,
            };
            Arc::new(JwksCache::new(source, limits.bounds, limits.timeouts))
        })
    }

    /// The key named `kid`: from the cache, or after fetching the set
    /// (within the limits above). Starts the background refresh once a set
    /// is held.
    pub async fn key_for(
        &self,
        kid: &str,
        http: &reqwest::Client,
        limits: JwksLimits,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        let cache = self.cache(limits);
        let key = cache.key_for(kid, http, &RequestId(None)).await;
        cache.keep_fresh(http);
        key
    }

    /// How many times the set was fetched.
    pub fn fetches(&self) -> u64 {
        self.cache.get().map_or(0, |c| c.fetches())
    }
}

/// Every registered client, by id.
#[derive(Debug, Default)]
pub struct Registry {
    pub clients: BTreeMap<KeyId, Arc<Client>>,
}

impl Registry {
    /// Parses the file's text; keys are parsed for `alg` when first used.
    pub fn parse(text: &str, alg: SigningAlgorithm) -> Result<Self, String> {
        let file: File =
            serde_json::from_str(text).map_err(|e| format!("not a client registry: {e}"))?;
        let mut clients = BTreeMap::new();
        for entry in file.clients {
            let id = KeyId::parse(&entry.client_id)
                .map_err(|e| format!("client_id {:?}: {e}", entry.client_id))?;
            let mut audiences = Vec::with_capacity(entry.audiences.len());
            for aud in entry.audiences {
                KeyId::parse(&aud).map_err(|e| format!("{id}: audience {aud:?}: {e}"))?;
                audiences.push(aud);
            }
            let key = match (entry.key_file, entry.jwks_uri) {
                (Some(_), Some(_)) => {
                    return Err(format!("{id}: give key_file or jwks_uri, not both"));
                }
                (Some(path), None) => Some(KeySource::File(WatchedFile::new(
                    path,
                    "client public key",
                    key_file_hint(),
                    move |pem| PublicKey::from_pem_for(pem, alg),
                ))),
                (None, Some(uri)) => {
                    let url = reqwest::Url::parse(&uri)
                        .map_err(|e| format!("{id}: jwks_uri {uri:?}: {e}"))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(format!("{id}: jwks_uri must be http or https"));
                    }
                    Some(KeySource::Jwks(RemoteJwks::new(url.to_string(), alg)))
                }
                (None, None) => None,
            };
            let client = Client {
                id: id.clone(),
                key,
                audiences,
            };
            if clients.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(format!("client_id {id} is registered twice"));
            }
        }
        Ok(Self { clients })
    }

    pub fn get(&self, id: &KeyId) -> Option<Arc<Client>> {
        self.clients.get(id).cloned()
    }
}

/// What a client's unusable `key_file` must be, and how servicea makes its.
fn key_file_hint() -> &'static str {
    static HINT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "the client's key_file in CLIENTS_FILE must be its public key \
             (servicea's: `curl -X POST {}/gen-keys`)",
            topology::SERVICEA.http_url()
        )
    });
    HINT.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_bad_ids() {
        let alg = SigningAlgorithm::RS256;
        let ok = r#"{"clients":[{"client_id":"servicea","key_file":"k.pem","audiences":["serviceb"]},
                                {"client_id":"serviceb"}]}"#;
        let r = Registry::parse(ok, alg).unwrap_or_default();
        assert_eq!(r.clients.len(), 2);
        for bad in [
            r#"{"clients":[{"client_id":"../x"}]}"#,
            r#"{"clients":[{"client_id":"a","audiences":["b/c"]}]}"#,
            r#"{"clients":[{"client_id":"a","audience":["b"]}]}"#,
            r#"{"clients":[{"client_id":"a"},{"client_id":"a"}]}"#,
            r#"{"clients":[{"client_id":"a","key_file":"k","jwks_uri":"http://x/"}]}"#,
            r#"{"clients":[{"client_id":"a","jwks_uri":"file:///etc/passwd"}]}"#,
            "not json",
        ] {
            assert!(Registry::parse(bad, alg).is_err(), "{bad}");
        }
    }
}
