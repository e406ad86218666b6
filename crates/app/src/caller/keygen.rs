//! servicea's own key pair for scenarios 3-4 (`POST /gen-keys`, `app gen-keys`).
//!
//! The private key is written with mode 0600 and the public key beside it,
//! each atomically, so a service reading either never sees half a file. A
//! running servicea, serviceb and servicec pick the new files up on their
//! next request; nothing needs a restart.
//!
//! The first key is written in place (`app gen-keys` always writes in
//! place: it is the set-up step). `POST /gen-keys` on a servicea that has a
//! key *rotates* it with an overlap, so tokens signed a second earlier
//! keep verifying: see [`crate::key_set`].

use std::{
    io,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Json, extract::State as Shared};
use s2s_auth::{KeyPair, SigningAlgorithm, files, watched::WatchedFile};
use serde_json::{Value, json};

use super::{
    self_key::{SelfKey, SigningKey},
    state::State,
};
use crate::{
    error::{AppError, Internal, KeygenError},
    key_set::{self, KeySetFiles},
};

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

/// `POST /gen-keys` with PRODUCTION: anonymous key management is a
/// workshop shortcut, so the route is off; the operator runs `app gen-keys`
/// on the host (which writes the files servicea watches).
pub(super) async fn off_in_production() -> AppError {
    AppError::ShortcutOff(
        "POST /gen-keys is off (PRODUCTION: anonymous key management is a workshop \
         shortcut): run `app gen-keys` on the host instead",
    )
}

/// `POST /gen-keys` on servicea. With no key yet, the pair is written in
/// place. With a key, it is a rotation with an overlap (see
/// [`crate::key_set`]): the new pair is published as the next one, and
/// becomes current after `SCENARIO3_PUBLISH_AHEAD_SECS`; 409 while a
/// rotation is under way or the retiring key still verifies.
///
/// At most one generation runs per servicea; concurrent callers get 409 at
/// once. It runs on a thread of its own, not on tokio's blocking pool: 600
/// parallel calls used to queue 600 `spawn_blocking` tasks (servicea went
/// from 4 threads to 515), and healthy scenario calls then waited for that
/// pool to open connections.
pub(super) async fn route(Shared(state): Shared<State>) -> Result<Json<Value>, AppError> {
    let signing_key = match &state.self_key {
        SelfKey::File(file) => Arc::clone(file),
        SelfKey::Transit(_) => {
            return Err(AppError::Conflict(format!(
                "my key is {}: it is rotated there, by its administrator, not here",
                state.self_key.describe()
            )));
        }
    };
    let _one = OneAtATime::start(&state.rotating).ok_or(AppError::Busy(
        "a key pair is already being generated: try again when it is done",
    ))?;
    let keys = &state.settings.keys;
    let alg = state.settings.common.algorithm;
    // A key in place that cannot sign with ALGORITHM (another kind, left by
    // a run with another ALGORITHM) has signed nothing this servicea could
    // send: nothing to overlap. It is kept aside (`*.unusable.pem`), not
    // lost, and the new pair is written in place at once.
    if let Err(e) = signing_key.get()
        && matches!(e.source, s2s_auth::watched::WatchedError::Invalid { .. })
        && keys.private.exists()
    {
        for path in [&keys.private, &keys.public] {
            let aside = crate::key_set::tagged(path, "unusable");
            if path.exists() {
                std::fs::rename(path, &aside).map_err(Internal::SetAside)?;
            }
        }
        tracing::warn!(
            "the key in place cannot sign with {alg} ({e}): kept aside as *.unusable.pem, a new pair is written at once"
        );
    }
    if !keys.private.exists() && !keys.public.exists() {
        let (private, public) = (keys.private.clone(), keys.public.clone());
        on_own_thread(move || generate(alg, &private, &public))
            .await?
            .map_err(Internal::from)?;
        tracing::info!(
            "generated a new {alg} key pair for scenarios 3-4: {} (0600) and {}",
            keys.private.display(),
            keys.public.display()
        );
        return Ok(Json(json!({ "folder": folder(&keys.private) })));
    }
    rotate(&state, &signing_key).await
}

/// One generation or rotation of servicea's key at a time, and no queue:
/// a second caller gets a 409 at once (the flag is
/// [`servicea::Inner::rotating`], per servicea: tests run several in one
/// process).
struct OneAtATime<'a>(&'a AtomicBool);

