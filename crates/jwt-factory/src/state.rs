//! What every handler shares ([`AppState`]), built once at start-up from
//! the configuration: its own module, so routes and OAuth handlers import
//! it from a sibling rather than from the crate root.

use std::sync::Arc;

use crate::{
    config::Config,
    custody::{Custody, KeyBackend, Vault},
    keystore::{self, KeyStore},
    new_key_ids, oauth,
};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The key pairs; shared because `/keys` writes while others read.
    pub keys: Arc<KeyStore>,
    /// Issuer, algorithm, lifetimes: read-only after start-up.
    pub config: Arc<Config>,
    /// Key generations running at once (RSA-2048 takes tens of ms of CPU).
    pub keygen: Arc<tokio::sync::Semaphore>,
    /// Who holds the private keys (KEY_BACKEND), and signs with them.
    pub custody: Arc<Custody>,
    /// `POST /token` and `/introspect`: the client registry, used `jti`s.
    pub oauth: Arc<oauth::Oauth>,
    /// How fast `/keys/{keyId}` may create new key ids.
    pub new_key_ids: Arc<new_key_ids::NewKeyIdRate>,
}

/// At most this many key pairs are generated at once.
pub const KEYGEN_AT_ONCE: usize = 2;

impl AppState {
    /// State for `config` with KEY_BACKEND=files: the key pairs found in
    /// its `keys_dir`.
    pub fn load(config: Config) -> Self {
        Self::with_custody(config, Custody::Files)
    }

    /// State for `config` with either backend. With `openbao`: logs in
    /// with the factory's AppRole and loads every key id's ring from
    /// OpenBao; an unreachable OpenBao is an error naming it.
    pub async fn open(config: Config) -> Result<Self, openbao::OpenBaoError> {
        let custody = match config.key_backend {
            KeyBackend::Files => Custody::Files,
            KeyBackend::Openbao => {
                let bao = config.openbao.connect().await?;
                Custody::OpenBao(Box::new(Vault::new(
                    bao,
                    config
                        .openbao
                        .transit_mount_or(openbao::setup::FACTORY_TRANSIT_MOUNT),
                    config.openbao.kv_mount.clone(),
                )))
            }
        };
        let state = Self::with_custody(config, custody);
        let loaded = state.custody.load(&state.keys).await?;
        if let Custody::OpenBao(vault) = &*state.custody {
            tracing::info!(
                "keys are held by OpenBao at {}: loaded {loaded} key ids; no private key is in \
                 this process or on its disk",
                vault.bao.addr()
            );
            tokio::spawn(keep_in_step(
                Arc::downgrade(&state.keys),
                Arc::downgrade(&state.custody),
                std::time::Duration::from_millis(state.config.openbao_sync_ms),
            ));
        }
        Ok(state)
    }

    fn with_custody(config: Config, custody: Custody) -> Self {
        // With OpenBao, KEYS_DIR is not read: no key may come from a disk.
        let keys_dir = match custody {
            Custody::Files => config.keys_dir.clone(),
            Custody::OpenBao(_) => std::path::PathBuf::new(),
        };
        let windows = keystore::Windows {
            overlap_secs: config.rotation_overlap_secs(),
            publish_ahead_secs: config.publish_ahead_secs(),
        };
        let keys = match custody {
            Custody::Files => KeyStore::load(&keys_dir, config.algorithm, windows),
            Custody::OpenBao(_) => KeyStore::new(keys_dir, config.algorithm, windows),
        };
        Self {
            keys: Arc::new(keys),
            custody: Arc::new(custody),
            oauth: Arc::new(oauth::Oauth::new(&config)),
            new_key_ids: Arc::new(new_key_ids::NewKeyIdRate::new(
                config.new_key_ids_per_minute,
            )),
            config: Arc::new(config),
            keygen: Arc::new(tokio::sync::Semaphore::new(KEYGEN_AT_ONCE)),
        }
    }
}

/// With OpenBao, every `period`: reads the ring records again (so a key
/// another replica created or rotated is published and used here too), and
/// once a minute sweeps the used `jti`s whose time has passed. Ends when
/// the state is dropped. A failure is logged and tried again next time.
async fn keep_in_step(
    keys: std::sync::Weak<KeyStore>,
    custody: std::sync::Weak<Custody>,
    period: std::time::Duration,
) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = 0;
    loop {
        ticks.tick().await;
        let (Some(keys), Some(custody)) = (keys.upgrade(), custody.upgrade()) else {
            return;
        };
        if let Err(e) = custody.sync(&keys).await {
            tracing::warn!("cannot read the key records from OpenBao (will retry): {e}");
        }
        let now = s2s_auth::now_unix();
        if now - last_sweep >= 60 {
            last_sweep = now;
            match custody.sweep_jtis(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("forgot {n} used assertion jtis whose time has passed"),
                Err(e) => tracing::warn!("cannot sweep the used jtis in OpenBao (will retry): {e}"),
            }
        }
    }
}
