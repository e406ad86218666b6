//! A key file parsed once, cached in memory, and reloaded when it changes.
//!
//! Services start before `gen-keys` has run (as in the original walkthrough),
//! and keys get rotated while services run. So a key file may be missing,
//! appear later, or be replaced. [`WatchedFile::get`] answers from the cache
//! while the file's identity (inode, size, modification and change times) is unchanged,
//! which costs one `stat` per call and no read or parse; when it changed, the
//! file is read and parsed again. A missing or broken file is an error that
//! names the file, and the next call tries again: no restart needed.

use crate::files::read_small_text;
use std::{
    fmt, fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

/// Largest key file read, in bytes: a PEM RSA-4096 key is about 3.3 KiB.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Why the file could not provide a key. Each names the path. The reason
/// is kept as text: one outcome is cached and handed to every caller until
/// the file changes, so it must be cheap to clone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WatchedError {
    #[error("file not found: {path}")]
    Missing { path: PathBuf },
    #[error("file {path} could not be read: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A private key that group or others may read (see
    /// [`crate::files::check_private_key_mode`]).
    #[error("{reason}")]
    OpenToOthers { path: PathBuf, reason: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    /// Status change time: also moves when a rewrite keeps the mtime
    /// (`cp -p`, `touch -r`), and key files of one kind share a size.
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A file a request needed and could not use: what it is, why not, and
/// what to do about it (the hint lives with the file, not with each caller).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} unavailable: {source}{}", hint_for(.source, .hint))]
pub struct Unavailable {
    pub what: &'static str,
    #[source]
    pub source: WatchedError,
    pub hint: &'static str,
}

/// The hint, unless the error already says what to do (the `chmod`).
fn hint_for(source: &WatchedError, hint: &str) -> String {
    match source {
        WatchedError::OpenToOthers { .. } => String::new(),
        _ => format!(". {hint}"),
    }
}

/// A loaded key, or why the file could not give one.
type Outcome<T> = Result<Arc<T>, WatchedError>;

/// Turns the file's text into the value, or says why it cannot.
type Parse<T> = Box<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

/// A file whose parsed contents are cached until the file changes.
pub struct WatchedFile<T> {
    path: PathBuf,
    what: &'static str,
    /// What to do when the file is missing or broken ("run `app gen-certs`").
    hint: &'static str,
    parse: Parse<T>,
    /// A private key: refused while group or others may read it.
    private: bool,
    /// The last outcome (a key or why not) and the file identity it is for.
    cached: RwLock<Option<(Stamp, Outcome<T>)>>,
}

impl<T> fmt::Debug for WatchedFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedFile")
            .field("path", &self.path)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<T> WatchedFile<T> {
    /// `what` names the file in logs and errors ("scenario-3 signing key");
    /// `hint` says how to create or fix it.
    pub fn new<E: fmt::Display>(
        path: impl Into<PathBuf>,
        what: &'static str,
        hint: &'static str,
        parse: impl Fn(&str) -> Result<T, E> + Send + Sync + 'static,
    ) -> Self {
        Self {
            path: path.into(),
            what,
            hint,
            parse: Box::new(move |text| parse(text).map_err(|e| e.to_string())),
            private: false,
            cached: RwLock::new(None),
        }
    }

    /// The file is a private key: refused (before it is read) while its
    /// mode lets group or others read it. A `chmod` changes the file's
    /// change time, so the fixed file is picked up on the next call.
    #[must_use]
    pub fn private_key(mut self) -> Self {
        self.private = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed key: from the cache, or freshly loaded if the file changed.
    /// A file that is broken is reported from the cache too, until it changes:
    /// it is not re-read and re-parsed for every request.
    pub fn get(&self) -> Result<Arc<T>, Unavailable> {
        self.get_inner().map_err(|source| Unavailable {
            what: self.what,
            source,
            hint: self.hint,
        })
    }

    fn get_inner(&self) -> Outcome<T> {
        let meta = fs::metadata(&self.path).map_err(|e| self.io_error(&e))?;
        let stamp = Stamp::of(&meta);
        if let Some((seen, outcome)) = &*self.cached.read().unwrap_or_else(|p| p.into_inner())
            && *seen == stamp
        {
            return outcome.clone();
        }
        let outcome = self.load(&meta);
        let mut slot = self.cached.write().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(_) => tracing::info!(
                path = %self.path.display(),
                "{} {} (parsed once, cached until the file changes)",
                if slot.is_some() { "reloaded changed" } else { "loaded" },
                self.what
            ),
            Err(err) => tracing::warn!("{} is not usable: {err}", self.what),
        }
        *slot = Some((stamp, outcome.clone()));
        outcome
    }

    fn load(&self, meta: &fs::Metadata) -> Outcome<T> {
        let invalid = |reason: String| WatchedError::Invalid {
            path: self.path.clone(),
            reason,
        };
        if !meta.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        if self.private {
            crate::files::private_key_mode_problem(&self.path, meta.mode()).map_err(|reason| {
                WatchedError::OpenToOthers {
                    path: self.path.clone(),
                    reason,
                }
            })?;
        }
        let text = read_small_text(&self.path, MAX_FILE_LEN).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => invalid(e.to_string()),
            _ => self.io_error(&e),
        })?;
        (self.parse)(&text).map(Arc::new).map_err(invalid)
    }

    fn io_error(&self, e: &io::Error) -> WatchedError {
        if e.kind() == io::ErrorKind::NotFound {
            WatchedError::Missing {
                path: self.path.clone(),
            }
        } else {
            WatchedError::Unreadable {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{PUBLIC, write_atomic};

    fn parse_len(s: &str) -> Result<usize, String> {
        if s.starts_with("ok") {
            Ok(s.len())
        } else {
            Err("bad".into())
        }
    }

    #[test]
    fn missing_then_appears_then_changes_then_breaks() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("k");
        let w = WatchedFile::new(&path, "test key", "make one", parse_len);
        let missing = w.get().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            missing.starts_with("test key unavailable: file not found"),
            "{missing}"
        );
        assert!(missing.ends_with(". make one"), "{missing}");
        write_atomic(&path, b"ok1", PUBLIC)?;
        assert_eq!(w.get().ok().as_deref(), Some(&3));
        let first = w.get().ok();
        assert!(
            first.is_some_and(|a| Arc::ptr_eq(&a, &w.get().ok().unwrap_or_else(|| Arc::new(0))))
        );
        write_atomic(&path, b"ok123", PUBLIC)?;
        assert_eq!(w.get().ok().as_deref(), Some(&5));
        write_atomic(&path, b"garbage", PUBLIC)?;
        assert!(matches!(
            w.get(),
            Err(Unavailable {
                source: WatchedError::Invalid { .. },
                ..
            })
        ));
        write_atomic(&path, b"ok12", PUBLIC)?;
        assert_eq!(w.get().ok().as_deref(), Some(&4));
        Ok(())
    }
}
