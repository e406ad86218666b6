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
        let issuer = pick(
            ("SELF_SIGNED_ISSUER", self.self_signed_issuer),
            ("ISSUER", self.deprecated_issuer),
        );
        let lifetime_secs = pick(
            ("SELF_SIGNED_LIFETIME_SECS", self.self_signed_lifetime_secs),
            ("TOKEN_LIFETIME_SECS", self.deprecated_token_lifetime_secs),
        );
        SelfSigned {
            public_key: self.public_key_path,
            issuer: issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            lifetime_secs: lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS),
        }
    }
}

/// The new name's value, else the deprecated name's, each use of the old
/// name said in the log. When both are set (say the old one in the shell,
/// the new one in the env file), the new one wins, and the log says the
/// old one was ignored: never a silent choice.
fn pick<T>((new, current): (&str, Option<T>), (old, deprecated): (&str, Option<T>)) -> Option<T> {
    match (current, deprecated) {
        (Some(value), Some(_)) => {
            tracing::warn!(
                "{old} is deprecated here and ignored: {new} is set too, and wins ({old} is jwt-factory's)"
            );
            Some(value)
        }
        (None, Some(value)) => {
            tracing::warn!("{old} is deprecated here: it is {new} now ({old} is jwt-factory's)");
            Some(value)
        }
        (current, None) => current,
    }
}
