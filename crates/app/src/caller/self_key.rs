//! Who holds servicea's own key (scenarios 3-4, and the client assertions
//! of scenarios 6 and 8): `SELF_KEY_BACKEND`.
//!
//! - `files` (the workshop's): `scenario-3-keys/jwt-private.pem`, parsed
//!   once, re-read when it changes (`POST /gen-keys` rotates it).
//! - `openbao` (seed 002): the Transit key named after the service
//!   (`servicea`) in OpenBao, which signs. servicea logs in with its own
//!   AppRole, under a policy that lets it sign with that key and nothing
//!   else; at start it writes the key's *public* half where the receivers
//!   and the factory's client registry read it (`SERVICE_A_PUBLIC_KEY_PATH`).
//!   Revoking servicea in OpenBao stops its signatures at once: scenario 3
//!   then answers 503 with OpenBao's refusal.

use std::sync::Arc;

use openbao::{OpenBao, OpenBaoArgs, OpenBaoError};
use s2s_auth::{KeyPair, PublicKey, SigningAlgorithm, jws, watched::WatchedFile};

use crate::error::{AppError, Internal};

/// servicea's scenario-3 signing key (its file) and its `kid`.
#[derive(Debug)]
pub(crate) struct SigningKey {
    pub(crate) pair: KeyPair,
    pub(crate) kid: String,
}

/// Which holder: `SELF_KEY_BACKEND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SelfKeyBackend {
    /// scenario-3-keys/jwt-private.pem (0600), watched.
    Files,
    /// A Transit key in OpenBao, named after the service.
    Openbao,
}

/// servicea's own key, wherever it is held.
#[derive(Clone, Debug)]
pub(crate) enum SelfKey {
    File(Arc<WatchedFile<SigningKey>>),
    Transit(Arc<Transit>),
}

/// servicea's Transit key: its name, the version it signs with, its kid.
#[derive(Debug)]
pub(crate) struct Transit {
    bao: OpenBao,
    mount: String,
    name: String,
    version: u32,
    kid: String,
}

impl Transit {
    /// Logs in with `args`' credentials and reads the Transit key `name`
    /// (which the administrator created); writes its public half to
    /// `public_path` (atomically, 0644) for the receivers.
    pub(crate) async fn open(
        args: &OpenBaoArgs,
        name: &str,
        alg: SigningAlgorithm,
        public_path: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let bao = args.connect().await?;
        let mount = args.transit_mount_or(openbao::setup::SERVICES_TRANSIT_MOUNT);
        let key = bao.transit_key(&mount, name).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "OpenBao at {} has no Transit key {name}: the administrator creates it \
                     (`cargo xtask openbao up` does)",
                bao.addr()
            )
        })?;
        let version = key.latest;
        let pem = key
            .public
            .get(&version)
            .ok_or_else(|| anyhow::anyhow!("Transit key {name} has no version {version}"))?;
        let public = PublicKey::from_pem_for(pem, alg)?;
        let kid = crate::key_set::kid_for(name, &public, alg).map_err(anyhow::Error::msg)?;
        if let Some(dir) = public_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        s2s_auth::files::write_atomic(public_path, pem.as_bytes(), s2s_auth::files::PUBLIC)?;
        tracing::info!(
            "my own key is the Transit key {name} (version {version}, kid {kid}) in OpenBao at {}: \
             it signs for me; its public half is in {}",
            bao.addr(),
            public_path.display()
        );
        Ok(Self {
            bao,
            mount,
            name: name.to_owned(),
            version,
            kid,
        })
    }
}

impl SelfKey {
    /// The compact JWS of `claims`, signed with servicea's key as `alg`
    /// (header `kid` if `with_kid`); the kid.
    pub(crate) async fn sign(
        &self,
        claims: &jws::Claims,
        alg: SigningAlgorithm,
        with_kid: bool,
    ) -> Result<(String, String), AppError> {
        match self {
            Self::File(file) => {
                let key = file.get()?;
                let kid = with_kid.then_some(key.kid.as_str());
                let token =
                    jws::sign_typed(claims, &key.pair, alg, kid, "JWT").map_err(Internal::from)?;
                Ok((token, key.kid.clone()))
            }
            Self::Transit(t) => {
                let kid = with_kid.then_some(t.kid.as_str());
                let input = jws::signing_input(claims, alg, kid, "JWT").map_err(Internal::from)?;
                let mut signature = t
                    .bao
                    .transit_sign(&t.mount, &t.name, t.version, alg, input.as_bytes())
                    .await
                    .map_err(vault_error)?;
                s2s_auth::ecdsa::canonicalize(alg, &mut signature);
                Ok((jws::with_signature(input, &signature), t.kid.clone()))
            }
        }
    }

    /// Where the key is, for log lines.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File(file) => file.path().display().to_string(),
            Self::Transit(t) => format!(
                "the Transit key {} (v{}) in OpenBao at {}",
                t.name,
                t.version,
                t.bao.addr()
            ),
        }
    }
}

/// OpenBao's refusal as servicea's answer: 503, naming OpenBao.
fn vault_error(e: OpenBaoError) -> AppError {
    AppError::KeyHolder(format!("my own key cannot sign: {e}"))
}
