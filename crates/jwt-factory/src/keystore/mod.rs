//! The factory's key pairs: in memory while it runs, in `KEYS_DIR` when dumped.
//!
//! Each key id has a *ring* of key pairs, each in one phase:
//!
//! | phase | signs | in the JWK Set, verifies | until |
//! | --- | --- | --- | --- |
//! | next | no | yes | its activation time, then it is current |
//! | current | yes | yes | the next key activates |
//! | retiring | no | yes | the last token it signed has expired (lifetime + leeway after it stopped signing) |
//!
//! `POST /keys/{keyId}/rotate` adds a *next* key, published at once and
//! signing only after `ROTATION_PUBLISH_AHEAD_SECS`: every verifier that
//! caches the JWK Set for up to that long already holds the key when the
//! first token signed with it arrives. Activation is by time, checked
//! whenever a ring is used (no timer: a lookup after the activation time
//! sees the new key, also after a restart). An *emergency* rotation
//! activates the new key at once and withdraws the current one.
//! `/keys/{keyId}` *replaces* a ring (old tokens stop verifying at once).
//!
//! Every key pair has its own `kid` (see [`s2s_auth::jwk`]), which issued
//! tokens carry in their header, so `/verify` and the JWK Set can tell the
//! keys apart. Keys are parsed once, when generated or loaded, and shared
//! as `Arc`s so a request never holds the lock while it signs.
//!
//! Files (`file_names::KeyFile`, the one place names are made and read): the current
//! pair is `{keyId}-private.pem` / `-public.pem` (as the original demo named
//! them); a next pair is `{keyId}.next-{activation}.{thumb}-...`, a retiring
//! pair `{keyId}.retired-{stopped signing}.{thumb}-...`, where `{thumb}` is
//! the part of the `kid` after the dot, so two keys never share a file name
//! (two rotations in the same second used to). The dot cannot occur in a
//! key id, so these never collide with a current pair.
//!
//! Loading `KEYS_DIR` at start trusts nothing it finds there: it follows no
//! symlink, skips anything that is not a regular file, removes the `.tmp-*`
//! files an interrupted atomic write leaves, and applies the same bounds as
//! the endpoints ([`MAX_KEY_IDS`], [`MAX_RETIRING`]), logging what it skipped.
//!
//! # Layout
//!
//! - this module: the [`KeyStore`] and its lookups (sign, verify, JWK Set);
//! - `ring`: a key id's ring, its phases, and rotation;
//! - `store_io`: loading `KEYS_DIR` at start and dumping to it;
//! - `file_names`: the names of the key files.

mod file_names;
mod openbao_io;
mod ring;
mod store_io;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use jsonwebtoken::jwk::Jwk;
use s2s_auth::{
    KeyId, KeyPair, PublicKey, SigningAlgorithm,
    jwk::{JwkError, kid_of, public_jwk},
    now_unix,
};

pub use openbao_io::{RingRecord, Snapshot};
use ring::Ring;
pub use ring::{KeyStatus, Phase, Rotation, RotationMode};

/// Most key ids one factory holds: key creation is open to anyone (the
/// demo's simplification), so the JWK Set, memory and dumps must be bounded.
pub const MAX_KEY_IDS: usize = 256;
/// Most rotated-out key pairs one key id keeps in overlap at once.
pub const MAX_RETIRING: usize = 3;

/// Why the store refused a change.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bound above was reached; the message says which and what to do.
    #[error("{0}")]
    Limit(String),
    /// A next key is already published and not active yet: the message
    /// says when it activates.
    #[error("{0}")]
    Pending(String),
    /// No key pair for this key id.
    #[error("key not found")]
    NotFound(KeyId),
    /// The key could not be described as a JWK.
    #[error(transparent)]
    Jwk(#[from] s2s_auth::jwk::JwkError),
}

/// Who holds a key's private half.
#[derive(Debug)]
pub enum SigningKey {
    /// This process (KEY_BACKEND=files): parsed once, dumped to `KEYS_DIR`.
    Local(KeyPair),
    /// OpenBao (KEY_BACKEND=openbao): one version of a Transit key. Only
    /// the public half is here; OpenBao signs (see [`crate::custody`]).
    Transit {
        /// The Transit key's name (`jwt-factory-{keyId}`).
        name: String,
        version: u32,
        public: PublicKey,
    },
}

/// One key pair with its `kid` and public JWK.
#[derive(Debug)]
pub struct Entry {
    pub key: SigningKey,
    pub jwk: Jwk,
}

impl Entry {
    /// The entry of `key`. Its `kid` is `{keyId}.{thumbprint}`, or for a
    /// Transit key `{keyId}.v{version}-{thumbprint}`: it names the version
    /// OpenBao signs with, and still changes with the key material.
    pub fn new(id: &KeyId, key: SigningKey, alg: SigningAlgorithm) -> Result<Self, JwkError> {
        let public = match &key {
            SigningKey::Local(pair) => pair.public(),
            SigningKey::Transit { public, .. } => public,
        };
        let mut jwk = public_jwk(id, public, alg)?;
        if let SigningKey::Transit { version, .. } = &key {
            let kid = kid_of(&jwk);
            let thumb = kid.split_once('.').map_or(kid, |(_, t)| t);
            jwk.common.key_id = Some(format!("{id}.v{version}-{thumb}"));
        }
        Ok(Self { key, jwk })
    }

    pub fn kid(&self) -> &str {
        kid_of(&self.jwk)
    }

    /// The public half: what verifies its tokens.
    pub fn public(&self) -> &PublicKey {
        match &self.key {
            SigningKey::Local(pair) => pair.public(),
            SigningKey::Transit { public, .. } => public,
        }
    }

