//! Scenario 6: servicea as an OAuth 2.0 client of jwt-factory's token
//! endpoint, with a token cache.
//!
//! servicea proves who it is with `private_key_jwt` (RFC 7523 §2.2): it
//! signs a one-minute assertion (`iss` = `sub` = its name, `aud` the
//! factory's issuer, a fresh `jti`) with its own scenario-3 private key and
//! sends that, never the key, to `POST /token`. The factory answers with an
//! access token for the one audience asked for.
//!
//! The cache: one token per audience, used until [`EXPIRY_MARGIN`] before
//! it expires. No signature is made while a cached token is fresh: the hot
//! path is a map lookup. When less than a fifth of its lifetime is left
//! before that margin ([`REFRESH_FRACTION`]; 65 s of a 300 s token), the request that notices spawns one background
//! task that fetches the next token, and keeps using the cached one
//! meanwhile; so in steady traffic no request ever waits for the factory.
//! Only one fetch runs at a time (the first request for an audience waits
//! for it; others queue behind it and then find the cached token). After a
//! failed background refresh, the next waits [`RETRY_AFTER`], so a factory
//! that is down is not hammered; the cached token keeps serving until it
//! expires.
//!
//! Scenario 8 uses a second client of the same kind over mTLS
//! ([`Transport::Mtls`]): the factory binds each token to servicea's
//! certificate (RFC 8705). A token is cached with the client it was fetched
//! through, so when servicea's certificate is re-issued, tokens bound to
//! the old one are no longer used. That client accepts only the factory's
//! own workload certificate ([`FACTORY_WORKLOAD`](crate::role::FACTORY_WORKLOAD), pinned by
//! [`super::tls_peers::TlsPeers`]): an assertion is a credential for as long
//! as it lives, and must not reach another workload that took the port.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use s2s_auth::{
    SigningAlgorithm,
    jws::{self, Claims},
    watched::WatchedFile,
};
use s2s_web::{
    outbound::{self, Deadline, Repeat, Target, Timeouts, UpstreamError},
    request_tracing::RequestId,
};
use serde_json::Value;

use super::{self_key::SelfKey, tls_peers::TlsPeers};
use crate::error::AppError;
use crate::role::FACTORY_WORKLOAD;

/// `client_assertion_type` of `private_key_jwt`.
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of the assertions servicea signs for the factory.
pub(super) const ASSERTION_LIFETIME_SECS: u64 = 60;
/// A cached token is not used when it has less than this left: it must
/// still be valid when the receiver checks it.
pub(super) const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// Refresh in the background when less than 1/5 of the lifetime is left.
pub(super) const REFRESH_FRACTION: u32 = 5;
/// After a failed background refresh, the next one waits this long.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How servicea reaches the token endpoint.
#[derive(Clone, Debug)]
pub(crate) enum Transport {
    /// The plain-http client (scenario 6).
    Plain(reqwest::Client),
    /// The mTLS clients with servicea's workload certificate, rebuilt when
    /// the certificate file changes (scenario 8); the factory's is used.
    Mtls(Arc<WatchedFile<TlsPeers>>),
}

impl Transport {
    /// The client now, and (mTLS) the `Arc` it was built into: a new one
    /// each time the certificate file changes.
    fn client(&self) -> Result<(reqwest::Client, Option<Arc<TlsPeers>>), AppError> {
        match self {
            Self::Plain(c) => Ok((c.clone(), None)),
            Self::Mtls(file) => {
                let peers = file.get()?;
                Ok((peers.factory.clone(), Some(peers)))
            }
        }
    }
}

