//! The factory's key pairs: in memory while it runs, in `KEYS_DIR` when dumped.
//!
//! Each key id has exactly one current key pair; `/keys/{keyId}` replaces it.
//! Keys are parsed once, when generated or loaded, and shared as `Arc`s so a
//! request never holds the lock while it signs.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use s2s_auth::{
    KeyId, KeyPair, SigningAlgorithm,
    files::{PRIVATE, PUBLIC, write_atomic},
};

const PRIVATE_SUFFIX: &str = "-private.pem";
const PUBLIC_SUFFIX: &str = "-public.pem";

/// Key pairs by key id.
#[derive(Debug)]
pub struct KeyStore {
    /// Where [`KeyStore::dump`] writes and [`KeyStore::load`] reads.
    dir: PathBuf,
    /// The current key pair per id. Locked only to clone an `Arc` in or out.
    keys: RwLock<BTreeMap<KeyId, Arc<KeyPair>>>,
    /// One dump at a time: two racing dumps could otherwise leave a key's
    /// public and private files from different key pairs.
    dumping: Mutex<()>,
}

impl KeyStore {
    /// An empty store that dumps into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            keys: RwLock::new(BTreeMap::new()),
            dumping: Mutex::new(()),
        }
    }

    /// Loads every `{keyId}-private.pem` in `dir`. A file that is unreadable,
    /// not a key, not a key for `alg`, or named with an invalid key id is
    /// logged and skipped: one bad file must not keep the factory from
    /// starting. A missing `dir` is an empty store.
    pub fn load(dir: impl Into<PathBuf>, alg: SigningAlgorithm) -> Self {
        let store = Self::new(dir);
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
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(raw_id) = name.strip_suffix(PRIVATE_SUFFIX) else {
                continue;
            };
            match load_one(raw_id, &path, alg) {
                Ok((id, pair)) => {
                    tracing::info!(key_id = %id, file = %path.display(), "loaded key pair");
                    store.insert(id, pair);
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "skipped key file");
                }
            }
        }
        store
    }

    /// The current key pair for `id`.
    pub fn get(&self, id: &KeyId) -> Option<Arc<KeyPair>> {
        self.read().get(id).cloned()
    }

    /// Makes `pair` the current key pair for `id`, replacing any other.
    pub fn insert(&self, id: KeyId, pair: KeyPair) -> Arc<KeyPair> {
        let pair = Arc::new(pair);
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&pair));
        pair
    }

    /// Every key id, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().map(|k| k.to_string()).collect()
    }

    /// Writes `{id}-public.pem` (0644) and `{id}-private.pem` (0600) for every
    /// key, each atomically. Blocking: call from `spawn_blocking`.
    pub fn dump(&self) -> io::Result<Vec<PathBuf>> {
        let _one_at_a_time = self.dumping.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot: Vec<_> = self
            .read()
            .iter()
            .map(|(id, pair)| (id.clone(), Arc::clone(pair)))
            .collect();
        let mut written = Vec::with_capacity(snapshot.len() * 2);
        for (id, pair) in snapshot {
            let public = self.dir.join(format!("{id}{PUBLIC_SUFFIX}"));
            let private = self.dir.join(format!("{id}{PRIVATE_SUFFIX}"));
            write_atomic(&public, pair.public().pem().as_bytes(), PUBLIC)?;
            write_atomic(&private, pair.private_pem().as_bytes(), PRIVATE)?;
            written.push(public);
            written.push(private);
        }
        Ok(written)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<KeyId, Arc<KeyPair>>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Largest key file read at start-up.
const MAX_KEY_FILE: u64 = 64 * 1024;

fn load_one(raw_id: &str, path: &Path, alg: SigningAlgorithm) -> Result<(KeyId, KeyPair), String> {
    let id = KeyId::parse(raw_id).map_err(|e| e.to_string())?;
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE {
        return Err(format!("not a regular file under {MAX_KEY_FILE} bytes"));
    }
    let pem = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let pair = KeyPair::from_private_pem_for(&pem, alg).map_err(|e| e.to_string())?;
    Ok((id, pair))
}