impl<'a> OneAtATime<'a> {
    fn start(flag: &'a AtomicBool) -> Option<Self> {
        // `then`, not `then_some`: a guard built for a refused caller would
        // be dropped at once, and its drop would clear the holder's flag.
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then(|| Self(flag))
    }
}

impl Drop for OneAtATime<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn rotate(
    state: &State,
    signing_key: &WatchedFile<SigningKey>,
) -> Result<Json<Value>, AppError> {
    let settings = &state.settings;
    let keys = settings.keys.clone();
    let alg = settings.common.algorithm;
    if let Some(why) = key_set::refusal(&keys, settings.self_signed.lifetime_secs) {
        return Err(AppError::Conflict(why));
    }
    let previous_kid = signing_key.get().ok().map(|k| k.kid.clone());
    let owner = state.name().to_owned();
    let files = keys.clone();
    let kid = on_own_thread(move || -> Result<String, KeygenError> {
        let pair = KeyPair::generate(alg)?;
        let kid = key_set::kid_for(&owner, pair.public(), alg).map_err(|e| KeygenError::Write {
            path: files.next_public(),
            source: io::Error::other(e),
        })?;
        key_set::publish_next(&files, pair.private_pem(), pair.public().pem()).map_err(
            |source| KeygenError::Write {
                path: files.next_private(),
                source,
            },
        )?;
        Ok(kid)
    })
    .await?
    .map_err(Internal::from)?;
    let ahead = settings.publish_ahead;
    let activates = s2s_auth::time_fmt::iso_millis(
        s2s_auth::now_unix() + i64::try_from(ahead.as_secs()).unwrap_or(0),
    );
    tracing::info!(
        "rotating servicea's scenario-3 key: next kid {kid} published in {} (receivers accept it now); \
         servicea signs with it from {activates}; the current key then stays in {} for its tokens",
        keys.next_public().display(),
        keys.retiring_public().display()
    );
    schedule_promotion(keys.clone(), ahead);
    Ok(Json(json!({
        "folder": folder(&keys.private),
        "kid": kid,
        "activatesAt": activates,
        "previousKid": previous_kid,
        "published": keys.next_public().display().to_string(),
    })))
}

/// Promotes the next pair after `ahead` (see [`key_set::promote`]).
fn schedule_promotion(files: KeySetFiles, ahead: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(ahead).await;
        let done = tokio::task::spawn_blocking(move || {
            let promoted = key_set::promote(&files);
            (promoted, files)
        })
        .await;
        match done {
            Ok((Ok(true), files)) => tracing::info!(
                "servicea now signs scenario-3 tokens with the new key ({}); the retiring public key is in {}",
                files.private.display(),
                files.retiring_public().display()
            ),
            Ok((Ok(false), _)) => {}
            Ok((Err(e), files)) => tracing::error!(
                "could not make the next scenario-3 key current in {}: {e}",
                files.private.display()
            ),
            Err(e) => tracing::error!("scenario-3 key promotion task failed: {e}"),
        }
    });
}

/// At start: a next pair left by a rotation that a stop cut short is
/// promoted after the publish-ahead time, counted from now (receivers
/// already see it; waiting again costs nothing and is safe).
pub(super) fn resume_rotation(state: &State) {
    let keys = &state.settings.keys;
    if keys.next_private().exists() && keys.next_public().exists() {
        tracing::info!(
            "found a pending scenario-3 key rotation ({}): completing it in {} s",
            keys.next_public().display(),
            state.settings.publish_ahead.as_secs()
        );
        schedule_promotion(keys.clone(), state.settings.publish_ahead);
    }
}

/// Runs `work` (key generation: tens of ms of CPU) on a thread of its own
/// and waits for it without blocking the runtime or its blocking pool.
async fn on_own_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Internal> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("gen-keys".into())
        .spawn(move || {
            let _ = done.send(work());
        })
        .map_err(Internal::Spawn)?;
    result.await.map_err(|_| Internal::ThreadLost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_caller_leaves_the_holder_s_flag_set() {
        let flag = AtomicBool::new(false);
        let held = OneAtATime::start(&flag);
        assert!(held.is_some());
        assert!(OneAtATime::start(&flag).is_none());
        // The refusal above must not have released the holder's flag.
        assert!(OneAtATime::start(&flag).is_none());
        drop(held);
        assert!(OneAtATime::start(&flag).is_some());
    }
}
