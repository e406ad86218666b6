//! Scenario 5: the factory's public keys, fetched as a JWK Set and cached.
//!
//! The pattern the field recommends between "ask the issuer every time"
//! (scenarios 1-2) and "hand every receiver the caller's key" (3-4): the
//! issuer publishes its public keys at `/.well-known/jwks.json`, each token
//! names its key with `kid`, and the receiver verifies locally from a cached
//! copy of the set. Rotation needs no restart and no file copying: a new
//! `kid` makes the receiver fetch the set again.
//!
//! The cache answers from memory while it is fresh (`JWKS_MAX_AGE_SECS`, or
//! less if the factory's `Cache-Control: max-age` says so). It fetches again
//! when it has expired or a token names a `kid` it does not hold. Refetches
//! for unknown `kid`s happen at most once per `JWKS_REFRESH_MIN_SECS`, so a
//! flood of tokens with made-up `kid`s cannot make it hammer the factory
//! (the first new `kid` after a rotation is fetched at once); after a failed
//! fetch, the next try also waits that long. Only one fetch runs at a time;
//! requests that arrive meanwhile are answered from the cached set if it
//! holds their `kid`, or wait for it. If the factory is down, the cached set
//! keeps working past its freshness, for `JWKS_MAX_STALE_SECS` at most (a
//! key the issuer withdrew must not be trusted forever).
//!
//! In steady state no request waits for a fetch: once the set has been
//! fetched, a background task ([`JwksCache::refresh_in_background`],
//! started by [`crate::receiver::run`] and stopped with it) fetches it
//! again at 80% of its freshness, before it goes stale. With the factory's
//! phased rotation (a next key published `ROTATION_PUBLISH_AHEAD_SECS`, by
//! default the set's max-age, before it signs) the new `kid` is then in the
//! cached set before the first token signed with it arrives, so no valid
//! `kid` depends on the rate-limited unknown-`kid` refetch, and a flood of
//! made-up `kid`s cannot delay one. If the background fetch fails, the
//! cached copy keeps serving (within `JWKS_MAX_STALE_SECS`), requests do not
//! fetch in its place, and the task retries and logs the failure once per
//! `JWKS_REFRESH_MIN_SECS` (at least 1 s), not once per request.
//!
//! The cache itself ([`s2s_web::jwks_cache`]) is shared with the factory,
//! which holds its `jwks_uri` clients' sets with the same rules; this module
//! points it at the factory's set and turns its answers into the
//! receivers' errors.
//!
//! The set holds the keys of every key id at the factory; only keys of the
//! caller (`CALLER`, whose key id begins the `kid`: `servicea.2gvowRNF`) are
//! kept and used, so a token signed with another key id's key is refused
//! even if it claims `sub: servicea`.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use s2s_auth::{JwtError, SigningAlgorithm, untrusted};
use s2s_web::{
    jwks_cache::{self, Bounds, JwksError, Source},
    outbound::Timeouts,
    request_tracing::RequestId,
};

use crate::{error::AppError, token_check::JwksSettings};

/// The cached JWK Set of the factory, as a receiver uses it.
#[derive(Debug)]
pub(crate) struct JwksCache(jwks_cache::JwksCache);

impl JwksCache {
    pub(crate) fn new(
        settings: &JwksSettings,
        owner: String,
        alg: SigningAlgorithm,
        timeouts: Timeouts,
    ) -> Self {
        let source = Source {
            who: "jwt-factory",
            url: settings.url.clone(),
            owner: Some(owner),
            alg,
        };
        let bounds = Bounds {
            max_age: settings.max_age,
            min_refresh: settings.min_refresh,
            max_stale: settings.max_stale,
        };
        Self(jwks_cache::JwksCache::new(source, bounds, timeouts))
    }

    /// How many times the set was requested from the issuer.
    pub(crate) fn fetches(&self) -> u64 {
        self.0.fetches()
    }

    /// How many background refreshes failed (each was logged once).
    pub(crate) fn background_failures(&self) -> u64 {
        self.0.background_failures()
    }

    /// See [`jwks_cache::JwksCache::refresh_in_background`]: started by
    /// [`crate::receiver::run`] and stopped with it.
    pub(crate) async fn refresh_in_background(&self, client: &reqwest::Client) {
        self.0.refresh_in_background(client).await;
    }

    /// Verifies `token` against `expect` with the key its `kid` names (the
    /// header is checked first: algorithm, `typ`, `crit`; no `kid` is a
    /// refusal). The claims, and the kid for the log.
    pub(crate) async fn verify(
        &self,
        expect: &s2s_auth::Expectations,
        token: &str,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<(s2s_auth::jws::Claims, String), AppError> {
        let kid = expect.kid(token)?.ok_or_else(|| {
            JwtError::invalid(
                "jwt has no kid: it cannot be matched to a key of the issuer's JWK Set",
            )
        })?;
        tracing::info!(
            "token names kid {}; looking it up in the factory's JWK Set",
            untrusted(&kid)
        );
        let key = self.key_for(&kid, client, rid).await?;
        Ok((expect.verify_with(token, &key)?, kid))
    }

    /// The key for `kid`: from the cache, or after fetching the set again.
    /// A `kid` the set does not give is a refused token (403); a set that
    /// cannot be had is the factory's failure (502/504).
    pub(crate) async fn key_for(
        &self,
        kid: &str,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<Arc<DecodingKey>, AppError> {
        self.0.key_for(kid, client, rid).await.map_err(|e| match e {
            JwksError::NoSuchKid { .. } => JwtError::invalid(e.to_string()).into(),
            JwksError::Upstream(u) => u.into(),
        })
    }
}
