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
}
