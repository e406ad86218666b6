//! serviceb and servicec, the receivers: each checks the caller's bearer
//! token, in the way its scenario teaches.
//!
//! | check | scenarios | how |
//! | --- | --- | --- |
//! | [`Check::Factory`] | 1, 2 | ask jwt-factory (`/verify/servicea`, `aud` = own name, `sub` = servicea): the receiver holds no key |
//! | [`Check::CallerKey`] | 3, 4 | verify locally, over https only, with servicea's public key file |
//! | [`Check::Jwks`] | 5 | verify locally with the factory's key named by the token's `kid`, from a cached JWK Set ([`crate::jwks`]) |
//! | [`Check::Sts`] | 6 | as 5, and `typ: at+jwt` and `client_id` ([`crate::scenario6`]) |
//! | [`Check::Identity`] | 7 | no token: the mTLS client certificate's SPIFFE ID, allowed by the policy ([`crate::authz`]) |
//! | [`Check::BoundSts`] | 8 | as 6, over mTLS, and the token's `cnf` must match the client certificate ([`crate::binding`]) |
//! | [`Check::Gateway`] | 9 | none here: the gateway verified the token; the identity headers are believed from the gateway's certificate alone ([`crate::gateway_identity`]) |
//! | [`Check::Mesh`] | 10 | none here: the sidecar verified mTLS, the token and the policy; the receiver reads `x-forwarded-client-cert` and `x-mesh-jwt-payload` ([`crate::sidecar_identity`]) |
//!
//! The routes come from the scenario table: each scenario's receiver path
//! is served on the listener its check needs (https for `CallerKey`).

use std::{path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    extract::{MatchedPath, State as Shared},
    routing::{MethodRouter, get},
};
use axum_server::tls_rustls::RustlsConfig;
use clap::{Args as ClapArgs, builder::BoolishValueParser};
use s2s_auth::{Expectations, watched::WatchedFile};
use s2s_web::{
    identity::ClientCert,
    outbound::{self, ClientError},
    request_tracing::RequestId,
    tls::{MtlsMode, ServerTls},
    trace::{self, Verdict},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{
    bearer::BearerToken,
    binding::Binding,
    cli::Role,
    error::AppError,
    factory_client,
    jwks::JwksCache,
    key_set::{self, NamedKey},
    scenario6::access_token,
    scenarios::{Check, SCENARIOS},
    settings::{Common, CommonArgs},
    token_check::{JwksSettings, TokenCheckArgs},
};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub tokens: TokenCheckArgs,

    /// servicea's public key, to verify its self-signed tokens locally
    /// (scenarios 3-4).
    #[arg(
        long,
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub service_a_public_key_path: PathBuf,

    /// Also serve https (scenarios 3-4): true/false, 1/0, yes/no.
    #[arg(long, env = "START_HTTPS", default_value = "false", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub start_https: bool,

    /// HTTPS port. Default: 8443 (serviceb), 9443 (servicec).
    #[arg(long, env = "HTTPS_PORT")]
    pub https_port: Option<u16>,

    /// TLS private key of the https listener (written by gen-certs).
    /// Default: certs/<service>-key.pem.
    #[arg(long, env = "SERVER_PRIVATE_KEY_PATH")]
    pub server_private_key_path: Option<PathBuf>,

    /// TLS certificate of the https listener (written by gen-certs): the
    /// receiver's workload certificate, whose SPIFFE ID servicea checks
    /// (the plain `localhost.pem` names no workload: servicea refuses it).
    /// Re-read when the file changes. Default: certs/<service>.pem.
    #[arg(long, env = "SERVER_PUBLIC_KEY_PATH")]
    pub server_public_key_path: Option<PathBuf>,

    /// Client certificates on the https listener, as Istio's
    /// PeerAuthentication: off (one-way TLS), permissive (asks for one,
    /// accepts none: scenario 3 keeps working), strict (refuses a handshake
    /// without one from CA_CERT_PATH).
    #[arg(long, env = "MTLS_MODE", value_enum, default_value_t = MtlsMode::Permissive)]
    pub mtls_mode: MtlsMode,

    /// The CA client certificates must chain to (written by gen-certs).
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca_cert_path: PathBuf,

    /// Scenario 7: which principals may call which paths (JSON, shaped
    /// like Istio's AuthorizationPolicy; re-read when it changes). Unset:
    /// every path that needs an identity is denied.
    #[arg(long, env = "AUTHZ_POLICY_FILE")]
    pub authz_policy_file: Option<PathBuf>,

    /// Scenario 9: the only principal whose X-Jwt-* identity headers are
    /// believed. Default: TRUST_DOMAIN/ns/default/sa/gateway.
    #[arg(long, env = "GATEWAY_PRINCIPAL")]
    pub gateway_principal: Option<String>,

    /// The `iss` accepted on servicea's self-signed tokens (scenarios 3-4).
    #[arg(long, env = "ISSUER", default_value = "https://service-issuer")]
    pub issuer: String,

    /// The longest remaining lifetime accepted on servicea's self-signed
    /// tokens (scenarios 3-4), seconds: servicea's TOKEN_LIFETIME_SECS.
    #[arg(long, env = "TOKEN_LIFETIME_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub token_lifetime_secs: u64,
}

