//! servicea's own key pair for scenarios 3-4 (`POST /gen-keys`, `app gen-keys`).
//!
//! The private key is written with mode 0600 and the public key beside it,
//! each atomically, so a service reading either never sees half a file. A
//! running servicea, serviceb and servicec pick the new files up on their
//! next request; nothing needs a restart.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Json, extract::State};
use s2s_auth::{KeyPair, SigningAlgorithm, files, keys::KeyError};
use serde_json::{Value, json};

use crate::{
    error::{AppError, Internal},
    servicea,
};

/// Why a key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error(transparent)]
    Generate(#[from] KeyError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Generates a key pair for `alg` into the two files. Blocking: RSA
/// generation is CPU.
pub fn generate(alg: SigningAlgorithm, private: &Path, public: &Path) -> Result<(), KeygenError> {
    // One generation at a time: two racing ones could leave the private file
    // of one pair beside the public file of the other.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pair = KeyPair::generate(alg)?;
    let write = |path: &Path, pem: &str, mode| {
        files::write_atomic(path, pem.as_bytes(), mode).map_err(|source| KeygenError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(private, pair.private_pem(), files::PRIVATE)?;
    write(public, pair.public().pem(), files::PUBLIC)?;
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

/// One `POST /gen-keys` at a time, process-wide. Taken with a try-lock:
/// a second caller is refused at once (409) instead of queueing a thread.
static GENERATING: AtomicBool = AtomicBool::new(false);

/// Holds [`GENERATING`] until dropped, by the generating thread.
struct Generating;

impl Generating {
    fn try_start() -> Option<Self> {
        GENERATING
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| Self)
    }
}

impl Drop for Generating {
    fn drop(&mut self) {
        GENERATING.store(false, Ordering::SeqCst);
    }
}

/// `POST /gen-keys` on servicea.
///
/// At most one generation runs; concurrent callers get 409 at once. It runs
/// on a thread of its own, not on tokio's blocking pool: 600 parallel calls
/// used to queue 600 `spawn_blocking` tasks (servicea went from 4 threads to
/// 515), and the blocking pool is also what outbound connections needed to
/// resolve `localhost`, so healthy scenario calls timed out meanwhile.
pub async fn route(State(state): State<servicea::State>) -> Result<Json<Value>, AppError> {
    let Some(generating) = Generating::try_start() else {
        return Err(AppError::Busy(
            "a key pair is already being generated: try again when it is done",
        ));
    };
    let keys = &state.settings.keys;
    let (private, public, alg) = (
        keys.private.clone(),
        keys.public.clone(),
        state.settings.common.algorithm,
    );
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("gen-keys".into())
        .spawn(move || {
            let result = generate(alg, &private, &public);
            // Released before the answer, so a caller that got its 200
            // can generate again at once.
            drop(generating);
            let _ = done.send(result);
        })
        .map_err(Internal::Spawn)?;
    result
        .await
        .map_err(|_| Internal::ThreadLost)?
        .map_err(Internal::from)?;
    tracing::info!(
        "generated a new {alg} key pair for scenarios 3-4: {} (0600) and {}",
        keys.private.display(),
        keys.public.display()
    );
    Ok(Json(json!({ "folder": folder(&keys.private) })))
}
