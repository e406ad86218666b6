//! Who holds the factory's private keys (`KEY_BACKEND`), and the three
//! things that differ between the two holders: making a new key, recording
//! a change, and signing.
//!
//! - `files` (the workshop's default): key pairs live in this process,
//!   `/utils/dump` writes them to `KEYS_DIR` (private keys 0600).
//! - `openbao` (seed 002): each key id is a Transit key in OpenBao
//!   (`jwt-factory-{keyId}`), each rotation a new version, and OpenBao
//!   signs. The factory holds public keys and a token; no private key is
//!   ever in its memory or on its disk. The phases of each key id live in
//!   a KV record ([`crate::keystore::RingRecord`]), so a restart loses
//!   nothing. OpenBao down: signing answers 503 naming OpenBao and its
//!   address within OPENBAO_TIMEOUT_MS; verification and the JWK Set go on
//!   from the public keys in memory.

use std::{collections::HashMap, sync::Mutex};

use openbao::{OpenBao, OpenBaoError, setup::FACTORY_KEY_PREFIX, setup::FACTORY_KV_FOLDER};
use s2s_auth::{KeyId, KeyPair, PublicKey, SigningAlgorithm, jws};

use crate::{
    error::{FactoryError, Internal},
    keystore::{Entry, KeyStore, RingRecord, SigningKey},
};

/// Which holder: `KEY_BACKEND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyBackend {
    /// Key pairs in the factory's memory, dumped to KEYS_DIR.
    Files,
    /// Transit keys in OpenBao: the factory never holds a private key.
    Openbao,
}

/// The holder of the keys, with what it needs.
#[derive(Debug)]
pub enum Custody {
    Files,
    OpenBao(Box<Vault>),
}

/// The factory's side of OpenBao: the client (logged in with the
/// factory's AppRole), the mounts, and the KV version each ring record was
/// last seen at (the check-and-set of the next write).
#[derive(Debug)]
pub struct Vault {
    pub bao: OpenBao,
    pub transit: String,
    pub kv: String,
    versions: Mutex<HashMap<KeyId, u64>>,
    /// One key change at a time: a change and its record go together.
    changing: tokio::sync::Mutex<()>,
}

/// Held while a key id changes (see [`Custody::change`]).
#[derive(Debug)]
pub struct ChangeGuard<'a>(#[allow(dead_code)] Option<tokio::sync::MutexGuard<'a, ()>>);