/// The https listener of a receiver.
#[derive(Clone, Debug)]
pub struct HttpsSettings {
    pub port: u16,
    pub tls: ServerTls,
}

/// [`Args`] as typed values, built once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: Common,
    /// `CALLER`: the `sub` expected, the factory key id that verifies it.
    pub caller: String,
    pub caller_key: PathBuf,
    /// `None` when `START_HTTPS` is off.
    pub https: Option<HttpsSettings>,
    /// What servicea's self-signed tokens must satisfy (scenarios 3-4).
    pub self_signed: Expectations,
    /// What jwt-factory's tokens must satisfy (scenario 5).
    pub factory_tokens: Expectations,
    /// What the factory's access tokens from `POST /token` must satisfy
    /// (scenario 6): as `factory_tokens`, typed `at+jwt`.
    pub access_tokens: Expectations,
    pub jwks: JwksSettings,
    /// Scenario 7's authorization policy file, if any.
    pub authz_policy: Option<PathBuf>,
    /// `MTLS_MODE`, also when the https listener is set up by the caller
    /// (tests).
    pub mtls_mode: MtlsMode,
    /// Scenario 9: whose `X-Jwt-*` headers are believed.
    pub gateway_principal: String,
}

impl Args {
    pub fn settle(self, role: Role) -> Settings {
        let mtls_mode = self.common.production.mtls_mode(self.mtls_mode);
        let common = self.common.settle(role);
        let t = &self.tokens;
        let self_signed = t.expect(
            common.algorithm,
            self.issuer,
            common.name.clone(),
            self.token_lifetime_secs,
        );
        let factory_tokens = t.factory_token(common.algorithm, common.name.clone());
        // Scenario 6: the factory's RFC 9068 access tokens, typed `at+jwt`,
        // so a scenario-5 token signed by the same key cannot pass as one.
        let access_tokens = Expectations {
            typ: s2s_auth::verify::TYP_ACCESS_TOKEN,
            ..factory_tokens.clone()
        };
        let https = self.start_https.then(|| HttpsSettings {
            port: self.https_port.unwrap_or(role.default_https_port()),
            tls: ServerTls {
                cert: self
                    .server_public_key_path
                    .unwrap_or_else(|| format!("certs/{}.pem", role.name()).into()),
                key: self
                    .server_private_key_path
                    .unwrap_or_else(|| format!("certs/{}-key.pem", role.name()).into()),
                client_ca: self.ca_cert_path,
                mode: mtls_mode,
            },
        });
        let jwks = t.jwks(&common.factory);
        let gateway_principal = self
            .gateway_principal
            .unwrap_or_else(|| format!("{}/ns/default/sa/gateway", common.serve.trust_domain));
        Settings {
            common,
            caller: self.tokens.caller,
            caller_key: self.service_a_public_key_path,
            https,
            self_signed,
            factory_tokens,
            access_tokens,
            jwks,
            authz_policy: self.authz_policy_file,
            mtls_mode,
            gateway_principal,
        }
    }
}

shared_state! {
    /// What a receiver's handlers share.
    State => Inner {
        pub settings: Settings,
        /// The one http client of the process (jwt-factory's `/verify` and JWK Set).
        pub http: reqwest::Client,
        /// servicea's public key, parsed once, reloaded when the file changes.
        pub caller_key: WatchedFile<NamedKey>,
        /// The other keys of servicea's key set during a rotation: the next one
        /// (`jwt-public.next.pem`) and the previous one
        /// (`jwt-public.previous.pem`); usually absent. See [`crate::key_set`].
        pub caller_other_keys: [WatchedFile<NamedKey>; 2],
        /// Scenario 5: the factory's JWK Set, fetched when needed and cached.
        pub jwks: JwksCache,
        /// Scenario 7: the authorization policy, re-read when it changes.
        pub policy: Option<WatchedFile<crate::authz::Policy>>,
    }
}

