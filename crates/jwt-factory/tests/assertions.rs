//! Client assertions at `POST /token` and `/introspect` (issue 21, items
//! 1, 2, 3, 9, 14, 15 and the `/token` part of 8), against a running
//! factory: numeric dates read one way, single use until `exp + leeway`,
//! a jti cache bounded per client that refused requests do not fill, the
//! RFC 8705 alias as `aud`, one-hour assertions from the `oauth2` crate,
//! one answer for unknown and keyless clients, assertion `typ`s, and
//! bounded form values in refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::{ISSUER, JWT_BEARER, oauth2_http, refused};

use std::{path::Path, sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::Client;
use s2s_auth::{
    KeyPair, SigningAlgorithm,
    files::{PUBLIC, write_atomic},
    jws::{self, Claims},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use test_support::{
    Files, Reply, Running,
    factory::{create_key, now_unix},
    reply, start_factory, start_factory_tls,
};

/// A factory with a registry: servicea (serviceb, servicec), other
/// (serviceb), keyless (registered without a key). It holds signing keys
/// for servicea and other.
struct Sts {
    _dir: TempDir,
    factory: Running,
    http: Client,
    alg: SigningAlgorithm,
    a: KeyPair,
    other: KeyPair,
}

fn write_registry(dir: &Path, a: &KeyPair, other: &KeyPair) -> std::path::PathBuf {
    let (a_pub, o_pub) = (dir.join("a.pem"), dir.join("other.pem"));
    write_atomic(&a_pub, a.public().pem().as_bytes(), PUBLIC).unwrap();
    write_atomic(&o_pub, other.public().pem().as_bytes(), PUBLIC).unwrap();
    let registry = json!({ "clients": [
        { "client_id": "servicea", "key_file": a_pub, "audiences": ["serviceb", "servicec"] },
        { "client_id": "other", "key_file": o_pub, "audiences": ["serviceb"] },
        { "client_id": "keyless", "audiences": ["serviceb"] },
    ]});
    let path = dir.join("clients.json");
    write_atomic(&path, registry.to_string().as_bytes(), PUBLIC).unwrap();
    path
}

impl Sts {
    async fn start(extra: &[&str]) -> Self {
        Self::start_with(SigningAlgorithm::RS256, extra, None).await
    }

    /// With `alg` pinned, and over https with `certs` if given.
    async fn start_with(alg: SigningAlgorithm, extra: &[&str], certs: Option<&Files>) -> Self {
        test_support::init();
        let dir = tempfile::tempdir().unwrap();
        let a = KeyPair::generate(alg).unwrap();
        let other = KeyPair::generate(alg).unwrap();
        let clients = write_registry(dir.path(), &a, &other);
        let mut flags = vec!["--clients-file", clients.to_str().unwrap()];
        flags.extend_from_slice(&["--algorithm", alg.name()]);
        flags.extend_from_slice(extra);
        let keys = dir.path().join("keys");
        let factory = match certs {
            Some(files) => start_factory_tls(&keys, &flags, &files.certs).await,
            None => start_factory(&keys, &flags).await,
        };
        let http = Client::new();
        create_key(&http, &factory, "servicea").await;
        create_key(&http, &factory, "other").await;
        Self {
            _dir: dir,
            factory,
            http,
            alg,
            a,
            other,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.factory.url())
    }

    fn sign(&self, claims: &Claims) -> String {
        jws::sign(claims, &self.a, self.alg).unwrap()
    }

    /// `POST /token` for `audience`, over `http`.
    async fn token_over(
        &self,
        http: &Client,
        base: &str,
        assertion: &str,
        audience: &str,
    ) -> Reply {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("audience", audience),
        ];
        reply(http.post(format!("{base}/token")).form(&form)).await
    }

    async fn token(&self, assertion: &str, audience: &str) -> Reply {
        self.token_over(&self.http, &self.factory.url(), assertion, audience)
            .await
    }

    /// `POST /introspect` with these form parameters after the assertion's.
    async fn introspect(&self, assertion: &str, params: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        form.extend_from_slice(params);
        reply(self.http.post(self.url("/introspect")).form(&form)).await
    }
}

/// Assertion claims: iss = sub = `client`, aud the issuer, 60 s, fresh jti.
fn claims(client: &str) -> Claims {
    let now = now_unix();
    let v = json!({ "iss": client, "sub": client, "aud": ISSUER,
                    "iat": now, "exp": now + 60, "jti": fresh_jti() });
    v.as_object().unwrap().clone()
}

/// `claims(client)` with `name` set to `value`.
fn with(client: &str, name: &str, value: Value) -> Claims {
    let mut c = claims(client);
    c.insert(name.into(), value);
    c
}

fn fresh_jti() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now_unix(), N.fetch_add(1, Ordering::Relaxed))
}

