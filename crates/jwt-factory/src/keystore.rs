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
//! Files ([`KeyFile`], the one place names are made and read): the current
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
//! the endpoints ([`MAX_KEY_IDS`], [`MAX_RETIRED`]), logging what it skipped.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use jsonwebtoken::jwk::Jwk;
use s2s_auth::{
    KeyId, KeyPair, SigningAlgorithm,
    files::{PRIVATE, PUBLIC, write_atomic},
    jwk::{JwkError, kid_of, public_jwk},
    now_unix,
    time_fmt::iso_millis,
};

const PRIVATE_SUFFIX: &str = "-private.pem";
const PUBLIC_SUFFIX: &str = "-public.pem";
const RETIRED_INFIX: &str = ".retired-";
const NEXT_INFIX: &str = ".next-";
/// Prefix of the temporary files of [`write_atomic`].
const TMP_PREFIX: &str = ".tmp-";

/// The names of a key pair's files, written by [`KeyStore::dump`] and read
/// back by [`KeyStore::load`]: one type, so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyFile {
    /// `{keyId}-private.pem` / `-public.pem`: the current pair.
    Current(String),
    /// `{keyId}.next-{unix time}.{thumb}-...`: signs from that time on.
    Next(Phased),
    /// `{keyId}.retired-{unix time}.{thumb}-...`: stopped signing then.
    /// (Files written before the thumb was added have none.)
    Retired(Phased),
}

/// A next or retiring pair's name: key id, time, and the `kid`'s thumbprint part.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phased {
    id: String,
    at: i64,
    thumb: Option<String>,
}

impl Phased {
    fn of(id: &KeyId, at: i64, entry: &Entry) -> Self {
        Self {
            id: id.to_string(),
            at,
            thumb: entry.kid().split_once('.').map(|(_, t)| t.to_owned()),
        }
    }

    fn stem(&self, infix: &str) -> String {
        match &self.thumb {
            Some(thumb) => format!("{}{infix}{}.{thumb}", self.id, self.at),
            None => format!("{}{infix}{}", self.id, self.at),
        }
    }

    fn parse(id: &str, rest: &str) -> Result<Self, &'static str> {
        let (at, thumb) = match rest.split_once('.') {
            Some((at, thumb)) => (at, Some(thumb.to_owned())),
            None => (rest, None),
        };
        let at = at.parse::<i64>().map_err(|_| "bad time in the file name")?;
        Ok(Self {
            id: id.to_owned(),
            at,
            thumb,
        })
    }
}

impl KeyFile {
    fn stem(&self) -> String {
        match self {
            Self::Current(id) => id.clone(),
            Self::Next(p) => p.stem(NEXT_INFIX),
            Self::Retired(p) => p.stem(RETIRED_INFIX),
        }
    }

    fn id(&self) -> &str {
        match self {
            Self::Current(id) => id,
            Self::Next(p) | Self::Retired(p) => &p.id,
        }
    }

    fn private(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PRIVATE_SUFFIX}", self.stem()))
    }

    fn public(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PUBLIC_SUFFIX}", self.stem()))
    }

    /// The private-key file `name` describes: `None` for other files,
    /// `Some(Err)` for a next or retired file with a malformed time.
    fn parse_private(name: &str) -> Option<Result<Self, &'static str>> {
        let stem = name.strip_suffix(PRIVATE_SUFFIX)?;
        Some(if let Some((id, rest)) = stem.split_once(RETIRED_INFIX) {
            Phased::parse(id, rest).map(Self::Retired)
        } else if let Some((id, rest)) = stem.split_once(NEXT_INFIX) {
            Phased::parse(id, rest).map(Self::Next)
        } else {
            Ok(Self::Current(stem.to_owned()))
        })
    }

    /// A next or retired file (public or private), which dump removes when
    /// it no longer describes a key of the store.
    fn is_phased_name(name: &str) -> bool {
        (name.contains(RETIRED_INFIX) || name.contains(NEXT_INFIX)) && name.ends_with(".pem")
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
    /// Published, not signing yet: the key and its activation time.
    next: Option<(Arc<Entry>, i64)>,
    /// Rotated out: each key with the unix time it stopped signing.
    retired: Vec<(Arc<Entry>, i64)>,
}

impl Ring {
    fn new(current: Arc<Entry>) -> Self {
        Self {
            current,
            next: None,
            retired: Vec::new(),
        }
    }

    /// Whether the next key's activation time has come.
    fn due(&self, now: i64) -> bool {
        self.next.as_ref().is_some_and(|(_, at)| *at <= now)
    }