impl State {
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let alg = settings.common.algorithm;
        let http = outbound::client(settings.common.timeouts, None)?;
        let caller_file = |path: PathBuf, what: &'static str| {
            let owner = settings.caller.clone();
            WatchedFile::new(
                path,
                what,
                "Create it on servicea with `curl -X POST localhost:3000/gen-keys`",
                move |pem| NamedKey::parse(pem, &owner, alg),
            )
        };
        let caller_key = caller_file(settings.caller_key.clone(), "servicea's public key");
        let caller_other_keys = [
            caller_file(
                key_set::tagged(&settings.caller_key, "next"),
                "servicea's next public key",
            ),
            caller_file(
                key_set::tagged(&settings.caller_key, "previous"),
                "servicea's previous public key",
            ),
        ];
        let jwks = JwksCache::new(
            &settings.jwks,
            settings.caller.clone(),
            alg,
            settings.common.timeouts,
        );
        let policy = settings.authz_policy.as_deref().map(crate::authz::watch);
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            caller_key,
            caller_other_keys,
            jwks,
            policy,
        })))
    }

    /// `SERVICE_NAME`.
    pub fn name(&self) -> &str {
        &self.settings.common.name
    }
}

/// The handler for a way of checking tokens.
fn handler(check: Check) -> MethodRouter<State> {
    match check {
        Check::Factory => get(via_factory),
        Check::CallerKey => get(via_caller_key),
        Check::Jwks => get(via_jwks),
        Check::Sts => get(|s, p, r, c, t| access_token(s, p, r, c, t, Binding::IfPresent)),
        Check::Identity => get(via_identity),
        Check::BoundSts => get(|s, p, r, c, t| access_token(s, p, r, c, t, Binding::Required)),
        Check::Gateway => get(crate::gateway_identity::via_gateway),
        Check::Mesh => get(crate::sidecar_identity::via_sidecar),
    }
}

/// The receiver paths of every scenario whose check runs over plain http
/// (`tls: false`) or https (`tls: true`).
fn routes(state: State, tls: bool) -> Router {
    let name = state.name().to_owned();
    let router = SCENARIOS
        .iter()
        .filter(|s| s.check.over_tls() == tls)
        .fold(Router::new(), |router, s| {
            router.route(&s.receiver_path(), handler(s.check))
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::gateway_identity::guard,
        ));
    let shortcuts = state.settings.common.shortcuts;
    crate::finish(router.with_state(state), &name, shortcuts)
}

/// The plain-http routes: scenarios checked via the factory or the JWK Set.
pub fn http_router(state: State) -> Router {
    routes(state, false)
}

/// The https routes: scenarios 3-4 are only served over TLS, so a
/// self-signed token never crosses the wire in clear text.
pub fn https_router(state: State) -> Router {
    routes(state, true)
}

