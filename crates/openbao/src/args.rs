//! The settings of a service that uses OpenBao, for `clap` (flag and env
//! variable each). The credentials are files, not variables: a variable
//! shows in `/proc/<pid>/environ` and in every child process.

use std::{path::PathBuf, time::Duration};

use crate::{AppRole, OpenBao, OpenBaoError, client::Timeouts};

/// Longest credential or CA file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// How a service reaches OpenBao and who it is there.
#[derive(clap::Args, Debug, Clone)]
pub struct OpenBaoArgs {
    /// OpenBao's address (with KEY_BACKEND=openbao), or the addresses of
    /// a cluster's nodes separated by commas: a node that cannot be
    /// reached is skipped. Plain http only on loopback: the token travels
    /// with every call.
    #[arg(
        long = "openbao-addr",
        env = "OPENBAO_ADDR",
        default_value_t = default_addr()
    )]
    pub addr: String,

    /// A file holding this service's AppRole role id (`cargo xtask
    /// openbao` writes it).
    #[arg(long = "openbao-role-id-file", env = "OPENBAO_ROLE_ID_FILE")]
    pub role_id_file: Option<PathBuf>,

    /// A file holding this service's AppRole secret id (0600).
    #[arg(long = "openbao-secret-id-file", env = "OPENBAO_SECRET_ID_FILE")]
    pub secret_id_file: Option<PathBuf>,

    /// Instead of AppRole: a file holding the token, kept fresh by an
    /// agent (OpenBao Agent's injector in a cluster: `agent-inject-token`),
    /// read again when OpenBao refuses it.
    #[arg(long = "openbao-token-file", env = "OPENBAO_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The CA that OpenBao's https certificate must chain to (that CA
    /// alone is trusted). Unset: the system's roots.
    #[arg(long = "openbao-ca-cert", env = "OPENBAO_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// Bound of each call to OpenBao, in milliseconds: a signature that
    /// cannot be made within it is a 503 naming OpenBao.
    #[arg(long = "openbao-timeout-ms", env = "OPENBAO_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub timeout_ms: u64,

    /// Where this service's Transit keys are mounted. Default: the
    /// factory's own mount, `jwt-factory-transit` (its policy can then name
    /// its keys with `+`, one path segment, and nothing under them); a
    /// service's, `transit`.
    #[arg(long = "openbao-transit-mount", env = "OPENBAO_TRANSIT_MOUNT")]
    pub transit_mount: Option<String>,

    /// Where the KV v2 engine is mounted (shared records).
    #[arg(
        long = "openbao-kv-mount",
        env = "OPENBAO_KV_MOUNT",
        default_value = "secret"
    )]
    pub kv_mount: String,
}

impl OpenBaoArgs {
    /// Logs in with the AppRole credentials these settings name, or
    /// reads the agent's token file.
    pub async fn connect(&self) -> Result<OpenBao, OpenBaoError> {
        let ca = match &self.ca_cert {
            Some(path) => Some(read(path)?.into_bytes()),
            None => None,
        };
        if let Some(file) = &self.token_file {
            return OpenBao::with_token_file(&self.addr, file, self.timeouts(), ca.as_deref())
                .await;
        }
        let (Some(role_file), Some(secret_file)) = (&self.role_id_file, &self.secret_id_file)
        else {
            return Err(OpenBaoError::Settings(
                "OpenBao needs OPENBAO_ROLE_ID_FILE and OPENBAO_SECRET_ID_FILE (`cargo xtask \
                 openbao up` writes both), or OPENBAO_TOKEN_FILE (an agent's)"
                    .into(),
            ));
        };
        let approle = AppRole {
            mount: "approle".into(),
            role_id: read(role_file)?,
            secret_id: read(secret_file)?,
        };
        OpenBao::login(&self.addr, approle, self.timeouts(), ca.as_deref()).await
    }

    /// OPENBAO_TRANSIT_MOUNT, or `default` (the role's).
    pub fn transit_mount_or(&self, default: &str) -> String {
        self.transit_mount
            .clone()
            .unwrap_or_else(|| default.to_owned())
    }

    /// The bounds of every call.
    pub fn timeouts(&self) -> Timeouts {
        let request = Duration::from_millis(self.timeout_ms);
        Timeouts {
            connect: request.min(Duration::from_millis(1000)),
            request,
        }
    }
}

/// OpenBao's usual address on this machine (the walkthrough's).
fn default_addr() -> String {
    format!("http://127.0.0.1:{}", topology::OPENBAO_PORT)
}

fn read(path: &std::path::Path) -> Result<String, OpenBaoError> {
    s2s_auth::files::read_small_text(path, MAX_FILE_BYTES)
        .map(|s| s.trim().to_owned())
        .map_err(|e| OpenBaoError::Settings(format!("cannot read {}: {e}", path.display())))
}
