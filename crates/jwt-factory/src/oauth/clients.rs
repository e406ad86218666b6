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
//! A client without `key_file` is registered but cannot authenticate.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use s2s_auth::{KeyId, PublicKey, SigningAlgorithm, watched::WatchedFile};
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
    /// The audiences (`resource` / `audience` values) it may ask for.
    #[serde(default)]
    audiences: Vec<String>,
}

/// One registered client.
#[derive(Debug)]
pub struct Client {
    pub id: KeyId,
    /// Its public key, reloaded when the file changes; `None`: it cannot
    /// authenticate.
    pub key: Option<WatchedFile<PublicKey>>,
    /// What it may ask for, each a valid key id.
    pub audiences: Vec<String>,
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
            let key = entry.key_file.map(|path| {
                WatchedFile::new(
                    path,
                    "client public key",
                    "the client's key_file in CLIENTS_FILE must be its public key \
                     (servicea's: `curl -X POST localhost:3000/gen-keys`)",
                    move |pem| PublicKey::from_pem_for(pem, alg),
                )
            });
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
            "not json",
        ] {
            assert!(Registry::parse(bad, alg).is_err(), "{bad}");
        }
    }
}
