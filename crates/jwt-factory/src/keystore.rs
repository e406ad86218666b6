//! The factory's key pairs: in memory while it runs, in `KEYS_DIR` when dumped.
//!
//! Each key id has a *ring*: one current key pair, which signs, and the key
//! pairs it replaced by rotation, which still verify the tokens they signed
//! until those tokens have expired (the token lifetime plus the leeway after
//! the rotation), and are then dropped. Every key pair has its own `kid`
//! (see [`s2s_auth::jwk`]), which issued tokens carry in their header, so
//! `/verify` and the JWK Set can tell old and new keys apart.
//!
//! `/keys/{keyId}` *replaces* a ring (old tokens stop verifying at once);
//! `/keys/{keyId}/rotate` *rotates* it (old tokens keep verifying for the
//! overlap). Keys are parsed once, when generated or loaded, and shared as
//! `Arc`s so a request never holds the lock while it signs.
//!
//! Files: the current pair is `{keyId}-private.pem` / `-public.pem` (as the
//! original demo named them); a retired pair is
//! `{keyId}.retired-{unix time}-private.pem` / `-public.pem`. The dot cannot
//! occur in a key id, so the two never collide.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use jsonwebtoken::jwk::Jwk;
use s2s_auth::{
    KeyId, KeyPair, SigningAlgorithm,
    files::{PRIVATE, PUBLIC, read_small_text, write_atomic},
    jwk::{JwkError, kid_of, public_jwk},
    now_unix,
};

const PRIVATE_SUFFIX: &str = "-private.pem";
const PUBLIC_SUFFIX: &str = "-public.pem";
const RETIRED_INFIX: &str = ".retired-";

/// The names of a key pair's files, written by [`KeyStore::dump`] and read
/// back by [`KeyStore::load`]: one type, so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyFile {
    /// `{keyId}-private.pem` / `-public.pem`: the current pair.
    Current(String),
    /// `{keyId}.retired-{unix time}-...`: rotated out at that time.
    Retired(String, i64),
}

impl KeyFile {
    fn stem(&self) -> String {
        match self {
            Self::Current(id) => id.clone(),
            Self::Retired(id, at) => format!("{id}{RETIRED_INFIX}{at}"),
        }
    }

    fn private(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PRIVATE_SUFFIX}", self.stem()))
    }

    fn public(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PUBLIC_SUFFIX}", self.stem()))
    }

    /// The private-key file `name` describes: `None` for other files,
    /// `Some(Err)` for a retired file with a malformed time.
    fn parse_private(name: &str) -> Option<Result<Self, &'static str>> {
        let stem = name.strip_suffix(PRIVATE_SUFFIX)?;
        Some(match stem.split_once(RETIRED_INFIX) {
            Some((id, at)) => at
                .parse::<i64>()
                .map(|at| Self::Retired(id.to_owned(), at))
                .map_err(|_| "bad retirement time"),
            None => Ok(Self::Current(stem.to_owned())),
        })
    }

    fn is_retired_name(name: &str) -> bool {
        name.contains(RETIRED_INFIX) && name.ends_with(".pem")
    }
}

/// Most key ids one factory holds: key creation is open to anyone (the
/// demo's simplification), so the JWK Set, memory and dumps must be bounded.
pub const MAX_KEY_IDS: usize = 256;
/// Most rotated-out key pairs one key id keeps in overlap at once.
pub const MAX_RETIRED: usize = 3;

/// Why the store refused a change.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bound above was reached; the message says which and what to do.
    #[error("{0}")]
    Limit(String),
    /// The key could not be described as a JWK.
    #[error(transparent)]
    Jwk(#[from] s2s_auth::jwk::JwkError),
}

/// One key pair with its `kid` and public JWK.
#[derive(Debug)]
pub struct Entry {
    pub pair: KeyPair,
    pub jwk: Jwk,
}

impl Entry {
    fn new(id: &KeyId, pair: KeyPair, alg: SigningAlgorithm) -> Result<Self, JwkError> {
        let jwk = public_jwk(id, pair.public(), alg)?;
        Ok(Self { pair, jwk })
    }

    pub fn kid(&self) -> &str {
        kid_of(&self.jwk)
    }
}

/// The key pairs of one key id.
#[derive(Debug, Clone)]
struct Ring {
    current: Arc<Entry>,
    /// Replaced by rotation, with the unix time of the rotation.
    retired: Vec<(Arc<Entry>, i64)>,
}

/// What [`KeyStore::rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    pub current: Arc<Entry>,
    pub previous_kid: String,
    /// Unix time after which the previous key no longer verifies.
    pub previous_valid_until: i64,
}

/// Key pairs by key id.
#[derive(Debug)]
pub struct KeyStore {
    /// Where [`KeyStore::dump`] writes and [`KeyStore::load`] reads.
    dir: PathBuf,
    /// The kind of key every pair must be, from `ALGORITHM`.
    alg: SigningAlgorithm,
    /// How long a retired key still verifies: the longest token lifetime
    /// plus the leeway, so every token it signed has expired by then.
    overlap_secs: i64,
    /// The rings. Locked only to clone `Arc`s in or out.
    keys: RwLock<BTreeMap<KeyId, Ring>>,
    /// One dump at a time: two racing dumps could otherwise leave a key's
    /// public and private files from different key pairs.
    dumping: Mutex<()>,
}

