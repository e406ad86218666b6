//! Writing a sidecar's files so that a running Envoy picks them up whole.
//!
//! Envoy watches each file's folder and reloads a file when one is moved
//! into it, so each file is written beside its place and renamed over it
//! ([`s2s_auth::files::write_atomic`]): Envoy never reads half a file. A
//! file whose content is unchanged is left alone, so nothing reloads.

use std::{fs, io, path::Path};

use s2s_auth::files::{self, PUBLIC};
use serde_json::Value;

use crate::render::SidecarConfig;

/// What [`write`] did to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Replaced,
    Unchanged,
}

/// Writes the bootstrap and the dynamic files of `config` into `dir`.
pub fn write(config: &SidecarConfig, dir: &Path) -> io::Result<Vec<(&'static str, Written)>> {
    let mut done = vec![(
        "envoy.json",
        write_json(&dir.join("envoy.json"), &config.bootstrap)?,
    )];
    for (name, content, _) in &config.files {
        done.push((*name, write_json(&dir.join(name), content)?));
    }
    Ok(done)
}

fn write_json(path: &Path, value: &Value) -> io::Result<Written> {
    let mut text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    text.push(b'\n');
    let written = match fs::read(path) {
        Ok(old) if old == text => return Ok(Written::Unchanged),
        Ok(_) => Written::Replaced,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Written::Created,
        Err(e) => return Err(e),
    };
    files::write_atomic(path, &text, PUBLIC)?;
    Ok(written)
}
