//! The store on disk: loading `KEYS_DIR` at start (trusting nothing found
//! there) and dumping the rings back to it, each file written atomically.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read as _},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use s2s_auth::{
    KeyId, KeyPair, SigningAlgorithm,
    files::{PRIVATE, PUBLIC, write_atomic},
    now_unix,
    time_fmt::iso_millis,
};

use super::{
    Entry, KeyStore, MAX_KEY_IDS, MAX_RETIRING, SigningKey, Windows,
    file_names::{KeyFile, Phased, TMP_PREFIX},
    ring::Ring,
};

/// What a load found for one key id, before any key is parsed.
#[derive(Debug, Default)]
struct Found {
    current: Option<PathBuf>,
    next: Vec<(i64, PathBuf)>,
    retiring: Vec<(i64, PathBuf)>,
}

impl KeyStore {
    /// Loads the rings dumped in `dir`: every `{keyId}-private.pem`, its
    /// next pair, and the retiring pairs whose overlap has not ended. A next
    /// pair whose time has come activates now. A file that is unreadable,
    /// not a regular file (symlinks are not followed), not a key for `alg`,
    /// named with an invalid key id, or over a bound is logged and skipped:
    /// one bad file must not keep the factory from starting. Stale `.tmp-*`
    /// files are removed. A missing `dir` is an empty store.
    pub fn load(dir: impl Into<PathBuf>, alg: SigningAlgorithm, windows: Windows) -> Self {
        let store = Self::new(dir, alg, windows);
        let Some(entries) = listing(&store.dir) else {
            return store;
        };
        let mut found: BTreeMap<KeyId, Found> = BTreeMap::new();
        for entry in entries.flatten() {
            let Some((id, file, path)) = key_file(&entry) else {
                continue;
            };
            let slot = found.entry(id).or_default();
            match file {
                KeyFile::Current(_) => slot.current = Some(path),
                KeyFile::Next(p) => slot.next.push((p.at, path)),
                KeyFile::Retiring(p) => slot.retiring.push((p.at, path)),
            }
        }
        drop_orphans(&mut found);
        warn_over_limit(&store.dir, &found);
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

        // Retiring pairs still in overlap, newest first, at most MAX_RETIRING.
        f.retiring
            .sort_unstable_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, path) in f.retiring {
            if !self.in_overlap(at, now) {
                tracing::info!(file = %path.display(), "skipped retiring key pair: its overlap has ended");
                continue;
            }
            if ring.retiring.len() >= MAX_RETIRING {
                tracing::warn!(file = %path.display(),
                    "skipped retiring key pair: {id} already has {MAX_RETIRING}, the limit");
                continue;
            }
            match self.load_one(id, &path) {
                Ok(entry) => {
                    tracing::info!(key_id = %id, kid = entry.kid(), file = %path.display(),
                        "loaded retiring key pair (verifies until {})",
                        iso_millis(at.saturating_add(self.overlap_secs)));
                    ring.retiring.push((Arc::new(entry), at));
                }
                Err(reason) => tracing::warn!(file = %path.display(), %reason, "skipped key file"),
            }
        }
        ring.settle(id, now, self.overlap_secs);
        Some(ring)
    }

    fn load_one(&self, id: &KeyId, path: &Path) -> Result<Entry, String> {
        // A private key others can read is refused, as ssh refuses it: the
        // message names the file and the chmod that fixes it.
        s2s_auth::files::check_private_key_mode(path)?;
        let pem = read_key_file(path).map_err(|e| e.to_string())?;
        let pair = KeyPair::from_private_pem_for(&pem, self.alg).map_err(|e| e.to_string())?;
        Entry::new(id, SigningKey::Local(pair), self.alg).map_err(|e| e.to_string())
    }

    /// Writes every ring to `KEYS_DIR`, each file atomically, public keys
    /// 0644 and private keys 0600: current pairs as `{id}-public.pem` /
    /// `{id}-private.pem`, next and retiring pairs under their [`KeyFile`]
    /// names. Removes next and retiring files that describe no key of the
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
            for (e, at) in &ring.retiring {
                if self.in_overlap(*at, now) {
                    pairs.push((KeyFile::Retiring(Phased::of(id, *at, e)), e));
                }
            }
            for (file, entry) in pairs {
                // A key OpenBao holds has no private half here to write.
                let SigningKey::Local(pair) = &entry.key else {
                    continue;
                };
                let public = file.public(&self.dir);
                let private = file.private(&self.dir);
                write_atomic(&public, pair.public().pem().as_bytes(), PUBLIC)?;
                write_atomic(&private, pair.private_pem().as_bytes(), PRIVATE)?;
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
}

/// The entries of the keys folder; `None` (logged) if there is none or it
/// cannot be read: the factory then starts with no keys.
fn listing(dir: &Path) -> Option<fs::ReadDir> {
    match fs::read_dir(dir) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::info!(dir = %dir.display(), "no keys folder yet: starting with no keys");
            None
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read keys folder: starting with no keys");
            None
        }
    }
}

/// The key id and name of one entry of the keys folder, if it is a usable
/// private-key file; anything else is skipped (logged if named like a key
/// file), and a stale `.tmp-*` file is removed.
fn key_file(entry: &fs::DirEntry) -> Option<(KeyId, KeyFile, PathBuf)> {
    let path = entry.path();
    let name = path.file_name().and_then(|n| n.to_str())?;
    // `file_type` does not follow symlinks.
    let regular = entry.file_type().is_ok_and(|t| t.is_file());
    let symlink = entry.file_type().is_ok_and(|t| t.is_symlink());
    if name.starts_with(TMP_PREFIX) {
        remove_stale_tmp(&path, regular || symlink);
        return None;
    }
    let file = match KeyFile::parse_private(name)? {
        Ok(file) => file,
        Err(why) => {
            tracing::warn!(file = %path.display(), "skipped key file: {why}");
            return None;
        }
    };
    if !regular {
        tracing::warn!(
            file = %path.display(),
            "skipped key file: not a regular file (a symlink or a directory is never followed)"
        );
        return None;
    }
    match KeyId::parse(file.id()) {
        Ok(id) => Some((id, file, path)),
        Err(e) => {
            tracing::warn!(file = %path.display(), "skipped key file: {e}");
            None
        }
    }
}

/// Phased files without a current pair cannot be used: dropped, logged.
fn drop_orphans(found: &mut BTreeMap<KeyId, Found>) {
    found.retain(|id, f| {
        if f.current.is_none() {
            for (_, path) in f.next.iter().chain(&f.retiring) {
                tracing::warn!(file = %path.display(), "skipped key file: no current key for {id}");
            }
        }
        f.current.is_some()
    });
}

/// Logs the key ids past [`MAX_KEY_IDS`], which the load skips.
fn warn_over_limit(dir: &Path, found: &BTreeMap<KeyId, Found>) {
    if found.len() <= MAX_KEY_IDS {
        return;
    }
    let skipped: Vec<String> = found
        .keys()
        .skip(MAX_KEY_IDS)
        .map(ToString::to_string)
        .collect();
    tracing::warn!(
        dir = %dir.display(),
        "{} key ids found, over the limit of {MAX_KEY_IDS}: skipped {} of them (the last in sort order: {}{})",
        found.len(),
        skipped.len(),
        skipped.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
        if skipped.len() > 10 { ", ..." } else { "" }
    );
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

/// Largest key file read at start-up.
const MAX_KEY_FILE: u64 = 64 * 1024;