/// A JWS with exactly this header (no `typ` unless it says one).
fn sign_header(header: &Value, claims: &Claims, key: &KeyPair, alg: SigningAlgorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
    );
    let sig = key.sign(alg, message.as_bytes()).unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn ok(r: &Reply) {
    assert_eq!(r.status, 200, "{}: {}", r.what, r.text);
    assert!(
        r.json.as_ref().unwrap()["access_token"].is_string(),
        "{}",
        r.text
    );
}

/// Item 1: `exp`, `iat` and `nbf` are NumericDates, integer or float, read
/// one way; a float `exp` keeps the lifetime cap and single use, and
/// strings, negatives and absurd values are refused saying which claim.
#[tokio::test]
async fn float_huge_and_string_numeric_dates_are_read_one_way() {
    let s = Sts::start(&[]).await;
    let now = now_unix();

    // A float exp, as `time.time() + 60` makes: works once, never twice.
    let float = s.sign(&with("servicea", "exp", json!(now as f64 + 60.5)));
    ok(&s.token(&float, "serviceb").await);
    let r = s.token(&float, "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("already used"));

    // Far future, as a float or as an integer too large for i64: the
    // lifetime cap holds, every time.
    for exp in [
        json!(4_102_444_800.0_f64),
        json!(u64::MAX),
        json!(4_102_444_800_i64),
    ] {
        let a = s.sign(&with("servicea", "exp", exp.clone()));
        for _ in 0..2 {
            let d = refused(&s.token(&a, "serviceb").await, 401, "invalid_client");
            assert!(d.contains("exp"), "exp {exp}: {d}");
        }
    }

    // Not a NumericDate at all: refused, naming the claim.
    let cases = [
        ("exp", json!("9999999999")),
        ("exp", json!(-5)),
        ("exp", json!(1e300)),
        ("iat", json!("0")),
        ("iat", json!(-1.5)),
        ("nbf", json!("now")),
        ("nbf", json!(1e300)),
    ];
    for (name, value) in cases {
        let a = s.sign(&with("servicea", name, value.clone()));
        let d = refused(&s.token(&a, "serviceb").await, 401, "invalid_client");
        assert!(d.contains(name), "{name} {value}: {d}");
    }

    // Floats in iat and nbf are honoured: in the future, refused.
    let a = s.sign(&with("servicea", "iat", json!(now as f64 + 600.5)));
    let d = refused(&s.token(&a, "serviceb").await, 401, "invalid_client");
    assert!(d.contains("iat"), "{d}");
    let a = s.sign(&with("servicea", "nbf", json!(now as f64 + 600.5)));
    let d = refused(&s.token(&a, "serviceb").await, 401, "invalid_client");
    assert!(d.contains("nbf"), "{d}");
    // ... and in the past, accepted.
    let mut c = with("servicea", "nbf", json!(now as f64 - 10.5));
    c.insert("iat".into(), json!(now as f64 - 10.25));
    ok(&s.token(&s.sign(&c), "serviceb").await);
}

/// Item 2: validation accepts an assertion until `exp + leeway`, and its
/// jti is remembered as long.
#[tokio::test]
async fn a_replay_after_exp_within_the_leeway_is_refused() {
    let s = Sts::start(&[]).await;
    let now = now_unix();
    let mut c = claims("servicea");
    c.insert("iat".into(), (now - 60).into());
    c.insert("exp".into(), (now - 5).into());
    let late = s.sign(&c);
    ok(&s.token(&late, "serviceb").await);
    for _ in 0..3 {
        let r = s.token(&late, "serviceb").await;
        assert!(refused(&r, 401, "invalid_client").contains("already used"));
    }
}

/// Item 3: a request refused for its shape or its audience does not use
/// up the assertion's jti: the same assertion then gets a token, once.
#[tokio::test]
async fn refused_requests_do_not_use_up_the_assertion() {
    let s = Sts::start(&[]).await;
    let a = s.sign(&claims("servicea"));
    for _ in 0..3 {
        let r = s.token(&a, "jwt-factory").await;
        assert!(refused(&r, 400, "invalid_target").contains("may not"));
        let r = s.introspect(&a, &[]).await;
        assert!(refused(&r, 400, "invalid_request").contains("token"));
    }
    ok(&s.token(&a, "serviceb").await);
    let r = s.token(&a, "serviceb").await;
    assert!(refused(&r, 401, "invalid_client").contains("already used"));
}

/// Item 3: one client that fills its share of the jti cache is refused
/// (saying so); another client still gets tokens. Three clients are
/// registered: with a total of 40, a share is 13 (the total divided by
/// the clients, below JTI_CACHE_PER_CLIENT), so no two clients at their
/// share can take the third's; with 60, it is JTI_CACHE_PER_CLIENT, 20.
#[tokio::test]
async fn one_client_filling_its_share_does_not_lock_out_another() {
    let s = Sts::start(&["--jti-cache-per-client", "20", "--jti-cache-total", "40"]).await;
    for _ in 0..13 {
        ok(&s.token(&s.sign(&claims("servicea")), "serviceb").await);
    }
    let r = s.token(&s.sign(&claims("servicea")), "serviceb").await;
    let d = refused(&r, 401, "invalid_client");
    assert!(d.contains("its share: 13"), "{d}");

    let s = Sts::start(&["--jti-cache-per-client", "20", "--jti-cache-total", "60"]).await;
    for _ in 0..20 {
        ok(&s.token(&s.sign(&claims("servicea")), "serviceb").await);
    }
    let r = s.token(&s.sign(&claims("servicea")), "serviceb").await;
    let d = refused(&r, 401, "invalid_client");
    assert!(d.contains("too many") && d.contains("servicea"), "{d}");
    for _ in 0..20 {
        let a = jws::sign(&claims("other"), &s.other, s.alg).unwrap();
        ok(&s.token(&a, "serviceb").await);
    }
}

/// Item 3: more fresh assertions than the old 10,000-entry cache held,
/// 32 at a time, every one accepted (EdDSA, so the test is quick).
#[tokio::test]
async fn twelve_thousand_fresh_assertions_are_all_accepted() {
    const N: usize = 12_500;
    const WORKERS: usize = 32;
    let s = Arc::new(Sts::start_with(SigningAlgorithm::EdDSA, &[], None).await);
    let run = async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            let s = Arc::clone(&s);
            tasks.spawn(async move {
                let mut refused = Vec::new();
                for _ in 0..N / WORKERS + 1 {
                    let r = s.token(&s.sign(&claims("servicea")), "serviceb").await;
                    if r.status != 200 {
                        refused.push(format!("{} {}", r.status, r.text));
                    }
                }
                refused
            });
        }
        let mut refused = Vec::new();
        while let Some(r) = tasks.join_next().await {
            refused.extend(r.unwrap());
        }
        refused
    };
    let refused = tokio::time::timeout(Duration::from_secs(400), run)
        .await
        .expect("12,500 requests within 400 s");
    assert!(
        refused.is_empty(),
        "{} of {} refused, first: {:?}",
        refused.len(),
        (N / WORKERS + 1) * WORKERS,
        refused.first()
    );
}

