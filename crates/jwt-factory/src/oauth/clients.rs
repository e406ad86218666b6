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
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{JwkSet, PublicKeyUse},
};
use s2s_auth::{KeyId, PublicKey, SigningAlgorithm, watched::WatchedFile};
use s2s_web::{
    outbound::{self, Deadline, Target, Timeouts},
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

/// How long a fetched client JWK Set is used before it is fetched again.
pub const CLIENT_JWKS_TTL: Duration = Duration::from_secs(300);
/// At most one fetch per this long (a `kid` the set lacks, a failure), so
/// assertions with made-up `kid`s cannot make the factory hammer a client.
pub const CLIENT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// A fetched JWK Set's usable keys, by `kid`.
type Keys = HashMap<String, Arc<DecodingKey>>;

/// A client's JWK Set, fetched when needed and cached.
#[derive(Debug)]
pub struct RemoteJwks {
    pub url: String,
    alg: SigningAlgorithm,
    /// The keys by `kid`, and when they were fetched.
    cached: Mutex<Option<(Instant, Keys)>>,
    /// One fetch at a time; holds when the last one started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    fn new(url: String, alg: SigningAlgorithm) -> Self {
        Self {
            url,
            alg,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    fn lookup(&self, kid: &str, fresh_only: bool) -> Option<Arc<DecodingKey>> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let (at, keys) = cached.as_ref()?;
        if fresh_only && at.elapsed() > CLIENT_JWKS_TTL {
            return None;
        }
        keys.get(kid).cloned()
    }

    /// The key named `kid`: from the cache, or after fetching the set.
    pub async fn key_for(
        &self,
        kid: &str,
        http: &reqwest::Client,
        timeouts: Timeouts,
    ) -> Result<Arc<DecodingKey>, String> {
        if let Some(key) = self.lookup(kid, true) {
            return Ok(key);
        }
        let mut last = self.fetching.lock().await;
        if let Some(key) = self.lookup(kid, true) {
            return Ok(key);
        }
        if last.is_some_and(|t| t.elapsed() < CLIENT_JWKS_MIN_REFETCH) {
            return self
                .lookup(kid, false)
                .ok_or_else(|| format!("no key with kid {kid} in the client's JWK Set"));
        }
        *last = Some(Instant::now());
        tracing::info!("fetching the client's JWK Set from {}", self.url);
        let target = Target {
            who: "the client's JWK Set",
            url: self.url.clone(),
        };
        let fetched = outbound::send(
            http.get(&self.url),
            &target,
            &RequestId(None),
            Deadline::start(timeouts),
            outbound::Repeat::IfSafe,
        )
        .await;
        let keys = match fetched {
            Ok((status, _, body)) if status.is_success() => {
                let set: JwkSet = serde_json::from_str(&body)
                    .map_err(|e| format!("{} is not a JWK Set: {e}", self.url))?;
                self.usable(&set)
            }
            Ok((status, _, _)) => {
                tracing::warn!("client JWK Set {} answered {status}", self.url);
                return self.lookup(kid, false).ok_or_else(|| {
                    format!("the client's JWK Set could not be fetched ({status})")
                });
            }
            Err(e) => {
                tracing::warn!("client JWK Set unreachable: {e}");
                return self
                    .lookup(kid, false)
                    .ok_or_else(|| "the client's JWK Set could not be fetched".to_owned());
            }
        };
        let key = keys.get(kid).cloned();
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), keys));
        key.ok_or_else(|| format!("no key with kid {kid} in the client's JWK Set"))
    }

    /// Signature keys for the pinned algorithm, by `kid`.
    fn usable(&self, set: &JwkSet) -> Keys {
        let mut keys = HashMap::new();
        for jwk in set.keys.iter().take(MAX_CLIENT_KEYS) {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg_ok = jwk
                .common
                .key_algorithm
                .is_none_or(|a| a.to_string() == self.alg.name());
            let use_ok = matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            );
            let family_ok = DecodingKey::from_jwk(jwk)
                .ok()
                .filter(|k| k.family() == self.alg.jwt().family());
            if let (true, true, Some(key)) = (alg_ok, use_ok, family_ok) {
                keys.insert(kid, Arc::new(key));
            }
        }
        keys
    }
}

/// Most keys taken from one client's JWK Set.
const MAX_CLIENT_KEYS: usize = 16;

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
                    "the client's key_file in CLIENTS_FILE must be its public key \
                     (servicea's: `curl -X POST localhost:3000/gen-keys`)",
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
