//! Scenarios 3-4: servicea's own key, rotated with an overlap.
//!
//! The seed's story stays as it was: `scenario-3-keys/jwt-private.pem`
//! signs and `jwt-public.pem` verifies; they are the *current* pair. A
//! rotation (`POST /gen-keys` on a servicea that already has a key) adds
//! two phases beside them, by file name:
//!
//! | file | phase |
//! | --- | --- |
//! | `jwt-public.next.pem`, `jwt-private.next.pem` | published: receivers accept it, servicea does not sign with it yet |
//! | `jwt-public.pem`, `jwt-private.pem` | current: servicea signs with it |
//! | `jwt-public.previous.pem` | retiring: the key before, still verifying the tokens it signed (the file keeps its first name, so files of a rotation under way still load) |
//!
//! servicea writes the next pair, waits `SCENARIO3_PUBLISH_AHEAD_SECS`
//! (default 2 s: receivers re-check the files on every request, so they
//! see the next key at once; the wait only covers requests in flight),
//! then *promotes* it ([`promote`]): the current public key becomes the
//! retiring one, the next pair becomes current, the next files go. Each
//! write is atomic, and in that order a token is always verifiable: signed
//! with the old key, it matches the retiring one; with the new one, `current`.
//! (The same vocabulary as jwt-factory's phases: next, current, retiring.)
//!
//! servicea's tokens carry a `kid` (`servicea.<thumbprint>`, as the
//! factory names keys: [`s2s_auth::jwk`]). The receivers use it only to
//! *select* among these three files; a token with no `kid`, or one that
//! names none of them, is checked against the current key, as before. So
//! a `kid` never brings a key.
//!
//! A second rotation is refused (409) while a next key is pending, and
//! while tokens signed with the retiring key may still be valid
//! (`SELF_SIGNED_LIFETIME_SECS` plus [`RECEIVER_LEEWAY_SECS`] after the
//! promotion, read from the retiring file's modification time, so a
//! restart keeps the rule): a third key would push that one out.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use s2s_auth::{
    KeyId, PublicKey, SigningAlgorithm,
    files::{self, PRIVATE, PUBLIC},
    jwk::{kid_of, public_jwk},
};

/// The receivers' default `LEEWAY_SECS`, counted into the retiring key's
/// overlap (servicea does not know the receivers' setting).
pub(crate) const RECEIVER_LEEWAY_SECS: u64 = 5;

/// The files of servicea's key set, named after the configured current pair.
#[derive(Clone, Debug)]
pub(crate) struct KeySetFiles {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeySetFiles {
    pub(crate) fn next_private(&self) -> PathBuf {
        tagged(&self.private, "next")
    }

    pub(crate) fn next_public(&self) -> PathBuf {
        tagged(&self.public, "next")
    }

    pub(crate) fn retiring_public(&self) -> PathBuf {
        tagged(&self.public, "previous")
    }
}

/// `dir/jwt-public.pem` with tag `next`: `dir/jwt-public.next.pem`.
pub(crate) fn tagged(path: &Path, tag: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.extension() {
        Some(ext) => path.with_file_name(format!("{stem}.{tag}.{}", ext.to_string_lossy())),
        None => path.with_file_name(format!("{stem}.{tag}")),
    }
}

/// The `kid` of `owner`'s public key: the factory's naming, so one rule
/// covers every key of the workshop.
pub(crate) fn kid_for(
    owner: &str,
    key: &PublicKey,
    alg: SigningAlgorithm,
) -> Result<String, String> {
    let id = KeyId::parse(owner).map_err(|e| e.to_string())?;
    let jwk = public_jwk(&id, key, alg).map_err(|e| e.to_string())?;
    Ok(kid_of(&jwk).to_owned())
}

/// A public key with its `kid`: what a receiver holds per file.
#[derive(Debug)]
pub(crate) struct NamedKey {
    pub key: PublicKey,
    pub kid: String,
}

impl NamedKey {
    pub(crate) fn parse(pem: &str, owner: &str, alg: SigningAlgorithm) -> Result<Self, String> {
        let key = PublicKey::from_pem_for(pem, alg).map_err(|e| e.to_string())?;
        let kid = kid_for(owner, &key, alg)?;
        Ok(Self { key, kid })
    }
}

/// Why a rotation cannot start now: the message says until when.
pub(crate) fn refusal(files: &KeySetFiles, lifetime_secs: u64) -> Option<String> {
    if files.next_private().exists() || files.next_public().exists() {
        return Some(format!(
            "a key rotation is already under way: {} is published and becomes current shortly; \
             try again after that",
            files.next_public().display()
        ));
    }
    let overlap = Duration::from_secs(lifetime_secs + RECEIVER_LEEWAY_SECS);
    let promoted = fs::metadata(files.retiring_public())
        .and_then(|m| m.modified())
        .ok()?;
    let ends = promoted + overlap;
    let left = ends.duration_since(SystemTime::now()).ok()?;
    Some(format!(
        "the retiring key ({}) still verifies tokens it signed for {} s more \
         (TOKEN_LIFETIME_SECS + {RECEIVER_LEEWAY_SECS} s leeway); rotating again now would \
         drop it: try again then",
        files.retiring_public().display(),
        left.as_secs() + 1
    ))
}

/// Writes `pair` as the next pair (private 0600), each file atomically.
pub(crate) fn publish_next(
    files: &KeySetFiles,
    private_pem: &str,
    public_pem: &str,
) -> io::Result<()> {
    // Public first: a receiver may accept the key before servicea could
    // sign with it, never the other way round.
    files::write_atomic(&files.next_public(), public_pem.as_bytes(), PUBLIC)?;
    files::write_atomic(&files.next_private(), private_pem.as_bytes(), PRIVATE)
}

/// Makes the next pair current: current public → retiring, next public →
/// current, next private → current, then removes the next files. Each step
/// is atomic and safe to run again after a crash (a current public key
/// that already is the next one is not made the retiring one). Nothing to
/// do without a next pair. Blocking.
pub(crate) fn promote(files: &KeySetFiles) -> io::Result<bool> {
    let read = |p: &Path| files::read_small_text(p, 64 * 1024);
    let (next_private, next_public) =
        match (read(&files.next_private()), read(&files.next_public())) {
            (Ok(private), Ok(public)) => (private, public),
            (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
    match read(&files.public) {
        Ok(current) if current != next_public => {
            files::write_atomic(&files.retiring_public(), current.as_bytes(), PUBLIC)?;
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    files::write_atomic(&files.public, next_public.as_bytes(), PUBLIC)?;
    files::write_atomic(&files.private, next_private.as_bytes(), PRIVATE)?;
    for p in [files.next_private(), files.next_public()] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_names() {
        assert_eq!(
            tagged(Path::new("scenario-3-keys/jwt-public.pem"), "next"),
            PathBuf::from("scenario-3-keys/jwt-public.next.pem")
        );
        assert_eq!(
            tagged(Path::new("k"), "previous"),
            PathBuf::from("k.previous")
        );
    }
}