/// Item 14: a one-hour assertion (what popular client libraries sign by
/// default) sent by the `oauth2` crate's client-credentials flow, defaults
/// untouched: a token once, a replay refused; two hours stay refused.
#[tokio::test]
async fn a_one_hour_assertion_through_the_oauth2_crate_works_once() {
    use oauth2::{
        AuthType, ClientId, RequestTokenError, TokenResponse, TokenUrl,
        basic::{BasicClient, BasicErrorResponseType},
    };
    let s = Sts::start(&[]).await;
    let client = BasicClient::new(ClientId::new("servicea".into()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(s.url("/token")).unwrap());
    let http = oauth2_http(s.http.clone());
    let ask = |assertion: String| {
        client
            .exchange_client_credentials()
            .add_extra_param("client_assertion_type", JWT_BEARER)
            .add_extra_param("client_assertion", assertion)
            .add_extra_param("audience", "serviceb")
            .request_async(&http)
    };
    let hour = s.sign(&with("servicea", "exp", json!(now_unix() + 3600)));
    let token = ask(hour.clone()).await.unwrap();
    assert!(!token.access_token().secret().is_empty());
    let reason = |e: RequestTokenError<_, oauth2::basic::BasicErrorResponse>| match e {
        RequestTokenError::ServerResponse(e) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient);
            e.error_description().unwrap().clone()
        }
        other => panic!("not a §5.2 error: {other:?}"),
    };
    assert!(reason(ask(hour).await.unwrap_err()).contains("already used"));
    let two_hours = s.sign(&with("servicea", "exp", json!(now_unix() + 7200)));
    assert!(reason(ask(two_hours).await.unwrap_err()).contains("too long"));
}

