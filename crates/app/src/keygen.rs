//! servicea's own key pair for scenarios 3-4 (`POST /gen-keys`, `app gen-keys`).
//!
//! The private key is written with mode 0600 and the public key beside it,
//! each atomically, so a service reading either never sees half a file. A
//! running servicea, serviceb and servicec pick the new files up on their
//! next request; nothing needs a restart.

use std::{path::Path, sync::Mutex};

use axum::{Json, extract::State};
use s2s_auth::{KeyPair, SigningAlgorithm, files};
use serde_json::{Value, json};

use crate::{error::AppError, state::ServiceState};

/// Generates a key pair for `alg` into the two files. Blocking: RSA
/// generation is CPU.
pub fn generate(alg: SigningAlgorithm, private: &Path, public: &Path) -> Result<(), String> {
    // One generation at a time: two racing ones could leave the private file
    // of one pair beside the public file of the other.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pair = KeyPair::generate(alg).map_err(|e| e.to_string())?;
    files::write_atomic(private, pair.private_pem().as_bytes(), files::PRIVATE)
        .map_err(|e| format!("cannot write {}: {e}", private.display()))?;
    files::write_atomic(public, pair.public().pem().as_bytes(), files::PUBLIC)
        .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    Ok(())
}

/// The folder the keys went to, as the original answered.
fn folder(private: &Path) -> String {
    private
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .display()
        .to_string()
}

/// `POST /gen-keys` on servicea.
pub async fn route(State(state): State<ServiceState>) -> Result<Json<Value>, AppError> {
    let private = state.args.service_a_private_key_path.clone();
    let public = state.args.service_a_public_key_path.clone();
    let (p, q, alg) = (private.clone(), public.clone(), state.args.algorithm);
    tokio::task::spawn_blocking(move || generate(alg, &p, &q))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)?;
    tracing::info!(
        "generated a new {alg} key pair for scenarios 3-4: {} (0600) and {}",
        private.display(),
        public.display()
    );
    Ok(Json(json!({ "folder": folder(&private) })))
}
