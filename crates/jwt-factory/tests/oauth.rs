//! `POST /token` (client credentials with private_key_jwt), `/introspect`,
//! the RFC 8414 metadata and the shortcut switch, against a running factory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{ISSUER, JWT_BEARER, oauth2_http, refused};

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation, jwk::JwkSet};
use reqwest::{Client, RequestBuilder};
use s2s_auth::{
    KeyPair, SigningAlgorithm,
    files::{PUBLIC, write_atomic},
    jws::{self, Claims},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use test_support::{
    Reply, Running,
    factory::{create_key, now_unix},
    forge::{Sig, forge},
    reply, start_factory,
};

/// A factory with a client registry: servicea (may ask for serviceb and
/// servicec) and other (serviceb), each with its own key pair; serviceb
/// registered without a key. The factory holds a signing key for servicea only.
struct Sts {
    _dir: TempDir,
    factory: Running,
    http: Client,
    a: KeyPair,
    other: KeyPair,
}

fn write_registry(dir: &Path, a: &KeyPair, other: &KeyPair) -> std::path::PathBuf {
    let a_pub = dir.join("a-public.pem");
    let o_pub = dir.join("other-public.pem");
    write_atomic(&a_pub, a.public().pem().as_bytes(), PUBLIC).unwrap();
    write_atomic(&o_pub, other.public().pem().as_bytes(), PUBLIC).unwrap();
    let registry = json!({ "clients": [
        { "client_id": "servicea", "key_file": a_pub, "audiences": ["serviceb", "servicec"] },
        { "client_id": "other", "key_file": o_pub, "audiences": ["serviceb"] },
        { "client_id": "serviceb", "audiences": [] },
    ]});
    let path = dir.join("clients.json");
    write_atomic(&path, registry.to_string().as_bytes(), PUBLIC).unwrap();
    path
}

impl Sts {
    async fn start(extra: &[&str]) -> Self {
        test_support::init();
        let dir = tempfile::tempdir().unwrap();
        let a = KeyPair::generate(SigningAlgorithm::RS256).unwrap();
        let other = KeyPair::generate(SigningAlgorithm::RS256).unwrap();
        let clients = write_registry(dir.path(), &a, &other);
        let mut flags = vec!["--clients-file", clients.to_str().unwrap()];
        flags.extend_from_slice(extra);
        let factory = start_factory(&dir.path().join("keys"), &flags).await;
        let http = Client::new();
        create_key(&http, &factory, "servicea").await;
        Self {
            _dir: dir,
            factory,
            http,
            a,
            other,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.factory.url())
    }

    fn form(&self, path: &str, params: &[(&str, &str)]) -> RequestBuilder {
        self.http.post(self.url(path)).form(params)
    }

    /// `POST /token` for `audience` with `assertion`.
    async fn token(&self, assertion: &str, audience: &str) -> Reply {
        self.grant(assertion, &[("audience", audience)]).await
    }

    /// `POST /token`: the client-credentials grant with `assertion` as a
    /// JWT bearer client assertion, then `params` as they are.
    async fn grant(&self, assertion: &str, params: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        form.extend_from_slice(params);
        reply(self.form("/token", &form)).await
    }
}

/// Assertion claims: iss = sub = `client`, aud the issuer, 60 s, fresh jti.
fn claims(client: &str) -> Claims {
    let now = now_unix();
    let v = json!({ "iss": client, "sub": client, "aud": ISSUER,
                    "iat": now, "exp": now + 60, "jti": uuid_like() });
    v.as_object().unwrap().clone()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now_unix(), N.fetch_add(1, Ordering::Relaxed))
}

fn sign(claims: &Claims, key: &KeyPair) -> String {
    jws::sign(claims, key, SigningAlgorithm::RS256).unwrap()
}

fn header_of(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).unwrap()
}

