#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Adversarial tests against the real servers (issue #4).
//!
//! Every hostile token is sent to every path that verifies tokens:
//!
//! | path | verified by | key | `iss` |
//! | --- | --- | --- | --- |
//! | jwt-factory `POST /verify/servicea` | the factory | servicea's factory key | `https://jwt-factory/` |
//! | serviceb/servicec `/scenario1-server`, `/scenario2-server` (http) | the factory, asked by the receiver | same | same |
//! | serviceb/servicec `/scenario3-server`, `/scenario4-server` (https) | the receiver, locally | `scenario-3-keys/jwt-private.pem` | `https://service-issuer` |
//!
//! Each refusal must be a 4xx with a JSON body that says why, and the same
//! server must accept a valid token right after it (one bad token must not
//! poison a cache, a connection or a key). See `docs/security.md`.

use test_support as common;

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use common::{
    ANSWER_WITHIN, Options, Reply, Silent, Stack,
    factory::{dump, public_pem},
    forge::{Sig, b64, forge, forge_raw, pem_der},
    reply,
};
use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
use reqwest::{RequestBuilder, header::AUTHORIZATION};
use serde_json::{Map, Value, json};

type Obj = Map<String, Value>;

// ---------------------------------------------------------------------------
// The verifying paths.

/// A path that verifies a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// jwt-factory `POST /verify/servicea` (aud serviceb, sub servicea).
    Factory,
    /// serviceb `/scenario1-server` (http, via the factory).
    B1,
    /// serviceb `/scenario2-server` (http, via the factory).
    B2,
    /// servicec `/scenario1-server` (http, via the factory).
    C1,
    /// servicec `/scenario2-server` (http, via the factory).
    C2,
    /// serviceb `/scenario3-server` (https, local).
    B3,
    /// serviceb `/scenario4-server` (https, local).
    B4,
    /// servicec `/scenario3-server` (https, local).
    C3,
    /// servicec `/scenario4-server` (https, local).
    C4,
}

use Path::*;

const ALL: [Path; 9] = [Factory, B1, B2, C1, C2, B3, B4, C3, C4];
/// The paths that take the token from an `Authorization` header.
const SERVICES: [Path; 8] = [B1, B2, C1, C2, B3, B4, C3, C4];
/// The receivers that verify locally.
const LOCAL: [Path; 4] = [B3, B4, C3, C4];

impl Path {
    /// The audience the path expects.
    fn receiver(self) -> &'static str {
        match self {
            Factory | B1 | B2 | B3 | B4 => "serviceb",
            C1 | C2 | C3 | C4 => "servicec",
        }
    }

    /// The other receiver: a token for it must not be accepted here.
    fn other_receiver(self) -> &'static str {
        if self.receiver() == "serviceb" {
            "servicec"
        } else {
            "serviceb"
        }
    }

    fn is_local(self) -> bool {
        LOCAL.contains(&self)
    }

    /// Verified by the factory (which picks servicea's key by `kid`).
    fn via_factory(self) -> bool {
        !self.is_local()
    }

    fn issuer(self) -> &'static str {
        if self.is_local() {
            "https://service-issuer"
        } else {
            "https://jwt-factory/"
        }
    }

    /// The longest remaining lifetime the verifier accepts, and its leeway.
    fn max_lifetime_and_leeway(self) -> (i64, i64) {
        if self.is_local() { (30, 5) } else { (3600, 30) }
    }

    fn url(self, s: &Stack) -> String {
        match self {
            Factory => format!("{}/verify/servicea", s.factory.url()),
            B1 => format!("{}/scenario1-server", s.b.url()),
            B2 => format!("{}/scenario2-server", s.b.url()),
            C1 => format!("{}/scenario1-server", s.c.url()),
            C2 => format!("{}/scenario2-server", s.c.url()),
            B3 => format!("{}/scenario3-server", s.b.https_url()),
            B4 => format!("{}/scenario4-server", s.b.https_url()),
            C3 => format!("{}/scenario3-server", s.c.https_url()),
            C4 => format!("{}/scenario4-server", s.c.https_url()),
        }
    }
}

// ---------------------------------------------------------------------------
// Tokens.

fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn now() -> i64 {
    s2s_auth::now_unix()
}

/// An attacker's key pairs.
struct Attacker {
    rsa_pem: String,
    rsa: EncodingKey,
    ec: EncodingKey,
    ed: EncodingKey,
}

impl Attacker {
    fn new() -> Self {
        let pair = s2s_auth::KeyPair::generate(s2s_auth::SigningAlgorithm::RS256).unwrap();
        let rsa_pem = pair.private_pem().to_owned();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Self {
            rsa: EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap(),
            rsa_pem,
            ec: EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
            ed: EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
        }
    }

    /// A self-signed certificate for the attacker's RSA key, DER in base64.
    fn x5c(&self) -> String {
        let kp = rcgen::KeyPair::from_pem(&self.rsa_pem).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["servicea".to_owned()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        STANDARD.encode(cert.der())
    }
}

// ---------------------------------------------------------------------------
// The arena: the real stack, the real keys, and the checks.

struct Arena {
    s: Stack,
    /// servicea's factory key (scenarios 1-2).
    factory_key: EncodingKey,
    /// The factory's public key for servicea, as `/utils/publicKey` publishes it.
    factory_public_pem: String,
    /// servicea's scenario-3 key (scenarios 3-4).
    local_key: EncodingKey,
    local_public_pem: String,
    /// A client like `s.client` that speaks HTTP/1.1 only.
    h1: reqwest::Client,
}

impl Arena {
    async fn start() -> Arena {
        let s = Stack::start(Options::default()).await;
        dump(&s.client, &s.factory).await;
        let factory_private =
            std::fs::read_to_string(s.files.keys.join("servicea-private.pem")).unwrap();
        let factory_public_pem = public_pem(&s.client, &s.factory, "servicea").await;
        let local_private = std::fs::read_to_string(&s.files.private).unwrap();
        let local_public_pem = std::fs::read_to_string(&s.files.public).unwrap();
        let h1 = s.files.client().http1_only().build().unwrap();
        Arena {
            h1,
            factory_key: EncodingKey::from_rsa_pem(factory_private.as_bytes()).unwrap(),
            factory_public_pem,
            local_key: EncodingKey::from_rsa_pem(local_private.as_bytes()).unwrap(),
            local_public_pem,
            s,
        }
    }

    fn key(&self, p: Path) -> &EncodingKey {
        if p.is_local() {
            &self.local_key
        } else {
            &self.factory_key
        }
    }

    /// The key of the other scenario family: right format, wrong key.
    fn other_family_key(&self, p: Path) -> &EncodingKey {
        if p.is_local() {
            &self.factory_key
        } else {
            &self.local_key
        }
    }

    fn public_pem(&self, p: Path) -> &str {
        if p.is_local() {
            &self.local_public_pem
        } else {
            &self.factory_public_pem
        }
    }

    /// The claims a valid token for `p` carries.
    fn claims(p: Path) -> Obj {
        let now = now();
        let Value::Object(claims) = json!({
            "iss": p.issuer(),
            "sub": "servicea",
            "aud": p.receiver(),
            "iat": now,
            "exp": now + 20,
        }) else {
            unreachable!()
        };
        claims
    }

