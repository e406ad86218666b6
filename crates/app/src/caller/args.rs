//! What servicea reads ([`Args`]), and the same as typed values
//! ([`Settings`]), settled once at start.

use std::{path::PathBuf, time::Duration};

use clap::Args as ClapArgs;

use crate::{
    defaults,
    key_set::KeySetFiles,
    role::Role,
    self_signed_args::{SelfSigned, SelfSignedArgs},
    settings::{Common, CommonArgs, base_url},
};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// serviceb's http base URL (scenarios 1, 2, 5).
    #[arg(
        long,
        env = "SERVICE_B_ENDPOINT",
        default_value = defaults::serviceb_url()
    )]
    pub(crate) service_b_endpoint: String,

    /// serviceb's https base URL (scenarios 3-4).
    #[arg(
        long,
        env = "SERVICE_B_ENDPOINT_HTTPS",
        default_value = defaults::serviceb_https_url()
    )]
    pub(crate) service_b_endpoint_https: String,

    /// servicec's http base URL (scenario 2).
    #[arg(
        long,
        env = "SERVICE_C_ENDPOINT",
        default_value = defaults::servicec_url()
    )]
    pub(crate) service_c_endpoint: String,

    /// servicec's https base URL (scenario 4).
    #[arg(
        long,
        env = "SERVICE_C_ENDPOINT_HTTPS",
        default_value = defaults::servicec_https_url()
    )]
    pub(crate) service_c_endpoint_https: String,

    /// servicea's own signing key for scenarios 3-4 (`POST /gen-keys` writes it).
    #[arg(
        long,
        env = "SERVICE_A_PRIVATE_KEY_PATH",
        default_value = "scenario-3-keys/jwt-private.pem"
    )]
    pub(crate) service_a_private_key_path: PathBuf,

    /// The CA servicea trusts for https, and the only one.
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub(crate) ca_cert_path: PathBuf,

    #[command(flatten)]
    pub(crate) self_signed: SelfSignedArgs,

    /// Who holds servicea's own key (scenarios 3-4, its client
    /// assertions): `files` (SERVICE_A_PRIVATE_KEY_PATH) or `openbao` (the
    /// Transit key named after the service, which OpenBao signs with; see
    /// the OPENBAO_* settings: servicea's own AppRole credentials).
    #[arg(long, env = "SELF_KEY_BACKEND", value_enum, default_value_t = super::SelfKeyBackend::Files)]
    pub(crate) self_key_backend: super::SelfKeyBackend,

    /// The console's lesson "who used servicea's key?" reads OpenBao's
    /// audit log here (`cargo xtask openbao up` writes it there). Off with
    /// PRODUCTION: a service reading the vault's audit log is a shortcut.
    #[arg(
        long,
        env = "CONSOLE_AUDIT_LOG",
        default_value = "target/demo-logs/openbao-audit.log"
    )]
    pub(crate) console_audit_log: PathBuf,

    /// With SELF_KEY_BACKEND=openbao: where OpenBao is and who servicea is
    /// there.
    #[command(flatten)]
    pub(crate) openbao: openbao::OpenBaoArgs,

    /// Scenarios 3-4: when `POST /gen-keys` rotates servicea's key, how
    /// long the new public key is published (`jwt-public.next.pem`) before
    /// servicea signs with it, in seconds. Receivers check the files on
    /// every request, so a short wait covers requests in flight; see
    /// `docs/rotation.md`.
    #[arg(long, env = "SCENARIO3_PUBLISH_AHEAD_SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) scenario3_publish_ahead_secs: u64,

    /// Scenario 6: the factory's issuer, the `aud` of the client assertions
    /// servicea signs for `POST /token`.
    #[arg(long, env = "FACTORY_ISSUER", default_value = "https://jwt-factory/")]
    pub(crate) factory_issuer: String,

    /// Scenarios 7-8: servicea's workload certificate (its SPIFFE ID),
    /// presented in mTLS, with its private key beside it (NAME-key.pem,
    /// mode 0600). Written by gen-certs; re-read when it changes.
    #[arg(long, env = "WORKLOAD_CERT_PATH", default_value = "certs/servicea.pem")]
    pub(crate) workload_cert_path: PathBuf,

    /// Scenario 8: jwt-factory's https (mTLS) base URL, where its token
    /// endpoint binds tokens to the client certificate.
    #[arg(
        long,
        env = "JWT_FACTORY_ENDPOINT_HTTPS",
        default_value = defaults::factory_https_url()
    )]
    pub(crate) jwt_factory_endpoint_https: String,

    /// Scenario 9: the gateway (nginx); `/serviceb/...` leads to serviceb.
    #[arg(
        long,
        env = "GATEWAY_ENDPOINT",
        default_value = defaults::gateway_url()
    )]
    pub(crate) gateway_endpoint: String,

    /// Scenario 10: servicea's sidecar (Envoy), its HTTP proxy for calls
    /// into the mesh. Empty: no proxy (in a cluster, iptables sends the
    /// pod's traffic through the sidecar without the app knowing).
    #[arg(long, env = "MESH_PROXY", default_value = defaults::mesh_proxy(),
          value_parser = mesh_proxy)]
    pub(crate) mesh_proxy: String,
}