#[tokio::test]
async fn a_client_gets_an_rfc9068_token_that_verifies_with_the_jwk_set() {
    let s = Sts::start(&[]).await;
    let r = s.token(&sign(&claims("servicea"), &s.a), "serviceb").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();
    let header = header_of(token);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    assert!(kid.starts_with("servicea."), "{kid}");

    let set: JwkSet = serde_json::from_value(
        test_support::get_json(&s.http, &s.url("/.well-known/jwks.json"))
            .await
            .1,
    )
    .unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["serviceb"]);
    v.set_issuer(&[ISSUER]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "servicea");
    assert_eq!(claims["client_id"], "servicea");
    assert_eq!(claims["aud"], "serviceb");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300);

    // `resource` (RFC 8707) works as `audience` does, and the aud may be
    // the token endpoint's URL instead of the issuer.
    let mut c = claims_for_endpoint("servicea", "http://localhost:5555/token");
    c.insert("jti".into(), uuid_like().into());
    let r = s
        .grant(
            &sign(&c, &s.a),
            &[("resource", "servicec"), ("client_id", "servicea")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn claims_for_endpoint(client: &str, aud: &str) -> Claims {
    let mut c = claims(client);
    c.insert("aud".into(), aud.into());
    c
}

#[tokio::test]
async fn every_bad_request_gets_its_rfc6749_error_never_a_token() {
    let s = Sts::start(&[]).await;
    let ok = |c: &Claims| sign(c, &s.a);

    // A JSON body instead of a form.
    let r = reply(s.http.post(s.url("/token")).json(&json!({
        "grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
        "client_assertion": ok(&claims("servicea")), "audience": "serviceb"
    })))
    .await;
    assert!(refused(&r, 400, "invalid_request").contains("form"));

    // grant_type missing, or another grant.
    let a = ok(&claims("servicea"));
    let base = [
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &a),
        ("audience", "serviceb"),
    ];
    let r = reply(s.form("/token", &base)).await;
    assert!(refused(&r, 400, "invalid_request").contains("grant_type"));
    let mut with = base.to_vec();
    with.push(("grant_type", "password"));
    refused(
        &reply(s.form("/token", &with)).await,
        400,
        "unsupported_grant_type",
    );

    // No client authentication at all.
    let r = reply(s.form(
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("audience", "serviceb"),
        ],
    ))
    .await;
    refused(&r, 401, "invalid_client");

    // An unknown client (signed with a key, but registered nowhere).
    let r = s.token(&ok(&claims("nobody")), "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));

    // An expired assertion.
    let mut c = claims("servicea");
    c.insert("iat".into(), (now_unix() - 600).into());
    c.insert("exp".into(), (now_unix() - 300).into());
    assert!(
        refused(&s.token(&ok(&c), "serviceb").await, 401, "invalid_client").contains("expired")
    );

    // One that lives too long (over MAX_ASSERTION_LIFETIME_SECS, 3600).
    let mut c = claims("servicea");
    c.insert("exp".into(), (now_unix() + 7200).into());
    assert!(
        refused(&s.token(&ok(&c), "serviceb").await, 401, "invalid_client").contains("too long")
    );

    // The wrong aud.
    let c = claims_for_endpoint("servicea", "https://somewhere-else/");
    assert!(refused(&s.token(&ok(&c), "serviceb").await, 401, "invalid_client").contains("aud"));

    // iss != sub.
    let mut c = claims("servicea");
    c.insert("sub".into(), "other".into());
    refused(&s.token(&ok(&c), "serviceb").await, 401, "invalid_client");

    // No jti.
    let mut c = claims("servicea");
    c.remove("jti");
    assert!(refused(&s.token(&ok(&c), "serviceb").await, 401, "invalid_client").contains("jti"));

    // A replayed jti: the first use works, the second is refused.
    let once = ok(&claims("servicea"));
    assert_eq!(s.token(&once, "serviceb").await.status, 200);
    let r = s.token(&once, "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("already used"));

    // Signed by another client's key (claiming to be servicea).
    let r = s
        .token(&sign(&claims("servicea"), &s.other), "serviceb")
        .await;
    // One answer for every reason a claimed client cannot be believed
    // (item 15 of issue 21); the log says which.
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));

    // alg none, and HS256 keyed with servicea's public key.
    let c = Value::Object(claims("servicea"));
    let none = forge(&json!({"alg": "none", "typ": "JWT"}), &c, Sig::Raw(""));
    refused(&s.token(&none, "serviceb").await, 401, "invalid_client");
    let secret = EncodingKey::from_secret(s.a.public().pem().as_bytes());
    let hs = forge(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &c,
        Sig::By(&secret, Algorithm::HS256),
    );
    assert!(refused(&s.token(&hs, "serviceb").await, 401, "invalid_client").contains("RS256"));

    // Garbage.
    refused(
        &s.token("not.a.jwt", "serviceb").await,
        401,
        "invalid_client",
    );

    // An oversized body.
    let big = "x".repeat(64 * 1024);
    let r = reply(s.form(
        "/token",
        &[("grant_type", "client_credentials"), ("pad", &big)],
    ))
    .await;
    refused(&r, 413, "invalid_request");

    // Two audience parameters.
    let a = ok(&claims("servicea"));
    let r = s
        .grant(&a, &[("audience", "serviceb"), ("audience", "servicec")])
        .await;
    assert!(refused(&r, 400, "invalid_request").contains("more than once"));

    // An audience servicea may not have, an id that is not one, none at all.
    let r = s.token(&ok(&claims("servicea")), "jwt-factory").await;
    assert!(refused(&r, 400, "invalid_target").contains("may not"));
    let r = s.token(&ok(&claims("servicea")), "../etc").await;
    refused(&r, 400, "invalid_target");
    let a = ok(&claims("servicea"));
    let r = s.grant(&a, &[]).await;
    refused(&r, 400, "invalid_request");

    // A registered client without a key cannot authenticate.
    let r = s
        .token(&sign(&claims("serviceb"), &s.other), "servicea")
        .await;
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));

    // A client the factory holds no signing key for: a clear 503, and no
    // key is created on demand.
    let r = s.token(&sign(&claims("other"), &s.other), "serviceb").await;
    assert!(refused(&r, 503, "temporarily_unavailable").contains("/keys/other"));
    let ids: Vec<String> = serde_json::from_value(
        test_support::get_json(&s.http, &s.url("/utils/keys"))
            .await
            .1,
    )
    .unwrap();
    assert_eq!(ids, ["servicea"]);
}

