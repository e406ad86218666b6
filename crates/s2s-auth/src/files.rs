//! Writing key and certificate files so that a crash never leaves a half
//! written key, and a private key is never readable by others, not even for
//! a moment: the bytes go to a temporary file created with the final mode in
//! the same directory, are flushed to disk, then renamed over the target.

use std::{
    fs,
    io::{self, Read, Write},
    os::unix::fs::PermissionsExt,
    path::Path,
};

/// Mode for private keys: owner read/write only.
pub const PRIVATE: u32 = 0o600;
/// Mode for public keys and certificates.
pub const PUBLIC: u32 = 0o644;

/// Atomically replaces `path` with `contents`, created with `mode`.
/// Creates the parent directory if needed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable; best effort (not all filesystems allow it).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Refuses a private key file that group or others may use (any of the
/// mode bits `0o077`), as ssh does: a key others can read is a key others
/// may have copied. The message names the file and the `chmod` that fixes
/// it. For jwt-factory's keys at load, servicea's signing key and the TLS
/// key.
pub fn check_private_key_mode(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path)
        .map_err(|e| format!("cannot check the mode of {}: {e}", path.display()))?;
    private_key_mode_problem(path, meta.permissions().mode())
}

/// The rule of [`check_private_key_mode`], for a mode already read.
pub fn private_key_mode_problem(path: &Path, mode: u32) -> Result<(), String> {
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(format!(
        "private key {} is open to group or others (mode {:04o}): refusing it, as ssh \
         does; run `chmod 600 {}`",
        path.display(),
        mode & 0o7777,
        path.display()
    ))
}

/// Reads a small text file (a key, a certificate), refusing more than `max`
/// bytes. The bound applies to what is read, not to a size seen earlier: the
/// file may be replaced in between.
pub fn read_small_text(path: &Path, max: u64) -> io::Result<String> {
    let mut bytes = Vec::new();
    fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_replaces() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("sub").join("k.pem");
        write_atomic(&p, b"one", PRIVATE)?;
        write_atomic(&p, b"two", PRIVATE)?;
        assert_eq!(fs::read(&p)?, b"two");
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap_or(dir.path()))?.count(), 1);
        Ok(())
    }

    #[test]
    fn private_keys_open_to_others_are_refused_with_the_chmod() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k.pem");
        write_atomic(&p, b"key", PRIVATE)?;
        assert_eq!(check_private_key_mode(&p), Ok(()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400))?;
        assert_eq!(check_private_key_mode(&p), Ok(()));
        for mode in [0o644, 0o666, 0o640, 0o604, 0o620, 0o610] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
            let err = check_private_key_mode(&p).err().unwrap_or_default();
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains(&format!("chmod 600 {}", p.display())), "{err}");
        }
        let missing = check_private_key_mode(&dir.path().join("none"));
        assert!(missing.is_err());
        Ok(())
    }
}