/// Whether two [`Transport::client`] answers are the same build. Each
/// cached token holds its build's `Arc`, so its address is never reused
/// while compared.
fn same_build(a: &Option<Arc<TlsPeers>>, b: &Option<Arc<TlsPeers>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// A token from the factory and until when it may be used.
#[derive(Debug)]
pub struct Cached {
    pub token: String,
    /// The client build it was fetched with (see [`Transport`]).
    generation: Option<Arc<TlsPeers>>,
    pub expires_at: Instant,
    pub lifetime: Duration,
}

impl Cached {
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    fn usable(&self) -> bool {
        self.remaining() > EXPIRY_MARGIN
    }

    /// Less than a fifth of the lifetime left before it stops being usable.
    fn due_for_refresh(&self) -> bool {
        self.remaining() < self.lifetime / REFRESH_FRACTION + EXPIRY_MARGIN
    }
}

/// servicea's token endpoint client and its cache. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct StsClient(Arc<Inner>);

#[derive(Debug)]
pub(super) struct Inner {
    /// `JWT_FACTORY_ENDPOINT/token`.
    token_url: String,
    /// `aud` of the assertions: the factory's issuer (`FACTORY_ISSUER`).
    assertion_audience: String,
    /// `SERVICE_NAME`: the client_id.
    client_id: String,
    alg: SigningAlgorithm,
    http: Transport,
    timeouts: Timeouts,
    /// servicea's own key: it signs assertions, and never leaves servicea
    /// (or OpenBao).
    key: SelfKey,
    /// Tokens by audience. Only audiences the factory granted get in, so
    /// the map is bounded by the client registry.
    cache: RwLock<HashMap<String, Arc<Cached>>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is running or queued.
    refreshing: AtomicBool,
    last_failure: Mutex<Option<Instant>>,
}

impl StsClient {
    pub(crate) fn new(
        factory: &str,
        assertion_audience: String,
        client_id: String,
        alg: SigningAlgorithm,
        http: Transport,
        timeouts: Timeouts,
        key: SelfKey,
    ) -> Self {
        Self(Arc::new(Inner {
            token_url: format!("{factory}/token"),
            assertion_audience,
            client_id,
            alg,
            http,
            timeouts,
            key,
            cache: RwLock::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            last_failure: Mutex::new(None),
        }))
    }

    fn cached(&self, audience: &str) -> Option<Arc<Cached>> {
        let (_, generation) = self.0.http.client().ok()?;
        let cache = self.0.cache.read().unwrap_or_else(|p| p.into_inner());
        cache
            .get(audience)
            .filter(|c| c.usable() && same_build(&c.generation, &generation))
            .cloned()
    }

    /// A token for `audience`: the cached one, or (first use, or the cached
    /// one about to expire) a new one from the factory.
    pub(crate) async fn token(
        &self,
        audience: &str,
        rid: &RequestId,
        deadline: Deadline,
    ) -> Result<Arc<Cached>, AppError> {
        if let Some(c) = self.cached(audience) {
            tracing::info!(
                "using cached token for {audience}, expires in {} s",
                c.remaining().as_secs()
            );
            s2s_web::trace::note(|| {
                format!(
                    "token for {audience} from my cache (no call to jwt-factory), expires in {} s",
                    c.remaining().as_secs()
                )
            });
            if c.due_for_refresh() {
                self.refresh_in_background(audience);
            }
            return Ok(c);
        }
        let _one_at_a_time = self.0.fetching.lock().await;
        if let Some(c) = self.cached(audience) {
            tracing::info!(
                "using the token another request just fetched for {audience}, expires in {} s",
                c.remaining().as_secs()
            );
            return Ok(c);
        }
        tracing::info!("no usable cached token for {audience}: asking jwt-factory's /token");
        self.fetch(audience, false, rid, deadline).await
    }

    /// Scenario 6 with `?expired=1`: an assertion that expired an hour
    /// ago, sent past the cache. The factory refuses it (`invalid_client`).
    pub(crate) async fn with_expired_assertion(
        &self,
        audience: &str,
        rid: &RequestId,
        deadline: Deadline,
    ) -> Result<Arc<Cached>, AppError> {
        tracing::info!("asking jwt-factory's /token with an EXPIRED client assertion, on purpose");
        self.fetch(audience, true, rid, deadline).await
    }

    /// Spawns one task that fetches the next token for `audience` while
    /// requests keep using the cached one.
    fn refresh_in_background(&self, audience: &str) {
        let recent_failure = self
            .0
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < RETRY_AFTER);
        if recent_failure || self.0.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let audience = audience.to_owned();
        tokio::spawn(async move {
            {
                let _one_at_a_time = this.0.fetching.lock().await;
                let still_due = this.cached(&audience).is_none_or(|c| c.due_for_refresh());
                if still_due {
                    let left = this
                        .cached(&audience)
                        .map_or(0, |c| c.remaining().as_secs());
                    tracing::info!(
                        "refreshing the token for {audience} in the background ({left} s left)"
                    );
                    let deadline = Deadline::start(this.0.timeouts);
                    let outcome = this
                        .fetch(&audience, false, &RequestId(None), deadline)
                        .await;
                    if let Err(err) = outcome {
                        tracing::warn!(
                            "background refresh for {audience} failed: {err}; the cached token serves until it expires"
                        );
                        *this
                            .0
                            .last_failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    }
                }
            }
            this.0.refreshing.store(false, Ordering::Release);
        });
    }

    /// The assertion: `iss` = `sub` = client_id, `aud` the factory, a fresh
    /// `jti`, one minute (or expired an hour ago).
    async fn assertion(&self, expired: bool) -> Result<String, AppError> {
        let mut claims = Claims::new();
        claims.insert("iss".into(), self.0.client_id.clone().into());
        claims.insert("sub".into(), self.0.client_id.clone().into());
        claims.insert("aud".into(), self.0.assertion_audience.clone().into());
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        jws::set_times(&mut claims, ASSERTION_LIFETIME_SECS, expired);
        let (assertion, _) = self.0.key.sign(&claims, self.0.alg, false).await?;
        Ok(assertion)
    }

    /// One `POST /token`; the token is cached unless the assertion was
    /// expired on purpose (the factory refuses those anyway).
    async fn fetch(
        &self,
        audience: &str,
        expired: bool,
        rid: &RequestId,
        deadline: Deadline,
    ) -> Result<Arc<Cached>, AppError> {
        let assertion = self.assertion(expired).await?;
        tracing::info!(
            "signed a {ASSERTION_LIFETIME_SECS} s client assertion with my private key \
             (iss = sub = {}, aud {}); POST {} for audience {audience}",
            self.0.client_id,
            self.0.assertion_audience,
            self.0.token_url
        );
        let target = Target {
            who: FACTORY_WORKLOAD,
            url: self.0.token_url.clone(),
        };
        let (client, generation) = self.0.http.client()?;
        let request = client.post(&target.url).form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
            ("audience", audience),
        ]);
        // Never sent twice: the assertion's jti is single-use.
        let (status, _, body) =
            outbound::send(request, &target, rid, deadline, Repeat::IfSafe).await?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        let field = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if status != StatusCode::OK {
            return Err(match field("error") {
                Some(error) => AppError::TokenRefused {
                    upstream: status,
                    error,
                    description: field("error_description").unwrap_or_default(),
                },
                None => UpstreamError::unexpected(&target, status, &body).into(),
            });
        }
        let token = field("access_token")
            .ok_or_else(|| UpstreamError::bad_answer(&target, "a 200 without an access_token"))?;
        let expires_in = json
            .as_ref()
            .and_then(|j| j.get("expires_in"))
            .and_then(Value::as_u64)
            .ok_or_else(|| UpstreamError::bad_answer(&target, "a 200 without expires_in"))?;
        let lifetime = Duration::from_secs(expires_in);
        let cached = Arc::new(Cached {
            token,
            generation,
            expires_at: Instant::now() + lifetime,
            lifetime,
        });
        tracing::info!(
            "jwt-factory issued a token for {audience}, expires in {expires_in} s; cached, refreshed in the background when {} s are left",
            expires_in / u64::from(REFRESH_FRACTION) + EXPIRY_MARGIN.as_secs()
        );
        if !expired {
            self.0
                .cache
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(audience.to_owned(), Arc::clone(&cached));
        }
        Ok(cached)
    }
}