impl KeyStore {
    /// An empty store that dumps into `dir`.
    pub fn new(dir: impl Into<PathBuf>, alg: SigningAlgorithm, overlap_secs: u64) -> Self {
        Self {
            dir: dir.into(),
            alg,
            overlap_secs: i64::try_from(overlap_secs).unwrap_or(i64::MAX),
            keys: RwLock::new(BTreeMap::new()),
            dumping: Mutex::new(()),
        }
    }

    /// Loads the rings dumped in `dir`: every `{keyId}-private.pem`, and the
    /// retired pairs whose overlap has not ended. A file that is unreadable,
    /// not a key, not a key for `alg`, or named with an invalid key id is
    /// logged and skipped: one bad file must not keep the factory from
    /// starting. A missing `dir` is an empty store.
    pub fn load(dir: impl Into<PathBuf>, alg: SigningAlgorithm, overlap_secs: u64) -> Self {
        let store = Self::new(dir, alg, overlap_secs);
        let entries = match fs::read_dir(&store.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(dir = %store.dir.display(), "no keys folder yet: starting with no keys");
                return store;
            }
            Err(e) => {
                tracing::warn!(dir = %store.dir.display(), error = %e, "cannot read keys folder: starting with no keys");
                return store;
            }
        };
        let mut retired = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(parsed) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(KeyFile::parse_private)
            else {
                continue;
            };
            let (raw_id, retired_at) = match &parsed {
                Ok(KeyFile::Current(id)) => (id.as_str(), None),
                Ok(KeyFile::Retired(id, at)) => (id.as_str(), Some(*at)),
                Err(why) => {
                    tracing::warn!(file = %path.display(), "skipped key file: {why}");
                    continue;
                }
            };
            match store.load_one(raw_id, &path) {
                Ok((id, entry)) => match retired_at {
                    None => {
                        tracing::info!(key_id = %id, kid = entry.kid(), file = %path.display(), "loaded key pair");
                        store.write().insert(
                            id,
                            Ring {
                                current: Arc::new(entry),
                                retired: Vec::new(),
                            },
                        );
                    }
                    Some(at) => retired.push((id, entry, at, path)),
                },
                Err(reason) => tracing::warn!(file = %path.display(), %reason, "skipped key file"),
            }
        }
        // Retired pairs join the rings of their key id, if still in overlap.
        let now = now_unix();
        for (id, entry, at, path) in retired {
            let mut keys = store.write();
            match keys.get_mut(&id) {
                Some(ring) if store.in_overlap(at, now) => {
                    tracing::info!(key_id = %id, kid = entry.kid(), file = %path.display(), "loaded retired key pair (verifies until its tokens expire)");
                    ring.retired.push((Arc::new(entry), at));
                }
                Some(_) => {
                    tracing::info!(file = %path.display(), "skipped retired key pair: its overlap has ended")
                }
                None => {
                    tracing::warn!(file = %path.display(), "skipped retired key pair: no current key for {id}")
                }
            }
        }
        store
    }

    /// Whether a key retired at `at` still verifies at `now`. A retirement
    /// time in the future (a hand-edited file name) never does.
    fn in_overlap(&self, at: i64, now: i64) -> bool {
        at <= now && at.saturating_add(self.overlap_secs) > now
    }

    fn load_one(&self, raw_id: &str, path: &Path) -> Result<(KeyId, Entry), String> {
        let id = KeyId::parse(raw_id).map_err(|e| e.to_string())?;
        if !fs::metadata(path).map_err(|e| e.to_string())?.is_file() {
            return Err("not a regular file".into());
        }
        let pem = read_small_text(path, MAX_KEY_FILE).map_err(|e| e.to_string())?;
        let pair = KeyPair::from_private_pem_for(&pem, self.alg).map_err(|e| e.to_string())?;
        let entry = Entry::new(&id, pair, self.alg).map_err(|e| e.to_string())?;
        Ok((id, entry))
    }

    /// The current (signing) key pair for `id`.
    pub fn get(&self, id: &KeyId) -> Option<Arc<Entry>> {
        self.read().get(id).map(|ring| Arc::clone(&ring.current))
    }

    /// The key pair of `id` that verifies a token with header `kid`: the
    /// current one, or a retired one still in its overlap. A token without a
    /// `kid` is checked against the current key.
    pub fn verifying(&self, id: &KeyId, kid: Option<&str>) -> Lookup {
        let keys = self.read();
        let Some(ring) = keys.get(id) else {
            return Lookup::NoKeyId;
        };
        let Some(kid) = kid else {
            return Lookup::Found(Arc::clone(&ring.current));
        };
        if ring.current.kid() == kid {
            return Lookup::Found(Arc::clone(&ring.current));
        }
        let now = now_unix();
        ring.retired
            .iter()
            .find(|(e, at)| e.kid() == kid && self.in_overlap(*at, now))
            .map_or(Lookup::NoKid, |(e, _)| Lookup::Found(Arc::clone(e)))
    }

    /// Makes `pair` the only key pair of `id`: tokens signed by any earlier
    /// pair stop verifying at once.
    pub fn replace(&self, id: KeyId, pair: KeyPair) -> Result<Arc<Entry>, StoreError> {
        let entry = Arc::new(Entry::new(&id, pair, self.alg)?);
        let mut keys = self.write();
        if !keys.contains_key(&id) && keys.len() >= MAX_KEY_IDS {
            return Err(StoreError::Limit(format!(
                "this factory already holds {MAX_KEY_IDS} key ids, its limit"
            )));
        }
        keys.insert(
            id,
            Ring {
                current: Arc::clone(&entry),
                retired: Vec::new(),
            },
        );
        Ok(entry)
    }

    /// Makes `pair` the signing key of `id`; the previous one keeps
    /// verifying for the overlap. `Ok(None)` if `id` has no key to rotate.
    pub fn rotate(&self, id: &KeyId, pair: KeyPair) -> Result<Option<Rotation>, StoreError> {
        let entry = Arc::new(Entry::new(id, pair, self.alg)?);
        let now = now_unix();
        let mut keys = self.write();
        let Some(ring) = keys.get_mut(id) else {
            return Ok(None);
        };
        ring.retired.retain(|(_, at)| self.in_overlap(*at, now));
        if ring.retired.len() >= MAX_RETIRED {
            let next = ring
                .retired
                .iter()
                .map(|(_, at)| at.saturating_add(self.overlap_secs))
                .min()
                .unwrap_or(now);
            return Err(StoreError::Limit(format!(
                "{id} already has {MAX_RETIRED} rotated-out keys still verifying; \
                 the oldest leaves at {} (or replace the key with GET /keys/{id})",
                s2s_auth::time_fmt::iso_millis(next)
            )));
        }
        let previous = std::mem::replace(&mut ring.current, Arc::clone(&entry));
        let previous_kid = previous.kid().to_owned();
        ring.retired.push((previous, now));
        Ok(Some(Rotation {
            current: entry,
            previous_kid,
            previous_valid_until: now.saturating_add(self.overlap_secs),
        }))
    }

    /// Every key id, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().map(|k| k.to_string()).collect()
    }

    /// The public JWK of every key pair that verifies: all current pairs and
    /// the retired ones still in their overlap.
    pub fn jwks(&self) -> Vec<Jwk> {
        let now = now_unix();
        let keys = self.read();
        let mut out = Vec::new();
        for ring in keys.values() {
            out.push(ring.current.jwk.clone());
            for (e, at) in &ring.retired {
                if self.in_overlap(*at, now) {
                    out.push(e.jwk.clone());
                }
            }
        }
        out
    }

    /// Writes every ring to `KEYS_DIR`: current pairs as
    /// `{id}-public.pem` (0644) / `{id}-private.pem` (0600), retired pairs in
    /// overlap as `{id}.retired-{t}-...`, each file atomically; removes
    /// retired files whose overlap has ended. Blocking: call from
    /// `spawn_blocking`.
    pub fn dump(&self) -> io::Result<Vec<PathBuf>> {
        let _one_at_a_time = self.dumping.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot: Vec<(KeyId, Ring)> = self
            .read()
            .iter()
            .map(|(id, ring)| (id.clone(), ring.clone()))
            .collect();
        let now = now_unix();
        let mut written = Vec::new();
        for (id, ring) in &snapshot {
            let mut pairs = vec![(KeyFile::Current(id.to_string()), &ring.current)];
            for (e, at) in &ring.retired {
                if self.in_overlap(*at, now) {
                    pairs.push((KeyFile::Retired(id.to_string(), *at), e));
                }
            }
            for (file, entry) in pairs {
                let public = file.public(&self.dir);
                let private = file.private(&self.dir);
                write_atomic(&public, entry.pair.public().pem().as_bytes(), PUBLIC)?;
                write_atomic(&private, entry.pair.private_pem().as_bytes(), PRIVATE)?;
                written.push(public);
                written.push(private);
            }
        }
        // Retired files not written now belong to keys whose overlap ended
        // or that were replaced: remove them, so they cannot come back.
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(written),
            Err(e) => return Err(e),
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let is_retired = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(KeyFile::is_retired_name);
            if is_retired && !written.contains(&path) {
                fs::remove_file(&path)?;
            }
        }
        Ok(written)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<KeyId, Ring>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<KeyId, Ring>> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The answer of [`KeyStore::verifying`].
#[derive(Debug)]
pub enum Lookup {
    Found(Arc<Entry>),
    /// No key pair for the key id at all.
    NoKeyId,
    /// The key id exists, but no current or overlapping pair has this `kid`.
    NoKid,
}

/// Largest key file read at start-up.
const MAX_KEY_FILE: u64 = 64 * 1024;