#[tokio::test]
async fn introspection_needs_authentication_and_never_errors_on_a_bad_token() {
    let s = Sts::start(&[]).await;
    let r = s.token(&sign(&claims("servicea"), &s.a), "serviceb").await;
    let token = r.json.unwrap()["access_token"].as_str().unwrap().to_owned();
    let ask = |token: &str| {
        let a = sign(
            &claims_for_endpoint("servicea", "http://localhost:5555/introspect"),
            &s.a,
        );
        let token = token.to_owned();
        let req = s.form(
            "/introspect",
            &[
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
                ("token", &token),
            ],
        );
        async move { reply(req).await }
    };
    let r = ask(&token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "servicea");
    assert_eq!(body["aud"], "serviceb");
    for bad in ["", "garbage", "a.b.c", &token[..token.len() - 4]] {
        let r = ask(bad).await;
        if bad.is_empty() {
            refused(&r, 400, "invalid_request");
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json.unwrap(), json!({ "active": false }));
    }
    // A scenario-1 token is not an access token.
    let s1 = reply(
        s.http
            .post(s.url("/issueToken/servicea"))
            .json(&json!({"aud": "serviceb"})),
    )
    .await
    .text;
    assert_eq!(ask(&s1).await.json.unwrap(), json!({ "active": false }));
    // Without client authentication: 401.
    let r = reply(s.form("/introspect", &[("token", &token)])).await;
    refused(&r, 401, "invalid_client");
}

/// The RFC 8414 fields this test reads, typed: a document missing one, or
/// with one of the wrong type, fails to parse.
#[derive(serde::Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    grant_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

