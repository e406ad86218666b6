//! What a receiver reads ([`Args`]), and the same as typed values
//! ([`Settings`]), settled once at start.

use std::path::PathBuf;

use clap::{Args as ClapArgs, builder::BoolishValueParser};
use s2s_auth::Expectations;
use s2s_web::tls::{MtlsMode, ServerTls};

use crate::{
    role::Role,
    self_signed_args::SelfSignedArgs,
    settings::{Common, CommonArgs},
    token_check::{JwksSettings, TokenCheckArgs},
};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    #[command(flatten)]
    pub(crate) tokens: TokenCheckArgs,

    /// Also serve https (scenarios 3-4): true/false, 1/0, yes/no.
    #[arg(long, env = "START_HTTPS", default_value = "false", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub(crate) start_https: bool,

    /// HTTPS port. Default: the receiver's https port in `app topology`.
    #[arg(long, env = "HTTPS_PORT")]
    pub(crate) https_port: Option<u16>,

    /// TLS private key of the https listener (written by gen-certs).
    /// Default: certs/<service>-key.pem.
    #[arg(long, env = "SERVER_PRIVATE_KEY_PATH")]
    pub(crate) server_private_key_path: Option<PathBuf>,

    /// TLS certificate of the https listener (written by gen-certs): the
    /// receiver's workload certificate, whose SPIFFE ID servicea checks
    /// (the plain `localhost.pem` names no workload: servicea refuses it).
    /// Re-read when the file changes. Default: certs/<service>.pem.
    #[arg(long, env = "SERVER_PUBLIC_KEY_PATH")]
    pub(crate) server_public_key_path: Option<PathBuf>,

    /// Client certificates on the https listener, as Istio's
    /// PeerAuthentication: off (one-way TLS), permissive (asks for one,
    /// accepts none: scenario 3 keeps working), strict (refuses a handshake
    /// without one from CA_CERT_PATH).
    #[arg(long, env = "MTLS_MODE", value_enum, default_value_t = MtlsMode::Permissive)]
    pub(crate) mtls_mode: MtlsMode,

    /// The CA client certificates must chain to (written by gen-certs).
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub(crate) ca_cert_path: PathBuf,

    /// Scenario 7: which principals may call which paths (JSON, shaped
    /// like Istio's AuthorizationPolicy; re-read when it changes).
    /// Default: env/<service>-authz.json, if that file exists at start;
    /// without a policy, every path that needs an identity is denied.
    #[arg(long, env = "AUTHZ_POLICY_FILE")]
    pub(crate) authz_policy_file: Option<PathBuf>,

    /// Scenario 9: the only principal whose X-Jwt-* identity headers are
    /// believed. Default: TRUST_DOMAIN/ns/default/sa/gateway.
    #[arg(long, env = "GATEWAY_PRINCIPAL")]
    pub(crate) gateway_principal: Option<String>,

    #[command(flatten)]
    pub(crate) self_signed: SelfSignedArgs,
}

/// The https listener of a receiver.
#[derive(Clone, Debug)]
pub(crate) struct HttpsSettings {
    pub(crate) port: u16,
    pub(crate) tls: ServerTls,
}

/// [`Args`] as typed values, built once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub(crate) common: Common,
    /// `CALLER`: the `sub` expected, the factory key id that verifies it.
    pub(crate) caller: String,
    pub(crate) caller_key: PathBuf,
    /// `None` when `START_HTTPS` is off.
    pub(crate) https: Option<HttpsSettings>,
    /// What servicea's self-signed tokens must satisfy (scenarios 3-4).
    pub(crate) self_signed: Expectations,
    /// What jwt-factory's tokens must satisfy (scenario 5).
    pub(crate) factory_tokens: Expectations,
    /// What the factory's access tokens from `POST /token` must satisfy
    /// (scenario 6): as `factory_tokens`, typed `at+jwt`.
    pub(crate) access_tokens: Expectations,
    pub(crate) jwks: JwksSettings,
    /// Scenario 7's authorization policy file, if any.
    pub(crate) authz_policy: Option<PathBuf>,
    /// `MTLS_MODE`, also when the https listener is set up by the caller
    /// (tests).
    pub(crate) mtls_mode: MtlsMode,
    /// Scenario 9: whose `X-Jwt-*` headers are believed.
    pub(crate) gateway_principal: String,
}

impl Args {
    pub fn settle(self, role: Role) -> Settings {
        let mtls_mode = self.common.production.mtls_mode(self.mtls_mode);
        let common = self.common.settle(role);
        let t = &self.tokens;
        let own = self.self_signed.settle();
        let self_signed = t.expect(
            common.algorithm,
            own.issuer,
            common.name.clone(),
            own.lifetime_secs,
        );
        let factory_tokens = t.factory_token(common.algorithm, common.name.clone());
        // Scenario 6: the factory's RFC 9068 access tokens, typed `at+jwt`,
        // so a scenario-5 token signed by the same key cannot pass as one.
        let access_tokens = Expectations {
            typ: s2s_auth::verify::TYP_ACCESS_TOKEN,
            ..factory_tokens.clone()
        };
        let https = self.start_https.then(|| {
            let cert = self
                .server_public_key_path
                .unwrap_or_else(|| format!("certs/{}.pem", role.name()).into());
            // The key gen-certs writes beside the certificate, unless named.
            let key = self
                .server_private_key_path
                .unwrap_or_else(|| s2s_web::pki::key_beside(&cert));
            HttpsSettings {
                port: self.https_port.unwrap_or(role.default_https_port()),
                tls: ServerTls {
                    cert,
                    key,
                    client_ca: self.ca_cert_path,
                    mode: mtls_mode,
                },
            }
        });
        let jwks = t.jwks(&common.factory);
        let gateway_principal = self
            .gateway_principal
            .unwrap_or_else(|| format!("{}/ns/default/sa/gateway", common.serve.trust_domain));
        Settings {
            common,
            caller: self.tokens.caller,
            caller_key: own.public_key,
            https,
            self_signed,
            factory_tokens,
            access_tokens,
            jwks,
            authz_policy: policy_file(self.authz_policy_file, role),
            mtls_mode,
            gateway_principal,
        }
    }
}

/// Scenario 7's policy: `AUTHZ_POLICY_FILE`, else `env/<role>-authz.json`
/// if that file exists at start; said in the log either way, so the
/// choice is never silent.
fn policy_file(named: Option<PathBuf>, role: Role) -> Option<PathBuf> {
    let chosen = named.or_else(|| {
        let own = PathBuf::from(format!("env/{}-authz.json", role.name()));
        own.exists().then_some(own)
    });
    match &chosen {
        Some(path) => tracing::info!("scenario 7's authorization policy: {}", path.display()),
        None => tracing::info!(
            "no authorization policy (AUTHZ_POLICY_FILE): every path that needs an identity is denied"
        ),
    }
    chosen
}