    /// The next key becomes current if its time has come; the current one
    /// retires as of that time (not as of now: its overlap is counted from
    /// when it stopped signing).
    fn settle(&mut self, id: &KeyId, now: i64, overlap_secs: i64) {
        if !self.due(now) {
            return;
        }
        let Some((next, at)) = self.next.take() else {
            return;
        };
        let previous = std::mem::replace(&mut self.current, next);
        tracing::info!(
            key_id = %id,
            "{id}: next key {} is now current and signs; {} retires (verifies until {})",
            self.current.kid(),
            previous.kid(),
            iso_millis(at.saturating_add(overlap_secs))
        );
        self.retired.push((previous, at));
    }
}

/// How a rotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    /// Publish the new key now, sign with it after the publish-ahead time.
    Phased,
    /// The current key is compromised: sign with the new key at once and
    /// withdraw the current one (cached verifiers refuse new tokens until
    /// they refetch the JWK Set: on purpose).
    Emergency,
}

/// What [`KeyStore::rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key pair.
    pub key: Arc<Entry>,
    /// Unix time from which it signs (now, for an emergency rotation).
    pub activates_at: i64,
    pub previous_kid: String,
    /// Unix time after which the previous key no longer verifies (now, for
    /// an emergency rotation: it is withdrawn).
    pub previous_valid_until: i64,
}

/// A key's phase, for `GET /utils/keys/{keyId}/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Next,
    Current,
    Retiring,
}

/// One key of a ring, as the status endpoint shows it.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    pub phase: Phase,
    /// Next: when it starts signing.
    pub activates_at: Option<i64>,
    /// Retiring: when it stopped signing.
    pub retired_at: Option<i64>,
    /// Retiring: when it leaves the JWK Set and stops verifying.
    pub valid_until: Option<i64>,
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
    /// How long a retired key verifies: the longest lifetime of any token
    /// signed with it plus the leeway (`Config::rotation_overlap_secs`).
    pub overlap_secs: u64,
    /// How long a next key is published before it signs.
    pub publish_ahead_secs: u64,
}

/// What a load found for one key id, before any key is parsed.
#[derive(Debug, Default)]
struct Found {
    current: Option<PathBuf>,
    next: Vec<(i64, PathBuf)>,
    retired: Vec<(i64, PathBuf)>,
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