/// `MESH_PROXY`: empty, or `http://` to a loopback address. Bearer tokens
/// cross this hop in clear text, so it must not leave the machine: the
/// sidecar is always beside the app.
fn mesh_proxy(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    let authority = raw
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| format!("{raw:?}: the sidecar is an http:// proxy on loopback"))?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => return Err(format!("{raw:?}: http://HOST:PORT")),
    };
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        return Err(format!(
            "{raw:?}: the sidecar must be on loopback (127.0.0.1, localhost, [::1]): \
             tokens cross this hop in clear text"
        ));
    }
    Ok(raw.to_owned())
}

/// servicea's own key pair files (the current pair; [`crate::key_set`]
/// names the others after them).
pub(crate) type KeyFiles = KeySetFiles;

/// The base URLs of the receivers, without a trailing `/`.
#[derive(Clone, Debug)]
pub(crate) struct Peers {
    pub(crate) b_http: String,
    pub(crate) b_https: String,
    pub(crate) c_http: String,
    pub(crate) c_https: String,
    /// Scenario 10: as the mesh names them, reached through the sidecar.
    pub(crate) b_mesh: String,
    pub(crate) c_mesh: String,
}

impl Peers {
    /// `peer`'s base URL, over https if `tls`. servicea calls receivers
    /// only: any other role is serviceb.
    pub(crate) fn base(&self, peer: Role, tls: bool) -> &str {
        match (peer, tls) {
            (Role::C, false) => &self.c_http,
            (Role::C, true) => &self.c_https,
            (_, false) => &self.b_http,
            (_, true) => &self.b_https,
        }
    }

    /// `peer` as the mesh names it (scenario 10).
    pub(crate) fn mesh(&self, peer: Role) -> &str {
        match peer {
            Role::C => &self.c_mesh,
            _ => &self.b_mesh,
        }
    }
}

/// [`Args`] as typed values, built once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) common: Common,
    pub(crate) peers: Peers,
    pub(crate) keys: KeyFiles,
    pub(crate) ca_cert: PathBuf,
    /// `iss` and lifetime of self-signed tokens.
    pub(crate) self_signed: SelfSigned,
    /// How long a rotated-in scenario-3 key is published before it signs.
    pub(crate) publish_ahead: Duration,
    /// Scenario 6: `aud` of servicea's client assertions.
    pub(crate) factory_issuer: String,
    /// Scenarios 7-8: servicea's workload certificate and key.
    pub(crate) workload_cert: PathBuf,
    pub(crate) workload_key: PathBuf,
    /// Scenario 8: the factory's https base URL.
    pub(crate) factory_https: String,
    /// Scenario 9: the gateway's base URL.
    pub(crate) gateway: String,
    /// Scenario 10: the sidecar's proxy URL, if any.
    pub(crate) mesh_proxy: Option<String>,
    /// The console's key-audit lesson reads this file.
    pub(crate) console_audit_log: PathBuf,
    /// Who holds servicea's own key, and OpenBao's settings.
    pub(crate) self_key_backend: super::SelfKeyBackend,
    pub(crate) openbao: openbao::OpenBaoArgs,
}

impl Args {
    pub fn settle(self) -> Settings {
        Settings {
            common: self.common.settle(Role::A),
            peers: Peers {
                b_http: base_url(&self.service_b_endpoint),
                b_https: base_url(&self.service_b_endpoint_https),
                c_http: base_url(&self.service_c_endpoint),
                c_https: base_url(&self.service_c_endpoint_https),
                // As the mesh names them (their Services): the same on a
                // laptop and in a cluster.
                b_mesh: topology::SERVICEB.mesh_url(),
                c_mesh: topology::SERVICEC.mesh_url(),
            },
            keys: KeyFiles {
                private: self.service_a_private_key_path,
                public: self.self_signed.public_key_path.clone(),
            },
            ca_cert: self.ca_cert_path,
            self_signed: self.self_signed.settle(),
            publish_ahead: Duration::from_secs(self.scenario3_publish_ahead_secs),
            factory_issuer: self.factory_issuer,
            workload_key: crate::settings::key_beside_cert(
                "WORKLOAD_KEY_PATH",
                &self.workload_cert_path,
            ),
            workload_cert: self.workload_cert_path,
            factory_https: base_url(&self.jwt_factory_endpoint_https),
            gateway: base_url(&self.gateway_endpoint),
            mesh_proxy: Some(self.mesh_proxy).filter(|p| !p.trim().is_empty()),
            console_audit_log: self.console_audit_log,
            self_key_backend: self.self_key_backend,
            openbao: self.openbao,
        }
    }
}