#[tokio::test]
async fn metadata_names_the_endpoints_and_what_they_accept() {
    let s = Sts::start(&[]).await;
    let r = reply(s.http.get(s.url("/.well-known/oauth-authorization-server"))).await;
    assert_eq!(r.status, 200);
    let m: Metadata = serde_json::from_str(&r.text).unwrap();
    assert_eq!(m.issuer, ISSUER);
    for u in [&m.token_endpoint, &m.jwks_uri, &m.introspection_endpoint] {
        let parsed = reqwest::Url::parse(u).unwrap();
        assert_eq!(parsed.scheme(), "http");
    }
    assert!(m.token_endpoint.ends_with("/token"));
    assert_eq!(m.grant_types_supported, ["client_credentials"]);
    assert!(m.response_types_supported.is_empty());
    assert_eq!(m.token_endpoint_auth_methods_supported, ["private_key_jwt"]);
    assert_eq!(
        m.token_endpoint_auth_signing_alg_values_supported,
        ["RS256"]
    );
    let r = reply(s.http.get(s.url("/.well-known/openid-configuration"))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_shortcut_can_be_turned_off() {
    let s = Sts::start(&["--issue-token-shortcut", "false"]).await;
    for path in ["/issueToken/servicea", "/verify/servicea"] {
        let r = reply(s.http.post(s.url(path)).json(&json!({"aud": "serviceb"}))).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("POST /token"), "{}", r.text);
    }
    let r = s.token(&sign(&claims("servicea"), &s.a), "serviceb").await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// An unchanged standard client gets a token: `oauth2`'s
/// `exchange_client_credentials`, with the assertion as the
/// `client_assertion` / `client_assertion_type` extra parameters; and it
/// reads our refusals as RFC 6749 §5.2 errors.
#[tokio::test]
async fn the_oauth2_crate_gets_a_token_and_reads_a_refusal() {
    use oauth2::{
        AuthType, ClientId, RequestTokenError, TokenResponse, TokenUrl, basic::BasicClient,
        basic::BasicErrorResponseType,
    };
    let s = Sts::start(&[]).await;
    let client = BasicClient::new(ClientId::new("servicea".into()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(s.url("/token")).unwrap());
    let http = oauth2_http(s.http.clone());

    let assertion = sign(&claims("servicea"), &s.a);
    let token = client
        .exchange_client_credentials()
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", assertion)
        .add_extra_param("audience", "serviceb")
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(*token.token_type(), oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(300))
    );
    let header = header_of(token.access_token().secret());
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));

    // The same assertion again is a replay: the crate parses the §5.2 error.
    let replay = sign(&claims("servicea"), &s.a);
    let first = client
        .exchange_client_credentials()
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", replay.clone())
        .add_extra_param("audience", "serviceb")
        .request_async(&http)
        .await;
    assert!(first.is_ok());
    let err = client
        .exchange_client_credentials()
        .add_extra_param("client_assertion_type", JWT_BEARER)
        .add_extra_param("client_assertion", replay)
        .add_extra_param("audience", "serviceb")
        .request_async(&http)
        .await
        .unwrap_err();
    match err {
        RequestTokenError::ServerResponse(e) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient);
            assert!(e.error_description().unwrap().contains("already used"));
        }
        other => panic!("not a §5.2 error: {other:?}"),
    }
}

/// A client whose keys are a JWK Set it serves (`jwks_uri`), added to the
/// registry while the factory runs: it authenticates with the key its
/// assertion's `kid` names, and rotates its key without touching the factory.
#[tokio::test]
async fn a_client_with_a_jwks_uri_rotates_its_own_key() {
    use s2s_auth::{KeyId, jwk::public_jwk};
    use std::sync::{Arc, RwLock};
    let s = Sts::start(&[]).await;
    create_key(&s.http, &s.factory, "rotating").await;
    let id = KeyId::parse("rotating").unwrap();
    let alg = SigningAlgorithm::RS256;
    let (k1, k2) = (
        KeyPair::generate(alg).unwrap(),
        KeyPair::generate(alg).unwrap(),
    );
    let (j1, j2) = (
        public_jwk(&id, k1.public(), alg).unwrap(),
        public_jwk(&id, k2.public(), alg).unwrap(),
    );
    let kid1 = j1.common.key_id.clone().unwrap();
    let kid2 = j2.common.key_id.clone().unwrap();
    let served = Arc::new(RwLock::new(JwkSet { keys: vec![j1] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let set = Arc::clone(&served);
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let set = set.read().unwrap().clone();
            async move { axum::Json(set) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The registry gains the client while the factory runs.
    let registry = json!({ "clients": [
        { "client_id": "rotating", "jwks_uri": jwks_url, "audiences": ["serviceb"] },
    ]});
    write_atomic(
        &s._dir.path().join("clients.json"),
        registry.to_string().as_bytes(),
        PUBLIC,
    )
    .unwrap();

    let with_kid = |key: &KeyPair, kid: Option<&str>| {
        jws::sign_with_kid(&claims("rotating"), key, alg, kid).unwrap()
    };
    let r = s.token(&with_kid(&k1, Some(&kid1)), "serviceb").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.token(&with_kid(&k1, None), "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));
    // Key 1 claiming to be key 2's kid: not in the set yet.
    let r = s.token(&with_kid(&k1, Some(&kid2)), "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));

    // The client publishes key 2; after the refetch limit, the factory
    // fetches the set again for the new kid.
    served.write().unwrap().keys.push(j2);
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    let r = s.token(&with_kid(&k2, Some(&kid2)), "serviceb").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A signature by key 1 under key 2's kid is refused.
    let r = s.token(&with_kid(&k1, Some(&kid2)), "serviceb").await;
    // One answer for every reason a claimed client cannot be believed
    // (item 15 of issue 21); the log says which.
    assert!(refused(&r, 401, "invalid_client").contains("cannot authenticate"));
}