    /// Loads the rings dumped in `dir`: every `{keyId}-private.pem`, its
    /// next pair, and the retired pairs whose overlap has not ended. A next
    /// pair whose time has come activates now. A file that is unreadable,
    /// not a regular file (symlinks are not followed), not a key for `alg`,
    /// named with an invalid key id, or over a bound is logged and skipped:
    /// one bad file must not keep the factory from starting. Stale `.tmp-*`
    /// files are removed. A missing `dir` is an empty store.
    pub fn load(dir: impl Into<PathBuf>, alg: SigningAlgorithm, windows: Windows) -> Self {
        let store = Self::new(dir, alg, windows);
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
        let mut found: BTreeMap<KeyId, Found> = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // `file_type` does not follow symlinks.
            let regular = entry.file_type().is_ok_and(|t| t.is_file());
            let symlink = entry.file_type().is_ok_and(|t| t.is_symlink());
            if name.starts_with(TMP_PREFIX) {
                remove_stale_tmp(&path, regular || symlink);
                continue;
            }
            let Some(parsed) = KeyFile::parse_private(name) else {
                continue;
            };
            let file = match parsed {
                Ok(file) => file,
                Err(why) => {
                    tracing::warn!(file = %path.display(), "skipped key file: {why}");
                    continue;
                }
            };
            if !regular {
                tracing::warn!(
                    file = %path.display(),
                    "skipped key file: not a regular file (a symlink or a directory is never followed)"
                );
                continue;
            }
            let id = match KeyId::parse(file.id()) {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "skipped key file: {e}");
                    continue;
                }
            };
            let slot = found.entry(id).or_default();
            match file {
                KeyFile::Current(_) => slot.current = Some(path),
                KeyFile::Next(p) => slot.next.push((p.at, path)),
                KeyFile::Retired(p) => slot.retired.push((p.at, path)),
            }
        }
        // Phased files without a current pair cannot be used.
        found.retain(|id, f| {
            if f.current.is_none() {
                for (_, path) in f.next.iter().chain(&f.retired) {
                    tracing::warn!(file = %path.display(), "skipped key file: no current key for {id}");
                }
            }
            f.current.is_some()
        });
        if found.len() > MAX_KEY_IDS {
            let skipped: Vec<String> = found
                .keys()
                .skip(MAX_KEY_IDS)
                .map(ToString::to_string)
                .collect();
            tracing::warn!(
                dir = %store.dir.display(),
                "{} key ids found, over the limit of {MAX_KEY_IDS}: skipped {} of them (the last in sort order: {}{})",
                found.len(),
                skipped.len(),
                skipped.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                if skipped.len() > 10 { ", ..." } else { "" }
            );
        }
        let now = now_unix();
        for (id, f) in found.into_iter().take(MAX_KEY_IDS) {
            if let Some(ring) = store.load_ring(&id, f, now) {
                store.write().insert(id, ring);
            }
        }
        store
    }

    /// One key id's ring from its files; `None` if its current pair is unusable.
    fn load_ring(&self, id: &KeyId, mut f: Found, now: i64) -> Option<Ring> {
        let path = f.current.take()?;
        let current = match self.load_one(id, &path) {
            Ok(entry) => entry,
            Err(reason) => {
                tracing::warn!(file = %path.display(), %reason, "skipped key file");
                return None;
            }
        };
        tracing::info!(key_id = %id, kid = current.kid(), file = %path.display(), "loaded current key pair");
        let mut ring = Ring::new(Arc::new(current));

        // One next pair at most (dump writes one): the earliest.
        f.next.sort_unstable_by_key(|(at, _)| *at);
        for (i, (at, path)) in f.next.into_iter().enumerate() {
            if i > 0 {
                tracing::warn!(file = %path.display(), "skipped next key pair: {id} already has one");
                continue;
            }
            match self.load_one(id, &path) {
                Ok(entry) => {
                    tracing::info!(key_id = %id, kid = entry.kid(), file = %path.display(),
                        "loaded next key pair (published; signs from {})", iso_millis(at));
                    ring.next = Some((Arc::new(entry), at));
                }
                Err(reason) => tracing::warn!(file = %path.display(), %reason, "skipped key file"),
            }
        }

        // Retired pairs still in overlap, newest first, at most MAX_RETIRED.
        f.retired
            .sort_unstable_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, path) in f.retired {
            if !self.in_overlap(at, now) {
                tracing::info!(file = %path.display(), "skipped retired key pair: its overlap has ended");
                continue;
            }
            if ring.retired.len() >= MAX_RETIRED {
                tracing::warn!(file = %path.display(),
                    "skipped retired key pair: {id} already has {MAX_RETIRED}, the limit");
                continue;
            }
            match self.load_one(id, &path) {
                Ok(entry) => {
                    tracing::info!(key_id = %id, kid = entry.kid(), file = %path.display(),
                        "loaded retired key pair (verifies until {})",
                        iso_millis(at.saturating_add(self.overlap_secs)));
                    ring.retired.push((Arc::new(entry), at));
                }
                Err(reason) => tracing::warn!(file = %path.display(), %reason, "skipped key file"),
            }
        }
        ring.settle(id, now, self.overlap_secs);
        Some(ring)
    }

    /// Whether a key retired at `at` still verifies at `now`. A retirement
    /// time in the future (a hand-edited file name) never does.
    fn in_overlap(&self, at: i64, now: i64) -> bool {
        at <= now && at.saturating_add(self.overlap_secs) > now
    }

    fn load_one(&self, id: &KeyId, path: &Path) -> Result<Entry, String> {
        // A private key others can read is refused, as ssh refuses it: the
        // message names the file and the chmod that fixes it.
        s2s_auth::files::check_private_key_mode(path)?;
        let pem = read_key_file(path).map_err(|e| e.to_string())?;
        let pair = KeyPair::from_private_pem_for(&pem, self.alg).map_err(|e| e.to_string())?;
        Entry::new(id, pair, self.alg).map_err(|e| e.to_string())
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
    /// current one, the next one, or a retired one still in its overlap. A
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
                ring.retired
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
    pub fn replace(&self, id: KeyId, pair: KeyPair) -> Result<Arc<Entry>, StoreError> {
        let entry = Arc::new(Entry::new(&id, pair, self.alg)?);
        let mut keys = self.write();
        if !keys.contains_key(&id) && keys.len() >= MAX_KEY_IDS {
            return Err(StoreError::Limit(format!(
                "this factory already holds {MAX_KEY_IDS} key ids, its limit"
            )));
        }
        keys.insert(id, Ring::new(Arc::clone(&entry)));
        Ok(entry)
    }

    /// Refuses early what [`KeyStore::rotate`] would refuse (unknown key
    /// id, a pending next key, too many retired keys), so no key is
    /// generated for nothing.
    pub fn check_rotate(&self, id: &KeyId, mode: RotationMode) -> Result<(), StoreError> {
        let now = now_unix();
        let ring = self
            .ring(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        self.refusal(id, &ring, mode, now).map_or(Ok(()), Err)
    }

    fn refusal(&self, id: &KeyId, ring: &Ring, mode: RotationMode, now: i64) -> Option<StoreError> {
        if mode == RotationMode::Emergency {
            // A compromised key must always be replaceable.
            return None;
        }
        if let Some((next, at)) = &ring.next {
            return Some(StoreError::Pending(format!(
                "{id} already has a next key, {}, published and signing from {}: \
                 rotate again after that (or use ?emergency=1 if the current key is compromised)",
                next.kid(),
                iso_millis(*at)
            )));
        }
        let live: Vec<i64> = ring
            .retired
            .iter()
            .filter(|(_, at)| self.in_overlap(*at, now))
            .map(|(_, at)| *at)
            .collect();
        if live.len() >= MAX_RETIRED {
            let leaves = live
                .iter()
                .map(|at| at.saturating_add(self.overlap_secs))
                .min()
                .unwrap_or(now);
            return Some(StoreError::Limit(format!(
                "{id} already has {MAX_RETIRED} rotated-out keys still verifying; \
                 the oldest leaves at {} (or replace the key with GET /keys/{id})",
                iso_millis(leaves)
            )));
        }
        None
    }

    /// Rotates `id` to `pair`. Phased: `pair` is published now and signs
    /// after the publish-ahead time; the current key signs until then and
    /// verifies for the overlap after. Emergency: `pair` signs now and the
    /// current key (and any pending next key) is withdrawn at once.
    pub fn rotate(
        &self,
        id: &KeyId,
        pair: KeyPair,
        mode: RotationMode,
    ) -> Result<Rotation, StoreError> {
        let entry = Arc::new(Entry::new(id, pair, self.alg)?);
        let now = now_unix();
        let mut keys = self.write();
        let ring = keys
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        ring.settle(id, now, self.overlap_secs);
        ring.retired.retain(|(_, at)| self.in_overlap(*at, now));
        if let Some(refusal) = self.refusal(id, ring, mode, now) {
            return Err(refusal);
        }
        let previous_kid = ring.current.kid().to_owned();
        match mode {
            RotationMode::Phased => {
                // `now` is whole seconds, rounded down: one more second
                // makes the real wait at least the publish-ahead time.
                let at = match self.publish_ahead_secs {
                    0 => now,
                    ahead => now.saturating_add(ahead).saturating_add(1),
                };
                ring.next = Some((Arc::clone(&entry), at));
                // With no publish-ahead time, the new key signs at once.
                ring.settle(id, now, self.overlap_secs);
                Ok(Rotation {
                    key: entry,
                    activates_at: at,
                    previous_kid,
                    previous_valid_until: at.saturating_add(self.overlap_secs),
                })
            }
            RotationMode::Emergency => {
                if let Some((next, _)) = ring.next.take() {
                    tracing::warn!(key_id = %id, "emergency rotation: discarded the pending next key {}", next.kid());
                }
                ring.current = Arc::clone(&entry);
                Ok(Rotation {
                    key: entry,
                    activates_at: now,
                    previous_kid,
                    previous_valid_until: now,
                })
            }
        }
    }

    /// Every key id, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().map(|k| k.to_string()).collect()
    }

    /// Each key of `id` with its phase: next, current, retiring (newest first).
    pub fn status(&self, id: &KeyId) -> Option<Vec<KeyStatus>> {
        let ring = self.ring(id)?;
        let now = now_unix();
        let mut out = Vec::new();
        if let Some((next, at)) = &ring.next {
            out.push(KeyStatus {
                kid: next.kid().to_owned(),
                phase: Phase::Next,
                activates_at: Some(*at),
                retired_at: None,
                valid_until: None,
            });
        }
        out.push(KeyStatus {
            kid: ring.current.kid().to_owned(),
            phase: Phase::Current,
            activates_at: None,
            retired_at: None,
            valid_until: None,
        });
        let mut retired: Vec<_> = ring
            .retired
            .iter()
            .filter(|(_, at)| self.in_overlap(*at, now))
            .collect();
        retired.sort_unstable_by_key(|(_, at)| std::cmp::Reverse(*at));
        for (e, at) in retired {
            out.push(KeyStatus {
                kid: e.kid().to_owned(),
                phase: Phase::Retiring,
                activates_at: None,
                retired_at: Some(*at),
                valid_until: Some(at.saturating_add(self.overlap_secs)),
            });
        }
        Some(out)
    }

    /// The public JWK of every key pair that verifies: each key id's next
    /// key, current key, and retired keys still in their overlap.
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
            for (e, at) in &ring.retired {
                if self.in_overlap(*at, now) {
                    out.push(e.jwk.clone());
                }
            }
        }
        out
    }

    /// Writes every ring to `KEYS_DIR`, each file atomically, public keys
    /// 0644 and private keys 0600: current pairs as `{id}-public.pem` /
    /// `{id}-private.pem`, next and retired pairs under their [`KeyFile`]
    /// names. Removes next and retired files that describe no key of the
    /// store any more (overlap ended, activated, replaced); anything there
    /// that is not a regular file is left alone with a warning. Blocking:
    /// call from `spawn_blocking`.
    pub fn dump(&self) -> io::Result<Vec<PathBuf>> {
        let _one_at_a_time = self.dumping.lock().unwrap_or_else(|p| p.into_inner());
        self.settle_all();
        let snapshot: Vec<(KeyId, Ring)> = self
            .read()
            .iter()
            .map(|(id, ring)| (id.clone(), ring.clone()))
            .collect();
        let now = now_unix();
        let mut written = Vec::new();
        for (id, ring) in &snapshot {
            let mut pairs = vec![(KeyFile::Current(id.to_string()), &ring.current)];
            if let Some((next, at)) = &ring.next {
                pairs.push((KeyFile::Next(Phased::of(id, *at, next)), next));
            }
            for (e, at) in &ring.retired {
                if self.in_overlap(*at, now) {
                    pairs.push((KeyFile::Retired(Phased::of(id, *at, e)), e));
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
        // Phased files not written now belong to keys that left the store:
        // remove them, so they cannot come back.
        let listing = match fs::read_dir(&self.dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(written),
            Err(e) => return Err(e),
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let phased = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(KeyFile::is_phased_name);
            if !phased || written.contains(&path) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                fs::remove_file(&path)?;
            } else {
                tracing::warn!(file = %path.display(), "left alone: named like a key file but not a regular file");
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

/// Removes a `.tmp-*` file an interrupted [`write_atomic`] left (it may
/// hold a private key). Directories are left alone.
fn remove_stale_tmp(path: &Path, removable: bool) {
    if !removable {
        tracing::warn!(file = %path.display(), "left alone: named like a temporary file but not a regular file");
        return;
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "removed a stale temporary file (left by an interrupted write)")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a stale temporary file")
        }
    }
}

/// Reads a key file without following a symlink: the path must be a
/// regular file itself, and the file opened must be that same file (so a
/// symlink swapped in between the check and the open is caught too).
/// Written with std only: `O_NOFOLLOW` would need `libc`.
fn read_key_file(path: &Path) -> io::Result<String> {
    let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    let before = fs::symlink_metadata(path)?;
    if !before.file_type().is_file() {
        return Err(invalid("not a regular file (symlinks are not followed)"));
    }
    let file = fs::File::open(path)?;
    let after = file.metadata()?;
    if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(invalid("the file was replaced while being opened"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(invalid("larger than a key file can be"));
    }
    String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names_round_trip_and_are_unique_per_key() {
        let dir = Path::new("keys");
        let phased = |thumb: &str| Phased {
            id: "servicea".into(),
            at: 1_796_162_486,
            thumb: Some(thumb.into()),
        };
        for file in [
            KeyFile::Current("servicea".into()),
            KeyFile::Next(phased("A1vS2vz7")),
            KeyFile::Retired(phased("dXc-_rti")),
        ] {
            let private = file.private(dir);
            let name = private
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert_eq!(
                KeyFile::parse_private(name),
                Some(Ok(file.clone())),
                "{name}"
            );
            assert_eq!(
                KeyFile::is_phased_name(name),
                !matches!(file, KeyFile::Current(_)),
                "{name}"
            );
        }
        // Two keys retired in the same second: two names.
        assert_ne!(
            KeyFile::Retired(phased("aaaaaaaa")).private(dir),
            KeyFile::Retired(phased("bbbbbbbb")).private(dir)
        );
        // Files written before the thumbprint was part of the name still load.
        assert_eq!(
            KeyFile::parse_private("servicea.retired-1796162486-private.pem"),
            Some(Ok(KeyFile::Retired(Phased {
                id: "servicea".into(),
                at: 1_796_162_486,
                thumb: None
            })))
        );
        assert!(matches!(
            KeyFile::parse_private("servicea.next-soon.abc-private.pem"),
            Some(Err(_))
        ));
        assert_eq!(KeyFile::parse_private("servicea-public.pem"), None);
    }
}
