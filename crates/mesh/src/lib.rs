//! The mesh on a laptop (issue 15): Istio's security resources, translated
//! into the configuration of real Envoy sidecars.
//!
//! Istio programs Envoy. This crate does the same for the subset of
//! `PeerAuthentication`, `RequestAuthentication` and `AuthorizationPolicy`
//! the workshop uses, so the YAML under `deploy/istio/` is both what a
//! cluster would apply and what the laptop's sidecars enforce. The
//! services take part in none of it: they talk plain http to their own
//! sidecar, and read what it tells them.
//!
//! - [`istio`]: the resources, read from YAML; unknown fields are refused.
//! - [`select`]: which resources apply to which workload.
//! - [`jwt`], [`rbac`]: RequestAuthentication and AuthorizationPolicy as
//!   Envoy filters.
//! - [`envoy`], [`render`]: one sidecar's files.
//! - [`write`]: atomic writes, so running sidecars reload them whole.
//! - [`admin`]: waiting until each sidecar runs what was written.
//! - [`topology`]: the laptop's ports and addresses.

use std::{io, path::PathBuf, time::Duration};

pub mod admin;
pub mod envoy;
pub mod istio;
pub mod jwt;
pub mod rbac;
pub mod render;
pub mod select;
pub mod topology;
pub mod write;

pub use istio::Policies;
pub use render::{SidecarConfig, render};
pub use topology::{Sidecar, Topology};

/// What can go wrong, each naming the file or sidecar concerned.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: {what}")]
    Resource { path: PathBuf, what: String },
    #[error(
        "{workload}'s sidecar did not apply the new configuration within {waited:?}: {missing}. \
         Is it running? Its log says why it rejected a file"
    )]
    NotApplied {
        workload: String,
        waited: Duration,
        missing: String,
    },
}