    fn header(alg: Algorithm) -> Obj {
        let Value::Object(h) = json!({ "alg": alg_name(alg), "typ": "JWT" }) else {
            unreachable!()
        };
        h
    }

    /// A token for `p`, signed with `key` under `alg`, after `edit` changed
    /// the header and claims of a valid one.
    fn forge_with(
        p: Path,
        key: &EncodingKey,
        alg: Algorithm,
        edit: impl FnOnce(&mut Obj, &mut Obj),
    ) -> String {
        let mut header = Self::header(alg);
        let mut claims = Self::claims(p);
        edit(&mut header, &mut claims);
        forge(
            &Value::Object(header),
            &Value::Object(claims),
            Sig::By(key, alg),
        )
    }

    /// A token for `p` signed by the right key (RS256), after `edit`.
    fn forge(&self, p: Path, edit: impl FnOnce(&mut Obj, &mut Obj)) -> String {
        Self::forge_with(p, self.key(p), Algorithm::RS256, edit)
    }

    fn valid(&self, p: Path) -> String {
        self.forge(p, |_, _| {})
    }

    /// Sends `token` the way `p` takes it.
    async fn send(&self, p: Path, token: &str) -> Reply {
        let url = p.url(&self.s);
        if p == Factory {
            reply(self.s.client.post(url).json(&json!({
                "token": token, "aud": "serviceb", "sub": "servicea"
            })))
            .await
        } else {
            reply(
                self.s
                    .client
                    .get(url)
                    .header(AUTHORIZATION, format!("Bearer {token}")),
            )
            .await
        }
    }

    /// `token` is accepted on `p`.
    async fn accepted(&self, case: &str, p: Path, token: &str) {
        let r = self.send(p, token).await;
        assert_eq!(r.status, 200, "{case} on {p:?}: {}", r.text);
        let body = r
            .json
            .unwrap_or_else(|| panic!("{case} on {p:?}: not JSON"));
        assert_eq!(body["valid"], true, "{case} on {p:?}: {body}");
        assert_eq!(body["claims"]["sub"], "servicea", "{case} on {p:?}: {body}");
    }

    /// The same server still accepts a valid token.
    async fn still_accepts(&self, case: &str, p: Path) {
        self.accepted(&format!("valid token after {case}"), p, &self.valid(p))
            .await;
    }