/// Item 14: the longest assertion lifetime is a setting.
#[tokio::test]
async fn the_longest_assertion_lifetime_is_configurable() {
    let s = Sts::start(&["--max-assertion-lifetime-secs", "120"]).await;
    let a = s.sign(&with("servicea", "exp", json!(now_unix() + 600)));
    let d = refused(&s.token(&a, "serviceb").await, 401, "invalid_client");
    assert!(d.contains("too long") && d.contains("120"), "{d}");
    ok(&s.token(&s.sign(&claims("servicea")), "serviceb").await);
}

/// Item 9: the mTLS alias the metadata advertises is built from the
/// https listener's settings and accepted as an assertion `aud` over
/// mTLS; an `aud` array naming anything else is refused.
#[tokio::test]
async fn the_mtls_alias_is_an_accepted_aud_and_mixed_aud_arrays_are_refused() {
    let certs = tempfile::tempdir().unwrap();
    let files = Files::generate(certs.path(), None);
    let s = Sts::start_with(SigningAlgorithm::RS256, &[], Some(&files)).await;
    let mtls = s.factory.https_url();
    let meta = test_support::get_json(&s.http, &s.url("/.well-known/oauth-authorization-server"))
        .await
        .1;
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{mtls}/token"),
        "{meta}"
    );
    let as_a = files.client_as("servicea");
    let alias = format!("{mtls}/token");
    let a = s.sign(&with("servicea", "aud", json!(alias)));
    let r = s.token_over(&as_a, &mtls, &a, "serviceb").await;
    ok(&r);
    let both = s.sign(&with("servicea", "aud", json!([ISSUER, alias])));
    ok(&s.token_over(&as_a, &mtls, &both, "serviceb").await);

    for aud in [
        json!([ISSUER, "https://evil.example/token"]),
        json!([alias, "serviceb"]),
        json!([]),
        json!([ISSUER, 5]),
    ] {
        let a = s.sign(&with("servicea", "aud", aud.clone()));
        let d = refused(
            &s.token_over(&as_a, &mtls, &a, "serviceb").await,
            401,
            "invalid_client",
        );
        assert!(d.contains("aud"), "{aud}: {d}");
    }
}

