//! The settings of servicea's self-signed tokens (scenarios 3-4),
//! read by servicea (which signs them) and by the receivers (which check
//! them), so both sides read the same names and defaults.
//!
//! They were `ISSUER` and `TOKEN_LIFETIME_SECS`, names that mean the
//! factory's own issuer and its tokens' lifetime in jwt-factory. The old
//! names are still read, with a warning in the log.

use std::path::PathBuf;

use clap::Args;

const DEFAULT_ISSUER: &str = "https://service-issuer";
const DEFAULT_LIFETIME_SECS: u64 = 30;

#[derive(Args, Debug, Clone)]
pub(crate) struct SelfSignedArgs {
    /// servicea's public key (scenarios 3-4): `POST /gen-keys` writes it
    /// beside the private key; serviceb and servicec verify with it.
    #[arg(
        long = "service-a-public-key-path",
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub(crate) public_key_path: PathBuf,

    /// The `iss` of servicea's self-signed tokens (scenarios 3-4): servicea
    /// signs with it, receivers require it. Default: https://service-issuer.
    #[arg(long, alias = "issuer", env = "SELF_SIGNED_ISSUER")]
    self_signed_issuer: Option<String>,

    /// The lifetime of servicea's self-signed tokens (scenarios 3-4),
    /// seconds: servicea signs them for this long, receivers accept at most
    /// this much left. Default: 30.
    #[arg(long, alias = "token-lifetime-secs", env = "SELF_SIGNED_LIFETIME_SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    self_signed_lifetime_secs: Option<u64>,

    /// Deprecated: the old name of SELF_SIGNED_ISSUER, still read (with a
    /// warning) when that is not set.
    #[arg(long = "deprecated-issuer", env = "ISSUER", value_name = "ISSUER")]
    deprecated_issuer: Option<String>,

    /// Deprecated: the old name of SELF_SIGNED_LIFETIME_SECS, still read
    /// (with a warning) when that is not set.
    #[arg(long = "deprecated-token-lifetime-secs", env = "TOKEN_LIFETIME_SECS",
          value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    deprecated_token_lifetime_secs: Option<u64>,
}

/// [`SelfSignedArgs`], settled.
#[derive(Clone, Debug)]
pub(crate) struct SelfSigned {
    pub(crate) public_key: PathBuf,
    pub(crate) issuer: String,
    pub(crate) lifetime_secs: u64,
}

impl SelfSignedArgs {
    /// The values: the new name, else the old one (said in the log), else
    /// the default.
    pub(crate) fn settle(self) -> SelfSigned {
        let issuer = self
            .self_signed_issuer
            .or_else(|| deprecated("ISSUER", "SELF_SIGNED_ISSUER", self.deprecated_issuer));
        let lifetime_secs = self.self_signed_lifetime_secs.or_else(|| {
            deprecated(
                "TOKEN_LIFETIME_SECS",
                "SELF_SIGNED_LIFETIME_SECS",
                self.deprecated_token_lifetime_secs,
            )
        });
        SelfSigned {
            public_key: self.public_key_path,
            issuer: issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            lifetime_secs: lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS),
        }
    }
}

/// `value` of a deprecated setting, with a line in the log that names
/// the new one.
fn deprecated<T>(old: &str, new: &str, value: Option<T>) -> Option<T> {
    if value.is_some() {
        tracing::warn!("{old} is deprecated here: it is {new} now ({old} is jwt-factory's)");
    }
    value
}