    /// Checks a refusal: `status` (or any 4xx but 404/405 when None), a JSON
    /// body whose reason contains one of `says`; then a valid token passes.
    async fn check_refused(
        &self,
        case: &str,
        p: Path,
        r: Reply,
        status: Option<u16>,
        says: &[&str],
    ) {
        match status {
            Some(want) => assert_eq!(r.status, want, "{case} on {p:?}: {}", r.text),
            None => assert!(
                (400..500).contains(&r.status) && r.status != 404 && r.status != 405,
                "{case} on {p:?}: want a 4xx refusal, got {}: {}",
                r.status,
                r.text
            ),
        }
        assert!(
            r.json.is_some(),
            "{case} on {p:?}: body is not JSON: {}",
            r.text
        );
        let reason = r.reason();
        // On the factory's paths the header's `kid` selects among servicea's
        // own keys (see the JWK Set, scenario 5): a `kid` naming none of them
        // is refused before any signature is checked.
        let kid_refusal = p.via_factory()
            && says.contains(&"invalid signature")
            && reason.contains("no key with kid");
        assert!(
            kid_refusal
                || says.is_empty()
                || says.iter().any(|s| reason.contains(&s.to_lowercase())),
            "{case} on {p:?}: reason {reason:?} does not say any of {says:?}"
        );
        // RFC 6750 section 3: the receivers say how to authenticate.
        if p != Factory {
            let want = match r.status {
                401 => Some("Bearer"),
                403 => Some(r#"Bearer error="invalid_token""#),
                _ => None,
            };
            if want.is_some() {
                assert_eq!(
                    r.header("www-authenticate"),
                    want,
                    "{case} on {p:?}: challenge"
                );
            }
        }
        if let Some(body) = &r.json {
            if body.get("valid").is_some() {
                assert_eq!(body["valid"], false, "{case} on {p:?}: {body}");
            }
            if let Some(claims) = body.get("claims") {
                assert_eq!(claims, &json!({}), "{case} on {p:?}: claims leaked");
            }
        }
        self.still_accepts(case, p).await;
    }

    /// `token` is refused on `p` with a 403 that says one of `says`.
    async fn refused(&self, case: &str, p: Path, token: &str, says: &[&str]) {
        let r = self.send(p, token).await;
        self.check_refused(case, p, r, Some(403), says).await;
    }

    /// `make(p)` is refused with a 403 that says one of `says`, on every
    /// path; one case.
    async fn refused_everywhere(
        &self,
        case: &str,
        make: impl Fn(Path) -> String,
        says: &[&str],
    ) -> usize {
        for p in ALL {
            self.refused(case, p, &make(p), says).await;
        }
        1
    }

    /// A request with a custom `Authorization` (or none) to a service path.
    async fn send_with(
        &self,
        p: Path,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Reply {
        assert_ne!(p, Factory);
        reply(build(self.s.client.get(p.url(&self.s)))).await
    }

    /// As [`Arena::send`], over HTTP/1.1 only (the https listeners would
    /// otherwise negotiate HTTP/2, whose header limits are smaller).
    async fn send_h1(&self, p: Path, token: &str) -> Reply {
        let url = p.url(&self.s);
        if p == Factory {
            return self.send(p, token).await;
        }
        reply(
            self.h1
                .get(url)
                .header(AUTHORIZATION, format!("Bearer {token}")),
        )
        .await
    }

    fn factory(&self) -> String {
        self.s.factory.url()
    }
}

/// One raw HTTP/1.1 exchange (for what a well-behaved client will not send):
/// the status and the body. Blocking I/O with timeouts, off the runtime.
async fn raw_http(addr: SocketAddr, request: Vec<u8>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
        s.set_write_timeout(Some(ANSWER_WITHIN)).unwrap();
        // The server may answer (and close) before it read everything.
        let _ = s.write_all(&request);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// Algorithm.

#[tokio::test]
async fn alg_none_in_every_spelling_is_refused_everywhere() {
    let a = &Arena::start().await;
    let mut cases = 0;
    for spelling in ["none", "None", "NONE", "nOnE"] {
        // Unsigned: `header.payload.` (what a `none` library produces).
        cases += a
            .refused_everywhere(
                &format!("alg {spelling}, no signature"),
                |p| {
                    let claims = Value::Object(Arena::claims(p));
                    let header = json!({ "alg": spelling, "typ": "JWT" });
                    forge(&header, &claims, Sig::Raw(""))
                },
                &["invalid algorithm"],
            )
            .await;
        // With the right key's real signature over the same bytes.
        cases += a
            .refused_everywhere(
                &format!("alg {spelling}, signed"),
                |p| {
                    Arena::forge_with(p, a.key(p), Algorithm::RS256, |h, _| {
                        h.insert("alg".into(), spelling.into());
                    })
                },
                &["invalid algorithm"],
            )
            .await;
    }
    // Near misses of the pinned name, and no name at all.
    for (case, alg) in [
        ("alg missing", Value::Null),
        ("alg rs256 (lowercase)", json!("rs256")),
        ("alg as an array", json!(["RS256"])),
        ("alg as a number", json!(256)),
        ("alg empty", json!("")),
        ("alg with a trailing space", json!("RS256 ")),
    ] {
        cases += a
            .refused_everywhere(
                case,
                |p| {
                    a.forge(p, |h, _| {
                        if alg.is_null() {
                            h.remove("alg");
                        } else {
                            h.insert("alg".into(), alg.clone());
                        }
                    })
                },
                &["invalid algorithm"],
            )
            .await;
    }
    // A header with `alg` twice: whichever one a parser keeps, refused.
    for (case, header) in [
        (
            "duplicate alg, none last",
            r#"{"alg":"RS256","typ":"JWT","alg":"none"}"#,
        ),
        (
            "duplicate alg, RS256 last",
            r#"{"alg":"none","typ":"JWT","alg":"RS256"}"#,
        ),
    ] {
        cases += a
            .refused_everywhere(
                case,
                |p| {
                    let claims = Value::Object(Arena::claims(p)).to_string();
                    forge_raw(header, &claims, Sig::By(a.key(p), Algorithm::RS256))
                },
                &["invalid algorithm", "malformed"],
            )
            .await;
    }
    assert_eq!(cases, 16);
}

#[tokio::test]
async fn hmac_keyed_with_the_rsa_public_key_is_refused_everywhere() {
    let a = &Arena::start().await;
    let mut cases = 0;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        for (form, der) in [("PEM", false), ("DER", true)] {
            cases += a
                .refused_everywhere(
                    &format!("{alg:?} keyed with the public key {form}"),
                    |p| {
                        let pem = a.public_pem(p);
                        let secret = if der {
                            pem_der(pem)
                        } else {
                            pem.as_bytes().to_vec()
                        };
                        Arena::forge_with(p, &EncodingKey::from_secret(&secret), alg, |_, _| {})
                    },
                    &["invalid algorithm"],
                )
                .await;
        }
    }
    assert_eq!(cases, 6);
}

#[tokio::test]
async fn other_algorithms_are_refused_even_with_the_right_key() {
    let a = &Arena::start().await;
    let evil = Attacker::new();
    let mut cases = 0;
    // The right RSA key under another RSA algorithm: pinning refuses it.
    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        cases += a
            .refused_everywhere(
                &format!("{alg:?} by the right key"),
                |p| Arena::forge_with(p, a.key(p), alg, |_, _| {}),
                &["invalid algorithm"],
            )
            .await;
    }
    cases += a
        .refused_everywhere(
            "ES256",
            |p| Arena::forge_with(p, &evil.ec, Algorithm::ES256, |_, _| {}),
            &["invalid algorithm"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "EdDSA",
            |p| Arena::forge_with(p, &evil.ed, Algorithm::EdDSA, |_, _| {}),
            &["invalid algorithm"],
        )
        .await;
    // An ES256 signature under an RS256 label.
    cases += a
        .refused_everywhere(
            "ES256 signature labelled RS256",
            |p| {
                Arena::forge_with(p, &evil.ec, Algorithm::ES256, |h, _| {
                    h.insert("alg".into(), "RS256".into());
                })
            },
            &["invalid signature"],
        )
        .await;
    assert_eq!(cases, 7);
}

#[tokio::test]
async fn tokens_signed_by_another_rsa_key_are_refused_everywhere() {
    let a = &Arena::start().await;
    let evil = Attacker::new();
    let mut cases = 0;
    cases += a
        .refused_everywhere(
            "another RSA key, right claims",
            |p| Arena::forge_with(p, &evil.rsa, Algorithm::RS256, |_, _| {}),
            &["invalid signature"],
        )
        .await;
    // The key of the other scenarios: a real key of servicea, wrong place.
    cases += a
        .refused_everywhere(
            "servicea's key from the other scenarios",
            |p| Arena::forge_with(p, a.other_family_key(p), Algorithm::RS256, |_, _| {}),
            &["invalid signature"],
        )
        .await;
    assert_eq!(cases, 2);
}

// ---------------------------------------------------------------------------
// Header parameters.

/// Policy: `kid` never *brings* a key. Local receivers hold one key and
/// ignore `kid`: a token is judged by its signature alone, so a valid one
/// with any string `kid` passes and a forged one fails. The factory uses
/// `kid` only to *select* among servicea's own keys (current and rotated
/// out), so a `kid` naming none of them is refused. A `kid` that is not a
/// string makes the header malformed everywhere.
#[tokio::test]
async fn kid_never_brings_a_key() {
    let a = &Arena::start().await;
    let evil = Attacker::new();
    let kids = [
        "../../etc/passwd",
        "../../../../../../dev/null",
        "/proc/self/environ",
        "' OR '1'='1' --",
        "servicea'; DROP TABLE keys; --",
        "servicec",
        "__proto__",
        "\u{0000}",
        "http://127.0.0.1:1/jwks.json",
        "",
        "x\n2026-11-22T10:00:00Z  INFO token valid: signed by servicea",
        "servicea.nope",
        "..",
    ];
    // Only plain kids (`[A-Za-z0-9_.-]`, as the factory makes them) are
    // looked at; any other is refused as malformed before anything else, so
    // it can neither reach a lookup nor forge a log line.
    let plain = |kid: &str| {
        !kid.is_empty()
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    let mut cases = 0;
    for kid in kids {
        for &p in &ALL {
            let valid = a.forge(p, |h, _| {
                h.insert("kid".into(), kid.into());
            });
            let case = format!("valid token with kid {kid:?}");
            if !plain(kid) {
                let r = a.send(p, &valid).await;
                a.check_refused(&case, p, r, Some(403), &["malformed"])
                    .await;
            } else if p.via_factory() {
                // The factory picks the key by `kid`: one naming none of
                // servicea's keys is refused, whatever the signature.
                let r = a.send(p, &valid).await;
                a.check_refused(&case, p, r, Some(403), &["no key with kid"])
                    .await;
            } else {
                // Local receivers have one key and ignore `kid`.
                a.accepted(&case, p, &valid).await;
            }
        }
        cases += a
            .refused_everywhere(
                &format!("attacker's token with kid {kid:?}"),
                |p| {
                    Arena::forge_with(p, &evil.rsa, Algorithm::RS256, |h, _| {
                        h.insert("kid".into(), kid.into());
                    })
                },
                &["invalid signature", "malformed"],
            )
            .await;
    }
    for kid in [json!(1), json!({ "$ne": null }), json!(["servicea"])] {
        cases += a
            .refused_everywhere(
                &format!("valid token with kid {kid}"),
                |p| {
                    a.forge(p, |h, _| {
                        h.insert("kid".into(), kid.clone());
                    })
                },
                &["malformed"],
            )
            .await;
    }
    assert_eq!(cases, kids.len() + 3);
}

/// `jku` and `x5u` point at a listener of ours: nobody may ever connect.
#[tokio::test]
async fn jku_and_x5u_are_never_fetched() {
    let a = &Arena::start().await;
    let evil = Attacker::new();
    let trip = Silent::start().await;
    let mut cases = 0;
    for param in ["jku", "x5u"] {
        let url = trip.url("/.well-known/jwks.json");
        cases += a
            .refused_everywhere(
                &format!("attacker's token with {param}"),
                |p| {
                    Arena::forge_with(p, &evil.rsa, Algorithm::RS256, |h, _| {
                        h.insert(param.into(), url.clone().into());
                        h.insert("kid".into(), "attacker".into());
                    })
                },
                &["invalid signature"],
            )
            .await;
        // A well-signed token with the parameter: judged by its signature.
        for &p in &ALL {
            let t = a.forge(p, |h, _| {
                h.insert(param.into(), url.clone().into());
            });
            a.accepted(&format!("valid token with {param}"), p, &t)
                .await;
        }
        cases += 1;
    }
    // Every answer above is in: a verifier that fetched would have connected
    // by now. Connect once ourselves and wait until the listener has counted
    // it: connections are accepted in order, so any earlier one is counted too.
    let _control = tokio::net::TcpStream::connect(trip.addr).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while trip.hits() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "tripwire never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(trip.hits(), 1, "a verifier connected to a jku/x5u URL");
    assert_eq!(cases, 4);
}

#[tokio::test]
async fn embedded_jwk_and_x5c_are_not_trusted() {
    let a = &Arena::start().await;
    let evil = Attacker::new();
    let jwk =
        serde_json::to_value(Jwk::from_encoding_key(&evil.rsa, Algorithm::RS256).unwrap()).unwrap();
    let x5c = evil.x5c();
    let mut cases = 0;
    cases += a
        .refused_everywhere(
            "attacker's token with the attacker's jwk",
            |p| {
                Arena::forge_with(p, &evil.rsa, Algorithm::RS256, |h, _| {
                    h.insert("jwk".into(), jwk.clone());
                })
            },
            &["invalid signature"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "attacker's token with the attacker's x5c",
            |p| {
                Arena::forge_with(p, &evil.rsa, Algorithm::RS256, |h, _| {
                    h.insert("x5c".into(), json!([x5c]));
                })
            },
            &["invalid signature"],
        )
        .await;
    // HMAC keyed with a symmetric jwk the token itself brings.
    cases += a
        .refused_everywhere(
            "HS256 with an embedded oct jwk",
            |p| {
                let secret = b"attacker-chosen-secret";
                Arena::forge_with(
                    p,
                    &EncodingKey::from_secret(secret),
                    Algorithm::HS256,
                    |h, _| {
                        h.insert("jwk".into(), json!({ "kty": "oct", "k": b64(secret) }));
                    },
                )
            },
            &["invalid algorithm"],
        )
        .await;
    assert_eq!(cases, 3);
}

#[tokio::test]
async fn unknown_crit_is_refused_even_when_well_signed() {
    let a = &Arena::start().await;
    let mut cases = 0;
    for (case, crit, extra) in [
        (
            "crit [\"x-evil\"]",
            json!(["x-evil"]),
            Some(("x-evil", json!(true))),
        ),
        ("crit naming an absent parameter", json!(["b64"]), None),
        (
            "crit [\"exp\"] (a claim, not a header)",
            json!(["exp"]),
            None,
        ),
        ("empty crit", json!([]), None),
        ("crit not an array", json!("x-evil"), None),
    ] {
        cases += a
            .refused_everywhere(
                case,
                |p| {
                    a.forge(p, |h, _| {
                        h.insert("crit".into(), crit.clone());
                        if let Some((k, v)) = &extra {
                            h.insert((*k).into(), v.clone());
                        }
                    })
                },
                &["crit"],
            )
            .await;
    }
    assert_eq!(cases, 5);
}

// ---------------------------------------------------------------------------
// Claims.

#[tokio::test]
async fn wrong_or_missing_iss_aud_sub_are_refused() {
    let a = &Arena::start().await;
    let mut cases = 0;
    let set = |name: &'static str, v: Value| {
        move |p: Path| {
            a.forge(p, |_, c| {
                if v.is_null() {
                    c.remove(name);
                } else {
                    c.insert(name.into(), v.clone());
                }
            })
        }
    };
    for (case, name, v, says) in [
        (
            "wrong iss",
            "iss",
            json!("https://evil/"),
            "jwt issuer invalid",
        ),
        ("missing iss", "iss", Value::Null, "jwt issuer invalid"),
        ("empty iss", "iss", json!(""), "jwt issuer invalid"),
        ("wrong sub", "sub", json!("serviceb"), "jwt subject invalid"),
        ("missing sub", "sub", Value::Null, "jwt subject invalid"),
        (
            "sub in other case",
            "sub",
            json!("ServiceA"),
            "jwt subject invalid",
        ),
        (
            "wrong aud",
            "aud",
            json!("servicez"),
            "jwt audience invalid",
        ),
        ("missing aud", "aud", Value::Null, "jwt audience invalid"),
        ("empty aud array", "aud", json!([]), "jwt audience invalid"),
        (
            "aud array without the receiver",
            "aud",
            json!(["servicez", "servicey"]),
            "jwt audience invalid",
        ),
    ] {
        cases += a.refused_everywhere(case, set(name, v), &[says]).await;
    }
    // Issuer near misses, per family.
    cases += a
        .refused_everywhere(
            "issuer with a different trailing slash",
            |p| {
                let iss = p.issuer();
                let near = iss
                    .strip_suffix('/')
                    .map_or_else(|| format!("{iss}/"), str::to_owned);
                a.forge(p, |_, c| {
                    c.insert("iss".into(), near.into());
                })
            },
            &["jwt issuer invalid"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "the other family's issuer",
            |p| {
                let other = if p.is_local() {
                    "https://jwt-factory/"
                } else {
                    "https://service-issuer"
                };
                a.forge(p, |_, c| {
                    c.insert("iss".into(), other.into());
                })
            },
            &["jwt issuer invalid"],
        )
        .await;
    // A token for one receiver replayed at the other.
    cases += a
        .refused_everywhere(
            "token for the other receiver",
            |p| {
                a.forge(p, |_, c| {
                    c.insert("aud".into(), p.other_receiver().into());
                })
            },
            &["jwt audience invalid"],
        )
        .await;
    assert_eq!(cases, 13);
}

#[tokio::test]
async fn aud_array_containing_the_receiver_is_accepted() {
    let a = &Arena::start().await;
    for &p in &ALL {
        for aud in [
            json!([p.receiver()]),
            json!(["servicez", p.receiver()]),
            json!([p.other_receiver(), p.receiver()]),
        ] {
            let t = a.forge(p, |_, c| {
                c.insert("aud".into(), aud.clone());
            });
            a.accepted(&format!("aud {aud}"), p, &t).await;
        }
    }
}

#[tokio::test]
async fn lifetime_and_time_claims_are_enforced() {
    let a = &Arena::start().await;
    let mut cases = 0;
    let with = |edit: fn(Path, &mut Obj)| move |p: Path| a.forge(p, |_, c| edit(p, c));
    cases += a
        .refused_everywhere(
            "missing exp",
            with(|_, c| {
                c.remove("exp");
            }),
            &["exp claim required"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "exp ten years ahead",
            with(|_, c| {
                c.insert("exp".into(), (now() + 10 * 365 * 86_400).into());
            }),
            &["lifetime too long"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "exp u64::MAX",
            with(|_, c| {
                c.insert("exp".into(), u64::MAX.into());
            }),
            &["lifetime too long"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "exp a minute past the verifier's maximum lifetime plus leeway",
            with(|p, c| {
                let (max, leeway) = p.max_lifetime_and_leeway();
                c.insert("exp".into(), (now() + max + leeway + 60).into());
            }),
            &["lifetime too long"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "expired beyond the leeway",
            with(|p, c| {
                let (_, leeway) = p.max_lifetime_and_leeway();
                c.insert("iat".into(), (now() - 600).into());
                c.insert("exp".into(), (now() - leeway - 60).into());
            }),
            &["jwt expired"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "nbf beyond the leeway",
            with(|p, c| {
                let (_, leeway) = p.max_lifetime_and_leeway();
                c.insert("nbf".into(), (now() + leeway + 60).into());
            }),
            &["jwt not active"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "iat beyond the leeway",
            with(|p, c| {
                let (_, leeway) = p.max_lifetime_and_leeway();
                c.insert("iat".into(), (now() + leeway + 60).into());
            }),
            &["issued in the future"],
        )
        .await;
    // Within the leeway: accepted (the tolerance is real, not zero).
    for &p in &ALL {
        let t = a.forge(p, |_, c| {
            c.insert("nbf".into(), (now() + 2).into());
            c.insert("iat".into(), (now() + 2).into());
        });
        a.accepted("nbf and iat 2 s ahead (within leeway)", p, &t)
            .await;
        let t = a.forge(p, |_, c| {
            c.insert("exp".into(), (now() - 2).into());
        });
        a.accepted("exp 2 s ago (within leeway)", p, &t).await;
    }
    assert_eq!(cases, 7);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    let a = &Arena::start().await;
    let mut cases = 0;
    for (name, v, says) in [
        // Scalars of the wrong type: the claim is named.
        ("exp", json!("9999999999"), &["exp"][..]),
        ("exp", json!(1e300), &["exp"]),
        ("exp", json!(-1), &["exp"]),
        ("exp", json!(true), &["exp"]),
        ("exp", json!(null), &["exp"]),
        ("aud", json!(42), &["audience"]),
        ("sub", json!(1), &["subject"]),
        ("iss", json!(1), &["issuer"]),
        ("nbf", json!("yesterday"), &["nbf"]),
        ("iat", json!("yesterday"), &["iat"]),
        // Objects and arrays where a string belongs: the parser gives up on
        // the whole payload ("jwt malformed") or names the claim.
        (
            "aud",
            json!({ "serviceb": true, "servicec": true }),
            &["audience", "malformed"],
        ),
        ("aud", json!([42]), &["audience", "malformed"]),
        (
            "sub",
            json!({ "name": "servicea" }),
            &["subject", "malformed"],
        ),
        ("sub", json!(["servicea"]), &["subject", "malformed"]),
    ] {
        cases += a
            .refused_everywhere(
                &format!("{name} = {v}"),
                |p| {
                    a.forge(p, |_, c| {
                        c.insert(name.into(), v.clone());
                    })
                },
                says,
            )
            .await;
    }
    // The payload is not an object; the payload names a claim twice.
    for (case, payload) in [
        ("payload is a JSON array", "[1,2,3]".to_owned()),
        ("payload is a JSON string", "\"servicea\"".to_owned()),
        (
            "aud twice (a parser differential)",
            String::new(), // filled per path below
        ),
    ] {
        cases += a
            .refused_everywhere(
                case,
                |p| {
                    let payload = if payload.is_empty() {
                        let c = Value::Object(Arena::claims(p)).to_string();
                        let aud = format!("\"aud\":\"{}\"", p.receiver());
                        c.replacen(&aud, &format!("\"aud\":\"servicez\",{aud}"), 1)
                    } else {
                        payload.clone()
                    };
                    let header = Value::Object(Arena::header(Algorithm::RS256)).to_string();
                    forge_raw(&header, &payload, Sig::By(a.key(p), Algorithm::RS256))
                },
                &["malformed", "audience"],
            )
            .await;
    }
    assert_eq!(cases, 17);
}

/// RFC 7519 section 4.1.1: `iss` is a single StringOrURI. An array that
/// contains the right issuer is not the right issuer.
#[tokio::test]

async fn iss_as_an_array_is_refused() {
    let a = &Arena::start().await;
    a.refused_everywhere(
        "iss array with the right issuer",
        |p| {
            a.forge(p, |_, c| {
                c.insert("iss".into(), json!([p.issuer(), "https://evil/"]));
            })
        },
        &["issuer"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// Structure.

#[tokio::test]
async fn tampered_and_misshapen_tokens_are_refused() {
    let a = &Arena::start().await;
    let mut cases = 0;
    let parts = |t: &str| -> Vec<String> { t.split('.').map(str::to_owned).collect() };
    // Tampered payload under the original signature: a longer exp.
    cases += a
        .refused_everywhere(
            "tampered payload",
            |p| {
                let t = parts(&a.valid(p));
                let mut claims = Arena::claims(p);
                claims.insert("exp".into(), (now() + 25).into());
                format!(
                    "{}.{}.{}",
                    t[0],
                    b64(Value::Object(claims).to_string()),
                    t[2]
                )
            },
            &["invalid signature"],
        )
        .await;
    // Tampered header (a kid added after signing).
    cases += a
        .refused_everywhere(
            "tampered header",
            |p| {
                let t = parts(&a.valid(p));
                let mut h = Arena::header(Algorithm::RS256);
                h.insert("kid".into(), "x".into());
                format!("{}.{}.{}", b64(Value::Object(h).to_string()), t[1], t[2])
            },
            &["invalid signature"],
        )
        .await;
    // Another valid token's signature.
    cases += a
        .refused_everywhere(
            "signature of another token",
            |p| {
                let t = parts(&a.valid(p));
                let other = parts(&a.forge(p, |_, c| {
                    c.insert("jti".into(), "other".into());
                }));
                format!("{}.{}.{}", t[0], t[1], other[2])
            },
            &["invalid signature"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "empty signature",
            |p| {
                let t = parts(&a.valid(p));
                format!("{}.{}.", t[0], t[1])
            },
            &["invalid signature", "malformed"],
        )
        .await;
    cases += a
        .refused_everywhere(
            "signature truncated by one byte",
            |p| {
                let t = a.valid(p);
                t[..t.len() - 2].to_owned()
            },
            &["invalid signature", "malformed"],
        )
        .await;
    type Shape = fn(&[String]) -> String;
    let shapes: [(&str, Shape); 12] = [
        ("2 segments", |t| format!("{}.{}", t[0], t[1])),
        ("1 segment", |t| t[1].clone()),
        ("4 segments", |t| {
            format!("{}.{}.{}.{}", t[0], t[1], t[2], t[2])
        }),
        ("5 segments (JWE-shaped)", |t| {
            format!("{}..{}.{}.{}", t[0], t[1], t[2], t[2])
        }),
        ("trailing dot", |t| format!("{}.{}.{}.", t[0], t[1], t[2])),
        ("only dots", |_| "..".to_owned()),
        ("bad base64 in the header", |t| {
            format!("!!{}.{}.{}", t[0], t[1], t[2])
        }),
        ("bad base64 in the payload", |t| {
            format!("{}.*{}*.{}", t[0], t[1], t[2])
        }),
        ("bad base64 in the signature", |t| {
            format!("{}.{}.{}~~", t[0], t[1], t[2])
        }),
        ("padded base64 header", |t| {
            format!("{}==.{}.{}", t[0], t[1], t[2])
        }),
        ("header is not JSON", |t| {
            format!("{}.{}.{}", b64("{alg:RS256"), t[1], t[2])
        }),
        ("header is a JSON array", |t| {
            format!("{}.{}.{}", b64("[\"RS256\"]"), t[1], t[2])
        }),
    ];
    for (case, shape) in shapes {
        cases += a
            .refused_everywhere(
                case,
                |p| shape(&parts(&a.valid(p))),
                &["malformed", "invalid algorithm", "invalid signature"],
            )
            .await;
    }
    // Payload not JSON, signed by the right key.
    cases += a
        .refused_everywhere(
            "payload is not JSON",
            |p| {
                let header = Value::Object(Arena::header(Algorithm::RS256)).to_string();
                let payload = "{\"sub\":\"servicea\",";
                forge_raw(&header, payload, Sig::By(a.key(p), Algorithm::RS256))
            },
            &["malformed"],
        )
        .await;
    assert_eq!(cases, 18);
}

/// A token well over `MAX_TOKEN_LEN` (8 KiB) but under the factory's body
/// limit and HTTP/2's 16 KiB header list: refused by size everywhere, before
/// any cryptography (401 from a receiver's bearer check, 403 from a verifier).
#[tokio::test]
async fn a_12k_token_is_refused_as_too_large_everywhere() {
    let a = &Arena::start().await;
    for &p in &ALL {
        let t = a.forge(p, |_, c| {
            c.insert("pad".into(), "x".repeat(9 * 1024).into());
        });
        let r = a.send(p, &t).await;
        a.check_refused("12 KiB token", p, r, None, &["too large"])
            .await;
    }
}

/// A 100 KB token (a huge claim, or a huge JWT header), over HTTP/1.1: a
/// 4xx that says "too large" on every path (the factory's 16 KiB body limit,
/// or the size check before any parsing); never a 5xx, never a hang.
///
/// At commit 978d5c5 the receivers that ask the factory forwarded it, got the
/// factory's 413 and answered 502 "jwt-factory unavailable"; the bearer
/// extractor's size check (`crates/app/src/bearer.rs`) refuses it first.
#[tokio::test]
async fn a_100k_token_is_a_4xx_on_every_path() {
    let a = &Arena::start().await;
    for (case, big_header) in [("100 KB claims", false), ("100 KB JWT header", true)] {
        for &p in &ALL {
            let t = a.forge(p, |h, c| {
                let pad: Value = "x".repeat(100 * 1024).into();
                if big_header {
                    h.insert("x-pad".into(), pad);
                } else {
                    c.insert("pad".into(), pad);
                }
            });
            let r = a.send_h1(p, &t).await;
            a.check_refused(case, p, r, None, &["too large", "length limit"])
                .await;
        }
    }
}

/// Over HTTP/2 (what the https listeners negotiate), a header list past
/// 16 KiB is the HTTP layer's business: 431, or past 64 KiB a GOAWAY
/// (ENHANCE_YOUR_CALM). Either way a refusal, quickly, and the server
/// keeps serving.
#[tokio::test]
async fn a_100k_token_over_http2_is_refused_by_the_http_layer() {
    let a = &Arena::start().await;
    for size in [20 * 1024, 100 * 1024] {
        for &p in &LOCAL {
            let t = a.forge(p, |_, c| {
                c.insert("pad".into(), "x".repeat(size).into());
            });
            let r = tokio::time::timeout(
                ANSWER_WITHIN,
                a.s.client
                    .get(p.url(&a.s))
                    .header(AUTHORIZATION, format!("Bearer {t}"))
                    .send(),
            )
            .await
            .expect("hang on a large token over HTTP/2");
            // Past 16 KiB: 431; past 4 x 16 KiB: GOAWAY (ENHANCE_YOUR_CALM).
            match r {
                Ok(r) => {
                    assert_eq!(r.version(), reqwest::Version::HTTP_2);
                    assert!(
                        size < 64 * 1024 && r.status() == 431,
                        "{size} B token on {p:?}: {}",
                        r.status()
                    );
                }
                Err(e) => assert!(
                    size > 64 * 1024 && format!("{e:?}").contains("GoAway"),
                    "{size} B token on {p:?}: {e:?}"
                ),
            }
            a.still_accepts("a large token over HTTP/2", p).await;
        }
    }
}

/// An HTTP header block over hyper's limits (1 MiB of `Authorization`):
/// refused by the HTTP layer before the app runs: over HTTP/1.1 a 431 (empty
/// body, hyper's), over HTTP/2 a GOAWAY; never a 5xx, never a hang; the
/// server keeps serving.
#[tokio::test]
async fn an_oversize_header_block_is_refused_by_the_http_layer() {
    let a = &Arena::start().await;
    let huge = format!("Bearer {}", "A".repeat(1024 * 1024));
    for &p in &SERVICES {
        for (client, h2) in [(&a.h1, false), (&a.s.client, p.is_local())] {
            let r = tokio::time::timeout(
                ANSWER_WITHIN,
                client
                    .get(p.url(&a.s))
                    .header(AUTHORIZATION, huge.as_str())
                    .send(),
            )
            .await
            .expect("hang on a 1 MiB header");
            // HTTP/1.1: 431. HTTP/2: past 4 x 16 KiB, GOAWAY (ENHANCE_YOUR_CALM).
            match r {
                Ok(r) => assert!(
                    !h2 && r.status() == 431,
                    "1 MiB Authorization on {p:?} (h2: {h2}): {}",
                    r.status()
                ),
                Err(e) => assert!(
                    h2 && format!("{e:?}").contains("GoAway"),
                    "1 MiB Authorization on {p:?} (h2: {h2}): {e:?}"
                ),
            }
            a.still_accepts("1 MiB Authorization header", p).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The Authorization header.

#[tokio::test]
async fn authorization_header_policy() {
    let a = &Arena::start().await;
    let mut cases = 0;
    for &p in &SERVICES {
        let t = a.valid(p);
        let basic = STANDARD.encode(format!("servicea:{t}"));
        let refused: Vec<(&str, Vec<String>)> = vec![
            ("empty Authorization", vec![String::new()]),
            ("Bearer with no token", vec!["Bearer".into()]),
            ("Bearer and a space", vec!["Bearer ".into()]),
            ("token without a scheme", vec![t.clone()]),
            (
                "Basic carrying the JWT in base64",
                vec![format!("Basic {}", STANDARD.encode(&t))],
            ),
            ("Basic user:JWT", vec![format!("Basic {basic}")]),
            ("Basic carrying the raw JWT", vec![format!("Basic {t}")]),
            ("Token scheme", vec![format!("Token {t}")]),
            ("Bearer, token, junk", vec![format!("Bearer {t} junk")]),
            (
                "two Authorization headers",
                vec![format!("Bearer {t}"), format!("Bearer {t}")],
            ),
            (
                "Bearer then Basic",
                vec![format!("Bearer {t}"), "Basic eDp5".into()],
            ),
        ];
        for (case, values) in refused {
            cases += 1;
            let r = a
                .send_with(p, |mut rb| {
                    for v in &values {
                        rb = rb.header(AUTHORIZATION, v.as_str());
                    }
                    rb
                })
                .await;
            a.check_refused(case, p, r, Some(401), &["token", "authorization header"])
                .await;
        }
        // Only in the query string (RFC 6750 section 2.3 is not supported).
        let r = a
            .send_with(p, |rb| rb.query(&[("access_token", t.as_str())]))
            .await;
        a.check_refused(
            "token in ?access_token=",
            p,
            r,
            Some(401),
            &["no token provided"],
        )
        .await;
        cases += 1;
        // Non-ASCII bytes in the header.
        let r = a
            .send_with(p, |rb| {
                rb.header(
                    AUTHORIZATION,
                    reqwest::header::HeaderValue::from_bytes(
                        format!("Bearer {t}\u{e9}").as_bytes(),
                    )
                    .unwrap(),
                )
            })
            .await;
        a.check_refused("non-ASCII in Authorization", p, r, Some(401), &["token"])
            .await;
        cases += 1;
        // The scheme is case-insensitive (RFC 7235 section 2.1).
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let r = a
                .send_with(p, |rb| rb.header(AUTHORIZATION, format!("{scheme} {t}")))
                .await;
            assert_eq!(r.status, 200, "scheme {scheme} on {p:?}: {}", r.text);
            cases += 1;
        }
    }
    assert_eq!(cases, 16 * SERVICES.len());
}

// ---------------------------------------------------------------------------
// Factory input.

#[tokio::test]
async fn factory_refuses_hostile_key_ids_on_every_endpoint() {
    let a = &Arena::start().await;
    let f = a.factory();
    let long = "a".repeat(10 * 1024);
    let ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "..%2F..%2F..%2Ftmp%2Fpwned",
        "..%5C..%5Cwindows",
        "servicea%00",
        "%00",
        "a.b",
        "%C3%A9",
        "%F0%9F%94%91",
        "servicea%20",
        long.as_str(),
        &"b".repeat(65),
    ];
    let mut cases = 0;
    for id in ids {
        for (method, path) in [
            ("GET", "keys"),
            ("POST", "keys"),
            ("POST", "issueToken"),
            ("POST", "verify"),
            ("GET", "utils/publicKey"),
        ] {
            let url = format!("{f}/{path}/{id}");
            let rb = if method == "GET" {
                a.s.client.get(&url)
            } else {
                a.s.client.post(&url).json(&json!({
                    "token": a.valid(Factory), "aud": "serviceb", "sub": "servicea"
                }))
            };
            let r = reply(rb).await;
            assert_eq!(r.status, 400, "{method} {path}/{id:.40}: {}", r.text);
            assert!(
                r.reason().contains("invalid key id"),
                "{method} {path}/{id:.40}: {}",
                r.text
            );
        }
        cases += 1;
    }
    // A raw `..` path, which a URL library would normalise away.
    let (status, body) = raw_http(
        a.s.factory.addr,
        b"GET /keys/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            .to_vec(),
    )
    .await;
    assert_eq!(status, 404, "no route has a `..` segment: {body}");
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");
    cases += 1;

    // Nothing was created outside, or oddly named inside, the keys folder.
    dump(&a.s.client, &a.s.factory).await;
    let mut names: Vec<String> = std::fs::read_dir(a.s.path("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["servicea-private.pem", "servicea-public.pem"]);
    let mut top: Vec<String> = std::fs::read_dir(a.s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            "authz.json",
            "certs",
            "clients.json",
            "keys",
            "scenario-3-keys"
        ]
    );
    let r = reply(a.s.client.get(format!("{f}/utils/keys"))).await;
    assert_eq!(r.json.unwrap(), json!(["servicea"]));
    a.still_accepts("hostile key ids", Factory).await;
    assert_eq!(cases, ids.len() + 1);
}

/// `__proto__` and friends are valid ids (`[A-Za-z0-9_-]`): they must behave
/// exactly like any other id, not like a property of some object.
#[tokio::test]
async fn proto_like_key_ids_are_ordinary_ids() {
    let a = &Arena::start().await;
    let f = a.factory();
    let c = &a.s.client;
    let mut known = vec!["servicea".to_owned()];
    for id in ["__proto__", "constructor", "prototype", "hasOwnProperty"] {
        // Unknown: 404 everywhere, like any unknown id.
        let r = reply(c.get(format!("{f}/utils/publicKey/{id}"))).await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
        assert!(r.reason().contains("key not found"), "{id}: {}", r.text);
        let r = reply(c.post(format!("{f}/issueToken/{id}"))).await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
        let r = reply(c.post(format!("{f}/verify/{id}")).json(&json!({
            "token": a.valid(Factory), "aud": "serviceb", "sub": "servicea"
        })))
        .await;
        assert_eq!(r.status, 404, "{id}: {}", r.text);
        assert_eq!(
            r.json.unwrap(),
            json!({ "valid": false, "error": "key not found" })
        );
        let r = reply(c.get(format!("{f}/utils/keys"))).await;
        assert_eq!(
            r.json.unwrap(),
            json!(known),
            "{id} is not listed before it exists"
        );

        // Created: a key of its own, which does not verify servicea's tokens.
        let r = reply(c.get(format!("{f}/keys/{id}"))).await;
        assert_eq!(r.status, 200, "{id}: {}", r.text);
        known.push(id.to_owned());
        known.sort();
        let r = reply(
            c.post(format!("{f}/issueToken/{id}"))
                .header("content-type", "application/json")
                .body(r#"{"aud":"serviceb"}"#),
        )
        .await;
        assert_eq!(r.status, 200, "{id}: {}", r.text);
        let token = r.text;
        let r = reply(c.post(format!("{f}/verify/{id}")).json(&json!({
            "token": token, "aud": "serviceb", "sub": id
        })))
        .await;
        assert_eq!(r.status, 200, "{id}: {}", r.text);
        assert_eq!(r.json.unwrap()["claims"]["sub"], id);
        // Its token is not servicea's, whatever sub it claims.
        let r = a.send(Factory, &token).await;
        a.check_refused(
            &format!("{id}'s token at /verify/servicea"),
            Factory,
            r,
            Some(403),
            &["invalid signature"],
        )
        .await;
        let r = reply(c.post(format!("{f}/verify/servicea")).json(&json!({
            "token": a.valid(Factory), "aud": "serviceb", "sub": "servicea"
        })))
        .await;
        assert_eq!(r.status, 200);
    }
    dump(c, &a.s.factory).await;
    assert!(a.s.path("keys/__proto__-private.pem").is_file());
    let r = reply(c.get(format!("{f}/utils/keys"))).await;
    assert_eq!(
        r.json.unwrap(),
        json!([
            "__proto__",
            "constructor",
            "hasOwnProperty",
            "prototype",
            "servicea"
        ])
    );
}

#[tokio::test]
async fn factory_refuses_bad_claims_bodies() {
    let a = &Arena::start().await;
    let f = a.factory();
    let cases: Vec<(&[u8], &str)> = vec![
        (b"[]", "json object"),
        (b"[{\"aud\":\"serviceb\"}]", "json object"),
        (b"\"serviceb\"", "json object"),
        (b"42", "json object"),
        (b"null", "json object"),
        (b"true", "json object"),
        (b"not json", "not valid json"),
        (b"{", "not valid json"),
        (b"{\"aud\":\"serviceb\"} trailing", "not valid json"),
        (b"\xff\xfe{}", "not valid json"),
        (b"{\"aud\":\"serviceb\",}", "not valid json"),
        (b"{\"exp\": 99999999999}", "set by the factory"),
        (b"{\"exp\": \"never\"}", "set by the factory"),
        (b"{\"iat\": 0}", "set by the factory"),
        (b"{\"iat\": \"yesterday\"}", "set by the factory"),
        (b"{\"alg\": \"none\"}", "header parameter"),
        (b"{\"kid\": \"../../etc/passwd\"}", "header parameter"),
        (b"{\"jku\": \"http://127.0.0.1:1/\"}", "header parameter"),
        (b"{\"jwk\": {}}", "header parameter"),
        (b"{\"x5u\": \"http://127.0.0.1:1/\"}", "header parameter"),
        (b"{\"x5c\": []}", "header parameter"),
        (b"{\"crit\": [\"exp\"]}", "header parameter"),
        (b"{\"typ\": \"none\"}", "header parameter"),
        (b"{\"cty\": \"JWT\"}", "header parameter"),
        (b"{\"aud\": 5}", "wrong type"),
        (b"{\"aud\": []}", "wrong type"),
        (b"{\"aud\": [1]}", "wrong type"),
        (b"{\"aud\": {\"serviceb\": 1}}", "wrong type"),
        (b"{\"sub\": {\"$ne\": null}}", "wrong type"),
        (b"{\"sub\": null}", "wrong type"),
        (b"{\"iss\": 1}", "wrong type"),
        (b"{\"iss\": [\"https://jwt-factory/\"]}", "wrong type"),
        (b"{\"nbf\": \"tomorrow\"}", "wrong type"),
        (b"{\"nbf\": -1}", "wrong type"),
        (b"{\"nbf\": 1e300}", "wrong type"),
        (b"{\"jti\": 7}", "wrong type"),
    ];
    for (body, says) in &cases {
        let r = reply(
            a.s.client
                .post(format!("{f}/issueToken/servicea"))
                .header("content-type", "application/json")
                .body(body.to_vec()),
        )
        .await;
        let shown = String::from_utf8_lossy(body);
        assert_eq!(r.status, 400, "{shown}: {}", r.text);
        assert!(r.json.is_some(), "{shown}: not JSON: {}", r.text);
        assert!(r.reason().contains(says), "{shown}: {}", r.text);
        // The factory is unharmed: it still issues a token that verifies.
        let r = reply(
            a.s.client
                .post(format!("{f}/issueToken/servicea"))
                .header("content-type", "application/json")
                .body(r#"{"aud":"serviceb"}"#),
        )
        .await;
        assert_eq!(r.status, 200, "after {shown}: {}", r.text);
        a.accepted(&format!("issued after {shown}"), Factory, &r.text)
            .await;
    }
    assert_eq!(cases.len(), 36);
}

#[tokio::test]
async fn factory_verify_refuses_bad_request_bodies() {
    let a = &Arena::start().await;
    let url = format!("{}/verify/servicea", a.factory());
    let t = a.valid(Factory);
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not valid json"),
        (b"".to_vec(), "not valid json"),
        (b"[]".to_vec(), "no token specified"),
        (b"null".to_vec(), "no token specified"),
        (
            json!({ "token": 5, "aud": "serviceb", "sub": "servicea" })
                .to_string()
                .into_bytes(),
            "no token specified",
        ),
        (
            json!({ "token": [t], "aud": "serviceb", "sub": "servicea" })
                .to_string()
                .into_bytes(),
            "no token specified",
        ),
        (
            json!({ "token": t, "sub": "servicea" })
                .to_string()
                .into_bytes(),
            "no audience specified",
        ),
        (
            json!({ "token": t, "aud": ["serviceb"], "sub": "servicea" })
                .to_string()
                .into_bytes(),
            "no audience specified",
        ),
        (
            json!({ "token": t, "aud": "serviceb", "sub": "" })
                .to_string()
                .into_bytes(),
            "no subject specified",
        ),
    ];
    for (body, says) in &bodies {
        let r = reply(
            a.s.client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone()),
        )
        .await;
        let shown = String::from_utf8_lossy(body);
        a.check_refused(
            &format!("verify body {shown:.60}"),
            Factory,
            r,
            Some(400),
            &[says],
        )
        .await;
    }
    assert_eq!(bodies.len(), 9);
}

#[tokio::test]
async fn factory_bodies_over_16_kib_are_413_json() {
    let a = &Arena::start().await;
    let f = a.factory();
    let limit = jwt_factory::MAX_BODY_BYTES;
    // A claims object of exactly `len` bytes.
    let claims_of = |len: usize| {
        let skeleton = r#"{"aud":"serviceb","pad":""}"#.len();
        format!(
            r#"{{"aud":"serviceb","pad":"{}"}}"#,
            "x".repeat(len - skeleton)
        )
    };
    let r = reply(
        a.s.client
            .post(format!("{f}/issueToken/servicea"))
            .header("content-type", "application/json")
            .body(claims_of(limit)),
    )
    .await;
    // Exactly the limit passes the body limit, but the token it would make
    // is over what any verifier accepts: a 400 that says so, not a 413.
    assert_eq!(
        r.status, 400,
        "exactly the limit is read, and refused for its size: {:.200}",
        r.text
    );
    assert!(r.text.contains("claims too large"), "{:.200}", r.text);
    for (case, url, body) in [
        (
            "issueToken, limit + 1",
            format!("{f}/issueToken/servicea"),
            claims_of(limit + 1),
        ),
        (
            "verify, limit + 1",
            format!("{f}/verify/servicea"),
            "x".repeat(limit + 1),
        ),
    ] {
        let r = reply(
            a.s.client
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(r.status, 413, "{case}: {}", r.text);
        assert!(r.json.is_some(), "{case}: not JSON: {}", r.text);
        assert!(r.reason().contains("length limit"), "{case}: {}", r.text);
    }
    // Chunked, with no Content-Length to trust: the limit still holds.
    let mut req = b"POST /issueToken/servicea HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                    Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    let body = claims_of(limit * 4);
    for chunk in body.as_bytes().chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_http(a.s.factory.addr, req).await;
    assert_eq!(status, 413, "chunked 64 KiB: {body}");
    a.still_accepts("oversize bodies", Factory).await;
}
