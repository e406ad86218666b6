//! The command line: `app servicea|serviceb|servicec` runs a service;
//! `app gen-certs` and `app gen-keys` create the files the scenarios need.
//!
//! Each role has its own arguments ([`crate::caller::Args`],
//! [`crate::receiver::Args`]), so `app serviceb --help` lists only what
//! serviceb reads. `app servicea` first loads `env/servicea.env` (or
//! `--env-file PATH`); precedence is flag > process environment > env file
//! > default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use s2s_auth::SigningAlgorithm;

use crate::{caller, receiver, tools, verifier};

/// servicea, serviceb and servicec: the service-to-service JWT scenarios.
///
/// Run each service in its own terminal from the workspace root, then
/// `curl localhost:3000/scenario1` (up to 10; each also with `?expired=1`).
#[derive(Parser, Debug)]
#[command(name = "app", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The caller: gets or signs tokens and calls serviceb/servicec.
    Servicea(caller::Args),
    /// A receiver: verifies tokens via jwt-factory, locally over https, or
    /// with the factory's JWK Set. (Its ports: `app topology`.)
    Serviceb(receiver::Args),
    /// A receiver, like serviceb.
    Servicec(receiver::Args),
    /// The gateway's token verifier (scenario 9): nginx asks it about
    /// each request (`auth_request`), and forwards the identity it answers.
    Verifier(verifier::Args),
    /// Write the gateway's nginx configuration (scenario 9) from its
    /// template, with the ports and paths of env/gateway.env, into RUN_DIR;
    /// print the nginx command that runs it.
    GatewayConfig(tools::GatewayConfigArgs),
    /// Write the Envoy sidecars' configuration (scenario 10) from the Istio
    /// resources in deploy/istio (and POLICY files on top) into RUN_DIR;
    /// print the envoy command of each sidecar. Running sidecars reload it;
    /// `--wait` returns once each runs it.
    MeshConfig(tools::MeshConfigArgs),
    /// Write the files of deploy/ that name ports (the Kubernetes
    /// manifests, the Istio jwksUri, the Dockerfile) from deploy/templates
    /// with the topology's values; `--check` fails if any differs.
    DeployFiles(tools::DeployFilesArgs),
    /// Print where every process of the stack runs (the `topology` crate):
    /// names, ports, URLs; `--shell` as lines for a script to `eval`.
    Topology(tools::TopologyArgs),
    /// Create a local CA and a certificate for localhost, 127.0.0.1 and ::1
    /// in certs/ (replaces mkcert), and a workload certificate with a
    /// SPIFFE ID for each workload. servicea trusts that CA, and only it.
    /// Keeps valid certificates that are already there.
    GenCerts(GenCertsArgs),
    /// Print an access token for AUDIENCE exactly as servicea gets it from
    /// jwt-factory's POST /token (with servicea's env file and keys):
    /// `--bound` over mTLS, bound to servicea's certificate (scenario 8);
    /// `--self-signed` signed by servicea itself (scenario 3's token).
    /// The workshop's stand-in for a token captured on the wire, to show
    /// which replays work and which do not.
    FetchToken(FetchTokenArgs),
    /// Create servicea's own scenario-3 key pair (same as `POST /gen-keys`).
    GenKeys(GenKeysArgs),
}

#[derive(Args, Debug, Clone)]
pub struct GenCertsArgs {
    /// Folder for ca.pem, ca-key.pem, localhost.pem, localhost-key.pem,
    /// and each workload's NAME.pem and NAME-key.pem.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// The SPIFFE trust domain of the workload certificates:
    /// spiffe://DOMAIN/ns/default/sa/NAME.
    #[arg(long, env = "TRUST_DOMAIN", default_value = s2s_web::identity::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Replace existing certificates, valid or not (restart the services
    /// to use them).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FetchTokenArgs {
    /// The audience the token is for.
    #[arg(long, default_value = "serviceb")]
    pub audience: String,
    /// Over mTLS with servicea's workload certificate: the token is bound
    /// to it (scenario 8). Without: a bearer token (scenario 6).
    #[arg(long, conflicts_with = "self_signed")]
    pub bound: bool,
    /// Not from jwt-factory: servicea signs it itself, as in scenario 3
    /// (issuer SELF_SIGNED_ISSUER, key SERVICE_A_PRIVATE_KEY_PATH). In the mesh
    /// (scenario 10) it is a token from an issuer the sidecars do not know.
    #[arg(long)]
    pub self_signed: bool,
    #[command(flatten)]
    pub servicea: caller::Args,
}

#[derive(Args, Debug, Clone)]
pub struct GenKeysArgs {
    /// Where the private key goes (mode 0600).
    #[arg(
        long,
        env = "SERVICE_A_PRIVATE_KEY_PATH",
        default_value = "scenario-3-keys/jwt-private.pem"
    )]
    pub private_key_path: PathBuf,
    /// Where the public key goes.
    #[arg(
        long,
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub public_key_path: PathBuf,
    /// The algorithm the key is for: RS* and PS* get RSA-2048, ES256 P-256,
    /// ES384 P-384, EdDSA Ed25519.
    #[arg(long, env = "ALGORITHM", default_value = "RS256")]
    pub algorithm: SigningAlgorithm,
}

impl Command {
    /// The listener settings of a command that runs a service (its async
    /// runtime is built from them, `WORKER_THREADS`); `None` for a tool.
    pub fn listener(&self) -> Option<&s2s_web::serve::ListenerArgs> {
        match self {
            Self::Servicea(a) => Some(&a.common.listener),
            Self::Serviceb(a) | Self::Servicec(a) => Some(&a.common.listener),
            Self::Verifier(a) => Some(&a.common.listener),
            _ => None,
        }
    }
}