    /// The Transit version, for a key held by OpenBao.
    pub fn version(&self) -> Option<u32> {
        match &self.key {
            SigningKey::Local(_) => None,
            SigningKey::Transit { version, .. } => Some(*version),
        }
    }
}

/// Key pairs by key id.
#[derive(Debug)]
pub struct KeyStore {
    /// Where [`KeyStore::dump`] writes and [`KeyStore::load`] reads.
    dir: PathBuf,
    /// The kind of key every pair must be, from `ALGORITHM`.
    alg: SigningAlgorithm,
    /// How long a retiring key still verifies: the longest token lifetime
    /// plus the leeway, so every token it signed has expired by then.
    overlap_secs: i64,
    /// How long a next key is published before it signs
    /// (`ROTATION_PUBLISH_AHEAD_SECS`).
    publish_ahead_secs: i64,
    /// The rings. Locked only to clone `Arc`s in or out.
    keys: RwLock<BTreeMap<KeyId, Ring>>,
    /// One dump at a time: two racing dumps could otherwise leave a key's
    /// public and private files from different key pairs.
    dumping: Mutex<()>,
}

/// The time windows of a store.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// How long a retiring key verifies: the longest lifetime of any token
    /// signed with it plus the leeway (`Config::rotation_overlap_secs`).
    pub overlap_secs: u64,
    /// How long a next key is published before it signs.
    pub publish_ahead_secs: u64,
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

impl KeyStore {
    /// An empty store that dumps into `dir`.
    pub fn new(dir: impl Into<PathBuf>, alg: SigningAlgorithm, windows: Windows) -> Self {
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX / 4);
        Self {
            dir: dir.into(),
            alg,
            overlap_secs: secs(windows.overlap_secs),
            publish_ahead_secs: secs(windows.publish_ahead_secs),
            keys: RwLock::new(BTreeMap::new()),
            dumping: Mutex::new(()),
        }
    }

    /// Whether a key retired at `at` still verifies at `now`. A retirement
    /// time in the future (a hand-edited file name) never does.
    fn in_overlap(&self, at: i64, now: i64) -> bool {
        at <= now && at.saturating_add(self.overlap_secs) > now
    }

    /// `id`'s ring, with a next key whose time has come activated first.
    fn ring(&self, id: &KeyId) -> Option<Ring> {
        let now = now_unix();
        {
            let keys = self.read();
            let ring = keys.get(id)?;
            if !ring.due(now) {
                return Some(ring.clone());
            }
        }
        let mut keys = self.write();
        let ring = keys.get_mut(id)?;
        ring.settle(id, now, self.overlap_secs);
        Some(ring.clone())
    }

    /// Activates every next key whose time has come.
    fn settle_all(&self) {
        let now = now_unix();
        if !self.read().values().any(|r| r.due(now)) {
            return;
        }
        for (id, ring) in self.write().iter_mut() {
            ring.settle(id, now, self.overlap_secs);
        }
    }

    /// The current (signing) key pair for `id`.
    pub fn get(&self, id: &KeyId) -> Option<Arc<Entry>> {
        self.ring(id).map(|ring| ring.current)
    }

    /// The key pair of `id` that verifies a token with header `kid`: the
    /// current one, the next one, or a retiring one still in its overlap. A
    /// token without a `kid` is checked against the current key.
    pub fn verifying(&self, id: &KeyId, kid: Option<&str>) -> Lookup {
        let Some(ring) = self.ring(id) else {
            return Lookup::NoKeyId;
        };
        let Some(kid) = kid else {
            return Lookup::Found(ring.current);
        };
        let now = now_unix();
        std::iter::once(&ring.current)
            .chain(ring.next.as_ref().map(|(e, _)| e))
            .chain(
                ring.retiring
                    .iter()
                    .filter(|(_, at)| self.in_overlap(*at, now))
                    .map(|(e, _)| e),
            )
            .find(|e| e.kid() == kid)
            .map_or(Lookup::NoKid, |e| Lookup::Found(Arc::clone(e)))
    }

    /// Refuses early what [`KeyStore::replace`] would refuse, so no key is
    /// generated for nothing.
    pub fn check_replace(&self, id: &KeyId) -> Result<(), StoreError> {
        let keys = self.read();
        if !keys.contains_key(id) && keys.len() >= MAX_KEY_IDS {
            return Err(StoreError::Limit(format!(
                "this factory already holds {MAX_KEY_IDS} key ids, its limit"
            )));
        }
        Ok(())
    }

    /// Makes `pair` the only key pair of `id`: tokens signed by any earlier
    /// pair stop verifying at once.
    pub fn replace(&self, id: KeyId, key: SigningKey) -> Result<Arc<Entry>, StoreError> {
        let entry = Arc::new(Entry::new(&id, key, self.alg)?);
        let mut keys = self.write();
        if !keys.contains_key(&id) && keys.len() >= MAX_KEY_IDS {
            return Err(StoreError::Limit(format!(
                "this factory already holds {MAX_KEY_IDS} key ids, its limit"
            )));
        }
        keys.insert(id, Ring::new(Arc::clone(&entry)));
        Ok(entry)
    }

    /// Every key id, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().map(|k| k.to_string()).collect()
    }

    /// The public JWK of every key pair that verifies: each key id's next
    /// key, current key, and retiring keys still in their overlap.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.settle_all();
        let now = now_unix();
        let keys = self.read();
        let mut out = Vec::new();
        for ring in keys.values() {
            if let Some((next, _)) = &ring.next {
                out.push(next.jwk.clone());
            }
            out.push(ring.current.jwk.clone());
            for (e, at) in &ring.retiring {
                if self.in_overlap(*at, now) {
                    out.push(e.jwk.clone());
                }
            }
        }
        out
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