/// Item 9: the alias comes from configuration (`MTLS_PUBLIC_URL`), for a
/// factory clients reach by another name than localhost.
#[tokio::test]
async fn the_mtls_alias_comes_from_configuration() {
    let certs = tempfile::tempdir().unwrap();
    let files = Files::generate(certs.path(), None);
    let flags = ["--mtls-public-url", "https://sts.cluster.example:8443/"];
    let s = Sts::start_with(SigningAlgorithm::RS256, &flags, Some(&files)).await;
    let meta = test_support::get_json(&s.http, &s.url("/.well-known/oauth-authorization-server"))
        .await
        .1;
    let aliases = &meta["mtls_endpoint_aliases"];
    assert_eq!(
        aliases["token_endpoint"],
        "https://sts.cluster.example:8443/token"
    );
    assert_eq!(
        aliases["introspection_endpoint"],
        "https://sts.cluster.example:8443/introspect"
    );
    let aud = json!("https://sts.cluster.example:8443/token");
    let a = s.sign(&with("servicea", "aud", aud));
    ok(&s.token(&a, "serviceb").await);
}

/// Item 15: an unknown client, a client without a key and a client whose
/// key did not sign the assertion get the same answer, so client ids
/// cannot be enumerated.
#[tokio::test]
async fn an_unknown_and_a_keyless_client_get_the_same_answer() {
    let s = Sts::start(&[]).await;
    let unknown = refused(
        &s.token(&s.sign(&claims("nobody")), "serviceb").await,
        401,
        "invalid_client",
    );
    let keyless = refused(
        &s.token(&s.sign(&claims("keyless")), "serviceb").await,
        401,
        "invalid_client",
    );
    // A registered client with a key, and an assertion signed by another
    // key: the same answer again, so a valid client id shows nothing.
    let wrong_key = refused(
        &s.token(&s.sign(&claims("other")), "serviceb").await,
        401,
        "invalid_client",
    );
    assert_eq!(
        unknown.replace("nobody", "X"),
        keyless.replace("keyless", "X")
    );
    assert_eq!(
        unknown.replace("nobody", "X"),
        wrong_key.replace("other", "X")
    );
    assert!(!unknown.contains("unknown") && !keyless.contains("no registered key"));
}

/// Item 15: only client assertions authenticate a client: `typ` absent,
/// `JWT`, or `client-authentication+jwt`; an access token's `at+jwt`,
/// or any other type, is refused.
#[tokio::test]
async fn only_client_assertion_types_are_accepted() {
    let s = Sts::start(&[]).await;
    let alg = s.alg;
    let typed = |typ: Option<&str>| {
        let header = match typ {
            Some(t) => json!({ "alg": alg.name(), "typ": t }),
            None => json!({ "alg": alg.name() }),
        };
        sign_header(&header, &claims("servicea"), &s.a, alg)
    };
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "JWS",
        "dpop+jwt",
        "secevent+jwt",
    ] {
        let d = refused(
            &s.token(&typed(Some(typ)), "serviceb").await,
            401,
            "invalid_client",
        );
        assert!(d.contains("typ"), "{typ}: {d}");
    }
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("client-authentication+jwt"),
        Some("application/client-authentication+jwt"),
    ] {
        ok(&s.token(&typed(typ), "serviceb").await);
    }
}

/// Item 8, `/token` and `/introspect`: a form value of 16 KiB in a
/// refusal is shown bounded (and so logged bounded: the log line is the
/// description).
#[tokio::test]
async fn oversized_form_values_are_bounded_in_refusals() {
    let s = Sts::start(&[]).await;
    let big = format!("\n{}", "x".repeat(15 * 1024));
    let assertion = s.sign(&claims("servicea"));
    let forms: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/token", vec![("grant_type", big.as_str())]),
        (
            "/token",
            vec![
                ("grant_type", "client_credentials"),
                ("client_assertion_type", big.as_str()),
            ],
        ),
        (
            "/token",
            vec![
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
                ("audience", big.as_str()),
            ],
        ),
        ("/token", vec![(big.as_str(), "1"), (big.as_str(), "2")]),
        ("/introspect", vec![("client_assertion_type", big.as_str())]),
    ];
    for (path, form) in forms {
        let r = reply(s.http.post(s.url(path)).form(&form)).await;
        assert!((400..500).contains(&r.status), "{}", r.text);
        let d = r.json.as_ref().unwrap()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(d.len() < 400, "{path}: {} bytes: {d}", d.len());
        assert!(!d.contains('\n'), "{d}");
    }
}