impl Vault {
    pub fn new(bao: OpenBao, transit: String, kv: String) -> Self {
        Self {
            bao,
            transit,
            kv,
            versions: Mutex::new(HashMap::new()),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    fn record_path(id: &KeyId) -> String {
        format!("{FACTORY_KV_FOLDER}/rings/{id}")
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, u64>> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `id`'s record and Transit key and installs the ring; `false`
    /// if there is no record.
    async fn load_one(&self, keys: &KeyStore, id: &KeyId) -> Result<bool, OpenBaoError> {
        let path = Self::record_path(id);
        let Some(record) = self.bao.kv_get(&self.kv, &path).await? else {
            return Ok(false);
        };
        self.apply(keys, id, record).await
    }

    /// Installs `id`'s ring from `record` (read at `path`), with its
    /// Transit key's public keys.
    async fn apply(
        &self,
        keys: &KeyStore,
        id: &KeyId,
        record: openbao::kv::Record,
    ) -> Result<bool, OpenBaoError> {
        let path = Self::record_path(id);
        // As with a bad key file: one record that does not fit (not a ring
        // record, a Transit key gone, another ALGORITHM, a version gone) is
        // logged and skipped, never a reason not to start or to stop
        // reading the others. OpenBao unreachable or refusing is an error.
        let skip = |reason: String| {
            tracing::warn!(key_id = %id, "skipped {id}'s keys in OpenBao ({path}): {reason}");
            Ok(false)
        };
        let ring: RingRecord = match serde_json::from_value(record.data) {
            Ok(ring) => ring,
            Err(e) => return skip(format!("not a ring record: {e}")),
        };
        let name = key_name(id);
        let Some(transit) = self.bao.transit_key(&self.transit, &name).await? else {
            return skip(format!(
                "the record names the Transit key {name}, which does not exist"
            ));
        };
        if let Err(reason) = keys.install(id, &name, &ring, &transit.public) {
            return skip(reason);
        }
        self.versions().insert(id.clone(), record.version);
        Ok(true)
    }
}

/// The Transit key of key id `id`.
pub fn key_name(id: &KeyId) -> String {
    format!("{FACTORY_KEY_PREFIX}{id}")
}

/// Why an assertion's `jti` could not be spent for every replica.
#[derive(Debug)]
pub enum SharedJti {
    /// Another replica (or this one) has spent it already.
    Replay,
    /// OpenBao could not say: the assertion is refused (503), since its
    /// single use cannot be guaranteed.
    Unavailable(String),
}

/// Used `jti`s are kept in folders by the minute after which they may be
/// forgotten, so a sweep drops whole minutes.
const JTI_BUCKET_SECS: i64 = 60;

impl Custody {
    /// Spends `client`'s assertion `jti` for every replica: a KV record
    /// written only if absent (check-and-set 0), so of two replicas that
    /// see the same assertion at once exactly one succeeds. Kept until
    /// `forget_after` (the assertion's `exp` plus the leeway), then swept.
    /// With files (one process), the in-memory cache alone decides.
    pub async fn spend_jti(
        &self,
        client: &str,
        jti: &str,
        forget_after: i64,
    ) -> Result<(), SharedJti> {
        let Self::OpenBao(vault) = self else {
            return Ok(());
        };
        let hex: String = crate::oauth::jti::jti_digest(jti)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let bucket = forget_after.div_euclid(JTI_BUCKET_SECS);
        let path = format!("{FACTORY_KV_FOLDER}/jti/{bucket}/{client}.{hex}");
        let record = serde_json::json!({ "forgetAfter": forget_after });
        match vault.bao.kv_put(&vault.kv, &path, &record, 0).await {
            Ok(_) => Ok(()),
            Err(OpenBaoError::Conflict { .. }) => Err(SharedJti::Replay),
            Err(e) => Err(SharedJti::Unavailable(e.to_string())),
        }
    }

    /// Reads every ring record again and installs those that another
    /// replica changed (or created); returns how many.
    pub async fn sync(&self, keys: &KeyStore) -> Result<usize, OpenBaoError> {
        self.read_rings(keys, "changed by another replica").await
    }

    /// Loads every ring recorded in OpenBao into `keys` (nothing to do for
    /// files: [`KeyStore::load`] read KEYS_DIR). Returns how many. At
    /// start no record is held, so every one is installed.
    pub async fn load(&self, keys: &KeyStore) -> Result<usize, OpenBaoError> {
        self.read_rings(keys, "loaded from OpenBao at start").await
    }

    /// Installs every ring record newer than the one held (`why` says why
    /// in the log line of each).
    async fn read_rings(&self, keys: &KeyStore, why: &str) -> Result<usize, OpenBaoError> {
        let Self::OpenBao(vault) = self else {
            return Ok(0);
        };
        let folder = format!("{FACTORY_KV_FOLDER}/rings/");
        let mut changed = 0;
        for name in vault.bao.kv_list(&vault.kv, &folder).await? {
            let Ok(id) = KeyId::parse(&name) else {
                tracing::warn!("skipped the ring record {name:?}: not a key id");
                continue;
            };
            let Some(record) = vault
                .bao
                .kv_get(&vault.kv, &Vault::record_path(&id))
                .await?
            else {
                continue;
            };
            if vault.versions().get(&id) == Some(&record.version) {
                continue;
            }
            // Not while this replica changes a key id itself; and only a
            // newer record than the one this replica holds (its own change
            // may have been recorded since the read above).
            let _one_change = vault.changing.lock().await;
            if vault
                .versions()
                .get(&id)
                .is_some_and(|v| *v >= record.version)
            {
                continue;
            }
            if vault.apply(keys, &id, record).await? {
                changed += 1;
                tracing::info!(key_id = %id, "{id}'s keys ({why}): Transit key {}", key_name(&id));
            }
        }
        Ok(changed)
    }

    /// Forgets the used `jti`s whose time has passed: whole minute
    /// folders, each record destroyed. Every replica sweeps; a record
    /// destroyed twice is no error.
    pub async fn sweep_jtis(&self, now: i64) -> Result<usize, OpenBaoError> {
        let Self::OpenBao(vault) = self else {
            return Ok(0);
        };
        let folder = format!("{FACTORY_KV_FOLDER}/jti/");
        let mut swept = 0;
        for bucket in vault.bao.kv_list(&vault.kv, &folder).await? {
            let Ok(minute) = bucket.trim_end_matches('/').parse::<i64>() else {
                continue;
            };
            // Every record in it may be forgotten before the next minute; one
            // minute more, so a replica whose clock runs ahead cannot forget
            // a jti another still accepts.
            if (minute + 2) * JTI_BUCKET_SECS > now {
                continue;
            }
            let inner = format!("{folder}{minute}/");
            for name in vault.bao.kv_list(&vault.kv, &inner).await? {
                vault
                    .bao
                    .kv_destroy(&vault.kv, &format!("{inner}{name}"))
                    .await?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Taken before a key id changes and held until [`Custody::save`]:
    /// one change at a time, so a change and its record cannot interleave
    /// with another's.
    pub async fn change(&self) -> ChangeGuard<'_> {
        match self {
            Self::Files => ChangeGuard(None),
            Self::OpenBao(vault) => ChangeGuard(Some(vault.changing.lock().await)),
        }
    }

    /// A new key for `id`: a fresh key pair (files; RSA is tens of ms of
    /// CPU, so off the async workers and at most `keygen`'s permits at
    /// once), or a new version of `id`'s Transit key (created on first
    /// use).
    pub async fn new_key(
        &self,
        keygen: &tokio::sync::Semaphore,
        alg: SigningAlgorithm,
        id: &KeyId,
    ) -> Result<SigningKey, FactoryError> {
        let vault = match self {
            Self::Files => {
                let _permit = keygen.acquire().await.map_err(Internal::from)?;
                let pair = tokio::task::spawn_blocking(move || KeyPair::generate(alg))
                    .await
                    .map_err(Internal::from)?
                    .map_err(Internal::from)?;
                return Ok(SigningKey::Local(pair));
            }
            Self::OpenBao(vault) => vault,
        };
        let name = key_name(id);
        let key = match vault.bao.transit_key(&vault.transit, &name).await? {
            None => {
                vault
                    .bao
                    .create_transit_key(&vault.transit, &name, alg)
                    .await?;
                tracing::info!(key_id = %id, "OpenBao created the Transit key {name} ({})", openbao::transit::key_type(alg));
                vault.bao.transit_key(&vault.transit, &name).await?
            }
            Some(existing) if existing.kind != openbao::transit::key_type(alg) => {
                return Err(FactoryError::Conflict(format!(
                    "the Transit key {name} in OpenBao is {}, and ALGORITHM={alg} needs {}: \
                     use another key id, or ALGORITHM for {}",
                    existing.kind,
                    openbao::transit::key_type(alg),
                    existing.kind
                )));
            }
            Some(_) => Some(vault.bao.rotate_transit_key(&vault.transit, &name).await?),
        };
        let key = key.ok_or_else(|| {
            FactoryError::Unavailable(format!(
                "OpenBao at {} did not keep the Transit key {name}",
                vault.bao.addr()
            ))
        })?;
        let version = key.latest;
        let pem = key.public.get(&version).ok_or_else(|| {
            FactoryError::Unavailable(format!(
                "OpenBao at {} gave no public key for version {version} of {name}",
                vault.bao.addr()
            ))
        })?;
        let public = PublicKey::from_pem_for(pem, alg).map_err(Internal::from)?;
        Ok(SigningKey::Transit {
            name,
            version,
            public,
        })
    }

    /// Records `id`'s ring where it lives: in OpenBao, the KV record
    /// (check-and-set against the version last seen); with files, nothing
    /// (`/utils/dump` writes KEYS_DIR). On a lost check-and-set (another
    /// replica changed the key id) the ring is read back from OpenBao and
    /// the answer is 409: try again.
    pub async fn save(&self, keys: &KeyStore, id: &KeyId) -> Result<(), FactoryError> {
        let Self::OpenBao(vault) = self else {
            return Ok(());
        };
        let record = keys.record(id).ok_or_else(|| {
            FactoryError::Unavailable(format!("{id}'s keys are not all held by OpenBao"))
        })?;
        let data = serde_json::to_value(&record).map_err(|e| {
            FactoryError::Unavailable(format!("cannot write {id}'s ring record: {e}"))
        })?;
        let cas = vault.versions().get(id).copied().unwrap_or(0);
        let path = Vault::record_path(id);
        match vault.bao.kv_put(&vault.kv, &path, &data, cas).await {
            Ok(version) => {
                vault.versions().insert(id.clone(), version);
                Ok(())
            }
            Err(OpenBaoError::Conflict { .. }) => {
                let reloaded = vault.load_one(keys, id).await;
                tracing::warn!(key_id = %id, ?reloaded, "{id}'s ring was changed by another factory replica; reloaded it");
                Err(FactoryError::Conflict(format!(
                    "{id}'s keys were changed by another replica meanwhile; this replica has \
                     read them again: try again"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The compact JWS of `claims`, signed by `entry`'s key as `alg`, with
    /// `kid` and `typ` in the header.
    pub async fn sign(
        &self,
        entry: &Entry,
        alg: SigningAlgorithm,
        claims: &jws::Claims,
        typ: &str,
    ) -> Result<String, FactoryError> {
        match (&entry.key, self) {
            (SigningKey::Local(pair), _) => {
                Ok(jws::sign_typed(claims, pair, alg, Some(entry.kid()), typ)
                    .map_err(Internal::from)?)
            }
            (SigningKey::Transit { name, version, .. }, Self::OpenBao(vault)) => {
                let input = jws::signing_input(claims, alg, Some(entry.kid()), typ)
                    .map_err(Internal::from)?;
                let mut signature = vault
                    .bao
                    .transit_sign(&vault.transit, name, *version, alg, input.as_bytes())
                    .await?;
                // Verifiers refuse the high-s twin of an ECDSA signature.
                s2s_auth::ecdsa::canonicalize(alg, &mut signature);
                Ok(jws::with_signature(input, &signature))
            }
            (SigningKey::Transit { .. }, Self::Files) => Err(FactoryError::Unavailable(
                "this key is held by OpenBao, and KEY_BACKEND is files".into(),
            )),
        }
    }
}

impl From<OpenBaoError> for FactoryError {
    fn from(e: OpenBaoError) -> Self {
        match e {
            OpenBaoError::Conflict { .. } => Self::Conflict(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}
