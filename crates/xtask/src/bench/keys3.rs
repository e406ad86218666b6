//! Each algorithm's run makes servicea a key pair of its kind in
//! scenario-3-keys/: the pair that was there is kept aside and put back at
//! the end, so a stack started after the bench finds the key it had.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// scenario-3-keys/*.pem as they were.
#[derive(Debug)]
pub struct Kept {
    dir: PathBuf,
    saved: Vec<(String, Vec<u8>, u32)>,
}

fn pems(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect()
}

/// Keeps a copy of `dir`'s `.pem` files.
pub fn keep(dir: &Path) -> Result<Kept> {
    let mut saved = Vec::new();
    for path in pems(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path)?.permissions());
        saved.push((name, bytes, mode));
    }
    Ok(Kept {
        dir: dir.to_path_buf(),
        saved,
    })
}

impl Kept {
    /// Puts them back, removing what the bench made.
    pub fn restore(&self) -> Result<()> {
        for path in pems(&self.dir) {
            std::fs::remove_file(&path)?;
        }
        for (name, bytes, mode) in &self.saved {
            write_with_mode(&self.dir.join(name), bytes, *mode)?;
        }
        println!("scenario-3-keys/ restored as it was before the bench");
        Ok(())
    }
}

/// Writes a key file with the mode it had.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    Ok(())
}
