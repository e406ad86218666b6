//! The https listener's certificate (one-way TLS for scenarios 3-4).
//!
//! A receiver started with `START_HTTPS=1` but no certificate stops at once
//! with a message saying how to make one: failing later, at the first
//! scenario-3 call, would be far harder to diagnose in a workshop.

use std::path::Path;

use anyhow::{Context as _, bail};
use axum_server::tls_rustls::RustlsConfig;

/// Loads the certificate chain and key. `from_pem_file` also sets ALPN
/// (h2, http/1.1).
pub async fn server_config(cert: &Path, key: &Path) -> anyhow::Result<RustlsConfig> {
    for (path, what) in [(cert, "TLS certificate"), (key, "TLS private key")] {
        if !path.is_file() {
            bail!(
                "{what} {} not found: run `cargo run --release --bin app -- gen-certs` first \
                 (or set START_HTTPS=0)",
                path.display()
            );
        }
    }
    // A TLS key others can read is refused, as ssh refuses such keys.
    s2s_auth::files::check_private_key_mode(key).map_err(anyhow::Error::msg)?;
    RustlsConfig::from_pem_file(cert, key).await.with_context(|| {
        format!(
            "cannot use {} / {} as TLS certificate and key (re-create them with `app gen-certs --force`)",
            cert.display(),
            key.display()
        )
    })
}
