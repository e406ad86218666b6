//! What a service that verifies the factory's tokens locally reads: the
//! caller it expects, the clock tolerance, the factory's issuer and token
//! lifetime, and the JWK Set cache's bounds. Flattened into the receivers'
//! arguments and the gateway verifier's, so each setting, its range and its
//! `--help` text are defined once.

use std::time::Duration;

use clap::Args;
use s2s_auth::{Expectations, SigningAlgorithm};

use crate::settings::key_id;

#[derive(Args, Debug, Clone)]
pub(crate) struct TokenCheckArgs {
    /// The `sub` expected, and the jwt-factory key id whose keys verify it.
    #[arg(long, env = "CALLER", default_value = "servicea", value_parser = key_id)]
    pub(crate) caller: String,

    /// Clock tolerance when verifying locally, seconds.
    #[arg(long, env = "LEEWAY_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub(crate) leeway_secs: u64,

    /// Where the factory's JWK Set is.
    /// Default: JWT_FACTORY_ENDPOINT + /.well-known/jwks.json.
    #[arg(long, env = "JWKS_URL")]
    pub(crate) jwks_url: Option<String>,

    /// Longest time the JWK Set is fresh, seconds (less if the factory's
    /// Cache-Control max-age says so; never less than
    /// JWKS_REFRESH_MIN_SECS).
    #[arg(long, env = "JWKS_MAX_AGE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) jwks_max_age_secs: u64,

    /// At most one refetch of the JWK Set per this many seconds, however
    /// many unknown `kid`s arrive.
    #[arg(long, env = "JWKS_REFRESH_MIN_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub(crate) jwks_refresh_min_secs: u64,

    /// How long past its freshness the cached JWK Set still serves while
    /// jwt-factory cannot be reached, seconds.
    #[arg(long, env = "JWKS_MAX_STALE_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) jwks_max_stale_secs: u64,

    /// The `iss` of jwt-factory's tokens.
    #[arg(long, env = "FACTORY_ISSUER", default_value = "https://jwt-factory/")]
    pub(crate) factory_issuer: String,

    /// The longest remaining lifetime accepted on a jwt-factory token,
    /// seconds (the factory's TOKEN_LIFETIME_SECS).
    #[arg(long, env = "FACTORY_TOKEN_LIFETIME_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) factory_token_lifetime_secs: u64,
}

/// The JWK Set cache's bounds.
#[derive(Clone, Debug)]
pub(crate) struct JwksSettings {
    pub(crate) url: String,
    pub(crate) max_age: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_stale: Duration,
}

impl TokenCheckArgs {
    /// The JWK Set cache's bounds; `factory` is JWT_FACTORY_ENDPOINT.
    pub(crate) fn jwks(&self, factory: &str) -> JwksSettings {
        JwksSettings {
            url: self
                .jwks_url
                .clone()
                .unwrap_or_else(|| format!("{factory}/.well-known/jwks.json")),
            max_age: Duration::from_secs(self.jwks_max_age_secs),
            min_refresh: Duration::from_secs(self.jwks_refresh_min_secs),
            max_stale: Duration::from_secs(self.jwks_max_stale_secs),
        }
    }

    /// A token signed with `algorithm`, by `issuer`, from the caller, for
    /// `audience`, living at most `max_lifetime_secs`.
    pub(crate) fn expect(
        &self,
        algorithm: SigningAlgorithm,
        issuer: String,
        audience: String,
        max_lifetime_secs: u64,
    ) -> Expectations {
        Expectations {
            algorithm,
            typ: s2s_auth::verify::TYP_JWT,
            issuer,
            audience,
            subject: self.caller.clone(),
            leeway_secs: self.leeway_secs,
            max_lifetime_secs,
        }
    }

    /// A token from jwt-factory (`/issueToken`, typ JWT) for `audience`.
    pub(crate) fn factory_token(
        &self,
        algorithm: SigningAlgorithm,
        audience: String,
    ) -> Expectations {
        self.expect(
            algorithm,
            self.factory_issuer.clone(),
            audience,
            self.factory_token_lifetime_secs,
        )
    }
}