/// Serves `http` (and `https`, with its TLS config, if given) until
/// `shutdown` resolves; then both listeners stop accepting and in-flight
/// requests get [`s2s_web::shutdown::DRAIN`] to finish.
pub async fn run(
    state: State,
    http: TcpListener,
    https: Option<(TcpListener, RustlsConfig)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One handle for both listeners: one signal stops both.
    let handle = s2s_web::shutdown::handle_on(shutdown);
    let name = state.name().to_owned();
    let options = state.settings.common.serve.clone();
    // Scenario 5: keep the cached JWK Set fresh in the background. The
    // task is aborted when `run` returns (or is dropped), so it stops with
    // the server.
    let _refresher = s2s_web::shutdown::AbortOnDrop(tokio::spawn({
        let state = state.clone();
        async move { state.jwks.refresh_in_background(&state.http).await }
    }));

    use s2s_web::serve::{Listener, serve_pair};
    let mode = state
        .settings
        .https
        .as_ref()
        .map_or(MtlsMode::Off, |h| h.tls.mode);
    let https = https.map(|(listener, config)| Listener {
        listener,
        router: https_router(state.clone()),
        tls: Some(config),
        note: format!(" (certificate from gen-certs; client certificates: {mode})"),
    });
    let plain = Listener {
        listener: http,
        router: http_router(state),
        tls: None,
        note: String::new(),
    };
    serve_pair(&name, plain, https, handle, &options).await?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// `/scenario1-server`, `/scenario2-server`: jwt-factory decides.
async fn via_factory(
    Shared(state): Shared<State>,
    path: MatchedPath,
    rid: RequestId,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let caller = &state.settings.caller;
    tracing::info!(
        "{}: asking jwt-factory to verify the token (signed by {caller}? aud {me}? sub {caller}?)",
        path.as_str(),
        me = state.name(),
    );
    // A refusal is logged where it becomes a response (`AppError`).
    let verdict = factory_client::verify(&state, &rid, &token).await?;
    trace::check(|| {
        Verdict::valid(format!(
            "asked jwt-factory: signed by {caller}, aud {}, sub {caller}",
            state.name()
        ))
    });
    tracing::info!(
        "jwt-factory says: token valid: signed by {caller}, aud {}",
        state.name()
    );
    Ok(Json(verdict))
}

/// `/scenario5-server`: verified here with the factory's key named by the
/// token's `kid`, from the cached JWK Set (see [`crate::jwks`]).
async fn via_jwks(
    Shared(state): Shared<State>,
    path: MatchedPath,
    rid: RequestId,
    // A missing or malformed token is refused by the extractor itself.
    BearerToken(token): BearerToken,
) -> Result<Json<Value>, AppError> {
    let expect = &state.settings.factory_tokens;
    tracing::info!(
        "{}: verifying locally with the factory's JWK Set",
        path.as_str()
    );
    let (claims, kid) = state.jwks.verify(expect, &token, &state.http, &rid).await?;
    trace::check(|| {
        Verdict::valid("signature with the factory's key from the JWK Set, and the claims")
            .kid(kid.to_string())
            .expected(expect.required())
    });
    tracing::info!(
        "token valid: signed by the factory's key {kid}, iss {}, aud {}, sub {}",
        expect.issuer,
        expect.audience,
        expect.subject
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}

/// `/scenario7-server`: no token. The caller is who its mTLS client
/// certificate says (a SPIFFE ID from our CA), and the policy must allow
/// that principal on this path.
async fn via_identity(
    Shared(state): Shared<State>,
    path: MatchedPath,
    cert: ClientCert,
) -> Result<Json<Value>, AppError> {
    tracing::info!(
        "{}: no token here; who is calling is what the mTLS handshake proved",
        path.as_str()
    );
    let id = crate::authz::authorize(state.policy.as_ref(), path.as_str(), &cert)?;
    trace::check(|| {
        Verdict::allowed(format!(
            "mTLS client certificate {}: allowed on {} by the policy",
            id.spiffe_id,
            path.as_str()
        ))
    });
    Ok(Json(json!({
        "authorized": true,
        "principal": id.principal,
        "spiffe_id": id.spiffe_id,
        "x5t#S256": id.thumbprint,
    })))
}

/// `/scenario3-server`, `/scenario4-server`: verified here with servicea's public key.
async fn via_caller_key(
    Shared(state): Shared<State>,
    path: MatchedPath,
    token: Result<BearerToken, AppError>,
) -> Result<Json<Value>, AppError> {
    let BearerToken(token) = token?;
    let expect = &state.settings.self_signed;
    let current = state.caller_key.get()?;
    // The kid selects among servicea's key set (current, next, previous);
    // no kid, or one naming none of them, means the current key. It never
    // brings a key.
    let kid = expect.kid(&token)?;
    let (key, file) = match kid.as_deref() {
        Some(kid) if kid != current.kid => state
            .caller_other_keys
            .iter()
            .find_map(|f| f.get().ok().filter(|k| k.kid == kid).map(|k| (k, f.path())))
            .unwrap_or((current, state.caller_key.path())),
        _ => (current, state.caller_key.path()),
    };
    let named = key;
    let key = &named.key;
    tracing::info!(
        "{}: verifying locally with {} ({}, iss {}, aud {}, sub {}, leeway {} s)",
        path.as_str(),
        file.display(),
        expect.algorithm,
        expect.issuer,
        expect.audience,
        expect.subject,
        expect.leeway_secs,
    );
    let claims = expect.verify(&token, key)?;
    trace::check(|| {
        // The file's name, not its folder: the trace goes to callers.
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        Verdict::valid(format!(
            "signature with servicea's public key ({name}), and the claims"
        ))
        .kid(named.kid.clone())
        .expected(expect.required())
    });
    tracing::info!(
        "token valid: signed by {}, aud {}",
        expect.subject,
        expect.audience
    );
    Ok(Json(json!({ "valid": true, "claims": claims })))
}
