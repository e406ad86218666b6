#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Mutual TLS with SPIFFE workload identities (issue 13), against the real
//! stack: real servers on port 0, real TLS handshakes, certificates from a
//! real local CA in a temp dir.
//!
//! What it proves:
//!
//! - Scenario 7: serviceb authorizes callers by the SPIFFE ID of their
//!   client certificate. servicea is allowed (200, its principal); servicec
//!   is authenticated but not allowed (403 naming it, the path and who is
//!   allowed); no certificate is a 401.
//! - The `PeerAuthentication` modes: `permissive` accepts a handshake
//!   without a client certificate (scenario 3's one-way TLS keeps working),
//!   `strict` refuses it (scenario 3 then fails with a 502 that says why).
//! - Certificates the handshake must refuse, in both modes: from another
//!   CA, expired. Certificates from our CA that name no single workload (two
//!   URI SANs, none, another trust domain) pass the handshake and are a 401
//!   that says why.
//! - Scenario 8 (RFC 8705): the token is bound to servicea's certificate
//!   (`cnf.x5t#S256`); replayed with another certificate, with none, or at
//!   a plain-http receiver it is refused (401 `invalid_token`, RFC 6750
//!   challenge); an unbound token is refused where binding is required; a
//!   malformed `cnf` is refused; the factory will not bind a token to a
//!   certificate that names another workload. A plain bearer token, by
//!   contrast, replays.
//! - Certificates re-issued while running are used without a restart, by
//!   servicea (client) and serviceb (server); missing or broken certificate
//!   files are errors that name the file and `gen-certs`.

use test_support as common;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use app::{
    caller::{Cached, Grant},
    error::AppError,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{
    ANSWER_WITHIN, Options, Reply, Stack,
    factory::{dump, payload},
    forge::{Sig, forge},
    get_json, reply, servicea_state,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, string::Ia5String,
};
use rustls::pki_types::{CertificateDer, pem::PemObject as _};
use s2s_web::{
    identity::thumbprint,
    outbound::error_chain,
    pki::{CertFiles, Profile, Validity},
    tls::{MtlsMode, ServerTls},
};
use serde_json::{Value, json};
use time::OffsetDateTime;

const PRINCIPAL_A: &str = "cluster.local/ns/default/sa/servicea";
const PRINCIPAL_C: &str = "cluster.local/ns/default/sa/servicec";
const SPIFFE_A: &str = "spiffe://cluster.local/ns/default/sa/servicea";
const BOTH_MODES: [MtlsMode; 2] = [MtlsMode::Permissive, MtlsMode::Strict];

// ---------------------------------------------------------------------------
// The stack and its URLs.

/// A stack whose receivers ask for client certificates in `mode`.
async fn stack(mode: MtlsMode) -> Stack {
    Stack::start(Options {
        bc_args: vec!["--mtls-mode".into(), mode.to_string()],
        ..Options::default()
    })
    .await
}

/// `path` on serviceb's https (mTLS) listener.
fn b_https(s: &Stack, path: &str) -> String {
    format!("{}{path}", s.b.https_url())
}

/// `path` on serviceb's plain-http listener.
fn b_http(s: &Stack, path: &str) -> String {
    format!("{}{path}", s.b.url())
}

/// The SHA-256 thumbprint (`x5t#S256`) of the certificate in `pem_file`.
fn thumbprint_of(pem_file: &Path) -> String {
    thumbprint(&CertificateDer::from_pem_file(pem_file).expect("a PEM certificate"))
}

/// `name`'s workload certificate's thumbprint, as it is on disk now.
fn workload_thumbprint(s: &Stack, name: &str) -> String {
    thumbprint_of(&s.files.workload(name).0)
}

// ---------------------------------------------------------------------------
// Clients and handshakes.

/// A client that trusts the stack's CA and presents `cert_pem` (with its
/// `key_pem`).
fn client_presenting(s: &Stack, cert_pem: &str, key_pem: &str) -> reqwest::Client {
    let identity = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
        .expect("a certificate and key");
    s.files.client().identity(identity).build().unwrap()
}

/// `GET url` must fail before any HTTP answer (the TLS handshake is
/// refused); the error chain, printed for the log.
async fn handshake_refused(client: &reqwest::Client, url: &str) -> String {
    let sent = tokio::time::timeout(ANSWER_WITHIN, client.get(url).send())
        .await
        .unwrap_or_else(|_| panic!("GET {url}: no answer in time"));
    match sent {
        Ok(r) => panic!(
            "GET {url}: an HTTP answer ({}) where the handshake should have been refused: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ),
        Err(e) => {
            let chain = error_chain(&e);
            eprintln!("GET {url} refused: {chain}");
            chain
        }
    }
}

/// The handshake with `url` was refused with a TLS alert whose chain
/// contains `alert` (the rustls name of the alert the server sent).
async fn refused_with_alert(client: &reqwest::Client, url: &str, alert: &str) {
    let chain = handshake_refused(client, url).await;
    assert!(
        chain.contains("alert") && chain.contains(alert),
        "GET {url}: the error names the TLS alert {alert}: {chain}"
    );
}

/// The certificate serviceb's https listener presents in a new handshake
/// (DER), read with a bare rustls client trusting the stack's CA alone.
async fn served_certificate(ca: &Path, addr: SocketAddr) -> Vec<u8> {
    use rustls::{ClientConfig, ClientConnection, RootCertStore, pki_types::ServerName};
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    // Blocking socket I/O: off the runtime the servers run on.
    tokio::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
        }
        conn.peer_certificates().expect("a server certificate")[0].to_vec()
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// Certificates made here.

/// The stack's CA, loaded from `certs/ca.pem` and `certs/ca-key.pem`.
fn stack_issuer(s: &Stack) -> Issuer<'static, KeyPair> {
    let ca_pem = std::fs::read_to_string(s.files.ca()).unwrap();
    let ca_key = std::fs::read_to_string(s.files.certs.join("ca-key.pem")).unwrap();
    Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap()
}

/// A client certificate (clientAuth, `cA=false`) signed by the stack's CA,
/// with these SANs and dates: its PEM and its key's PEM.
fn client_cert(s: &Stack, sans: Vec<SanType>, validity: Validity) -> (String, String) {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name.push(DnType::CommonName, "test");
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &stack_issuer(s)).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn uri(id: &str) -> SanType {
    SanType::URI(Ia5String::try_from(id).unwrap())
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(Ia5String::try_from(name).unwrap())
}

/// Re-issues `name`'s workload certificate under the stack's CA, as
/// `gen-certs` would; the new certificate's thumbprint.
fn reissue_workload(s: &Stack, name: &str) -> String {
    let old = workload_thumbprint(s, name);
    s2s_web::pki::issue_workload(
        &CertFiles::in_dir(&s.files.certs),
        name,
        &stack_issuer(s),
        &Profile::default(),
    )
    .unwrap();
    let new = workload_thumbprint(s, name);
    assert_ne!(old, new, "{name}'s certificate was re-issued");
    new
}

// ---------------------------------------------------------------------------
// Scenario 7 and the answers of serviceb.

/// serviceb's `/scenario7-server` with `client`: status and body.
async fn scenario7_server(s: &Stack, client: &reqwest::Client) -> (u16, Value) {
    get_json(client, &b_https(s, "/scenario7-server")).await
}

/// A 401 `unauthenticated` whose message contains every one of `says`.
fn assert_unauthenticated(case: &str, (status, body): &(u16, Value), says: &[&str]) {
    assert_eq!(*status, 401, "{case}: {body}");
    assert_eq!(body["error"], "unauthenticated", "{case}: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    for word in says {
        assert!(msg.contains(word), "{case}: {msg:?} does not say {word:?}");
    }
}

/// servicea's `/scenario7` is a 200 for servicea's principal, with the
/// thumbprint of the certificate servicea presented; that thumbprint.
async fn scenario7_allows_servicea(s: &Stack) -> String {
    let (status, body) = s.get_a("/scenario7").await;
    assert_eq!(status, 200, "scenario7: {body}");
    assert_eq!(body["authorized"], true, "{body}");
    assert_eq!(body["principal"], PRINCIPAL_A, "{body}");
    assert_eq!(body["spiffe_id"], SPIFFE_A, "{body}");
    body["x5t#S256"].as_str().expect("x5t#S256").to_owned()
}

// ---------------------------------------------------------------------------
// Scenario 8: tokens, and their answers.

/// servicea's state as the stack's servicea is configured, but presenting
/// `workload`'s certificate and key in mTLS.
fn servicea_presenting(s: &Stack, workload: &str) -> app::caller::State {
    let (cert, _key) = s.files.workload(workload);
    let mut args = s.files.servicea_flags(s.alg, &s.factory.url());
    // The key is found beside the certificate (NAME-key.pem).
    let at = args
        .iter()
        .position(|a| a == "--workload-cert-path")
        .unwrap()
        + 1;
    args[at] = cert.to_str().unwrap().to_owned();
    args.extend(["--jwt-factory-endpoint-https".into(), s.factory.https_url()]);
    servicea_state(&args)
}

/// A token for serviceb from the factory's `/token`, asked as servicea
/// presenting `workload`'s certificate.
async fn token_for_serviceb(
    s: &Stack,
    workload: &str,
    grant: Grant,
) -> Result<Arc<Cached>, AppError> {
    servicea_presenting(s, workload)
        .token("serviceb", grant)
        .await
}

/// A token for serviceb, asked by servicea with its own certificate.
async fn servicea_token(s: &Stack, grant: Grant) -> String {
    token_for_serviceb(s, "servicea", grant)
        .await
        .unwrap_or_else(|e| panic!("{grant:?} token: {e}"))
        .token
        .clone()
}

/// `GET url` with `token` as a bearer token, through `client`.
async fn send_token(client: &reqwest::Client, url: &str, token: &str) -> Reply {
    reply(client.get(url).bearer_auth(token)).await
}

/// `r` is 200 `valid: true`.
fn assert_accepted(case: &str, r: &Reply) {
    assert_eq!(r.status, 200, "{case}: {}: {}", r.what, r.text);
    let body = r.json.as_ref().expect("a JSON body");
    assert_eq!(body["valid"], true, "{case}: {body}");
}

/// `r` is a 401 `invalid_token` with RFC 6750's challenge, whose
/// `error_description` contains `why`.
fn assert_binding_refused(case: &str, r: &Reply, why: &str) {
    assert_eq!(r.status, 401, "{case}: {}: {}", r.what, r.text);
    let body = r.json.as_ref().expect("a JSON body");
    assert_eq!(body["error"], "invalid_token", "{case}: {body}");
    assert_eq!(body["valid"], false, "{case}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(why),
        "{case}: {description:?} does not say {why:?}"
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#),
        "{case}: the RFC 6750 challenge"
    );
}

/// The JSON header of a compact JWS.
fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// `token` (one of the factory's access tokens) with a `cnf` claim set to
/// `cnf`, signed again with the factory's own key: header (and its `kid`)
/// and other claims kept.
async fn rebound(s: &Stack, token: &str, cnf: Value) -> String {
    dump(&s.client, &s.factory).await;
    let pem = std::fs::read(s.files.keys.join("servicea-private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut claims = payload(token);
    claims["cnf"] = cnf;
    forge(&header(token), &claims, Sig::By(&key, Algorithm::RS256))
}

// ---------------------------------------------------------------------------
// Scenario 7: authorization by identity.

#[tokio::test]
async fn scenario7_allows_servicea_forbids_servicec_and_needs_a_certificate() {
    let s = stack(MtlsMode::Permissive).await;
    let x5t = scenario7_allows_servicea(&s).await;
    assert_eq!(x5t, workload_thumbprint(&s, "servicea"), "servicea's cert");

    // Straight to serviceb with servicea's certificate: the same.
    let (status, body) = scenario7_server(&s, &s.files.client_as("servicea")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["principal"], PRINCIPAL_A, "{body}");

    // servicec: authenticated, not allowed.
    let (status, body) = scenario7_server(&s, &s.files.client_as("servicec")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");
    assert_eq!(body["principal"], PRINCIPAL_C, "{body}");
    assert_eq!(body["path"], "/scenario7-server", "{body}");
    assert_eq!(body["allowed_principals"], json!([PRINCIPAL_A]), "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{PRINCIPAL_C} may not call /scenario7-server"))
            && msg.contains(PRINCIPAL_A),
        "names the caller, the path and who is allowed: {msg}"
    );

    // No certificate: permissive lets the handshake through, the path
    // refuses.
    let none = scenario7_server(&s, &s.client).await;
    assert_unauthenticated(
        "no certificate",
        &none,
        &["/scenario7-server needs a client certificate", "none"],
    );
}

#[tokio::test]
async fn permissive_mode_keeps_one_way_tls_working_for_scenario3() {
    let s = stack(MtlsMode::Permissive).await;
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 200, "scenario 3 in permissive mode: {body}");
    assert_eq!(body["valid"], true, "{body}");
}

#[tokio::test]
async fn strict_mode_refuses_handshakes_without_a_certificate() {
    let s = stack(MtlsMode::Strict).await;
    // No client certificate: no HTTP answer at all, the handshake fails
    // (TLS 1.3: the server's CertificateRequired alert).
    refused_with_alert(
        &s.client,
        &b_https(&s, "/scenario7-server"),
        "CertificateRequired",
    )
    .await;

    // servicea presents its certificate: scenarios 7 and 8 work.
    scenario7_allows_servicea(&s).await;
    let (status, body) = s.get_a("/scenario8").await;
    assert_eq!(status, 200, "scenario 8 in strict mode: {body}");

    // Scenario 3 is one-way TLS: serviceb now refuses it, and servicea
    // says why.
    let (status, body) = s.get_a("/scenario3").await;
    assert_eq!(status, 502, "scenario 3 in strict mode: {body}");
    let msg = body["message"].as_str().unwrap_or_default();
    eprintln!("scenario 3 in strict mode: {msg}");
    assert!(msg.contains("serviceb"), "names the peer: {msg}");
    assert!(
        msg.contains("CertificateRequired"),
        "says serviceb wants a client certificate: {msg}"
    );
}

// ---------------------------------------------------------------------------
// Certificates the handshake refuses, and those that name no workload.

#[tokio::test]
async fn a_client_certificate_from_another_ca_fails_the_handshake_in_both_modes() {
    let other = common::files::other_ca();
    let (cert, key) = CertFiles::in_dir(other.path()).workload("servicea");
    let (cert, key) = (
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    );
    for mode in BOTH_MODES {
        let s = stack(mode).await;
        let client = client_presenting(&s, &cert, &key);
        eprintln!("{mode}:");
        refused_with_alert(&client, &b_https(&s, "/scenario7-server"), "UnknownCA").await;
    }
}

#[tokio::test]
async fn an_expired_client_certificate_fails_the_handshake_in_both_modes() {
    let now = OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    for mode in BOTH_MODES {
        let s = stack(mode).await;
        let (cert, key) = client_cert(&s, vec![uri(SPIFFE_A)], expired);
        let client = client_presenting(&s, &cert, &key);
        eprintln!("{mode}:");
        refused_with_alert(
            &client,
            &b_https(&s, "/scenario7-server"),
            "CertificateExpired",
        )
        .await;
    }
}

#[tokio::test]
async fn certificates_from_our_ca_that_name_no_single_workload_are_401_saying_why() {
    let s = stack(MtlsMode::Permissive).await;
    let cases = [
        (
            "two URI SANs",
            vec![
                uri(SPIFFE_A),
                uri("spiffe://cluster.local/ns/default/sa/serviceb"),
            ],
            "has 2 URI SANs",
        ),
        ("no URI SAN", vec![dns("localhost")], "has 0 URI SANs"),
        (
            "another trust domain",
            vec![uri("spiffe://example.org/ns/default/sa/servicea")],
            r#"in trust domain "example.org", not "cluster.local""#,
        ),
    ];
    for (case, sans, why) in cases {
        let (cert, key) = client_cert(&s, sans, Validity::default());
        let answer = scenario7_server(&s, &client_presenting(&s, &cert, &key)).await;
        assert_unauthenticated(
            case,
            &answer,
            &["/scenario7-server needs a workload identity", why],
        );
    }
    // Control: the same code making a certificate with servicea's one
    // SPIFFE ID gets in, so the refusals above are the names.
    let (cert, key) = client_cert(&s, vec![uri(SPIFFE_A)], Validity::default());
    let (status, body) = scenario7_server(&s, &client_presenting(&s, &cert, &key)).await;
    assert_eq!(status, 200, "control: {body}");
    assert_eq!(body["principal"], PRINCIPAL_A, "{body}");
}

// ---------------------------------------------------------------------------
// Scenario 8: certificate-bound tokens.

#[tokio::test]
async fn scenario8_token_is_bound_to_servicea_certificate() {
    let s = stack(MtlsMode::Permissive).await;
    let (status, body) = s.get_a("/scenario8").await;
    assert_eq!(status, 200, "scenario8: {body}");
    assert_eq!(body["valid"], true, "{body}");
    let claims = &body["claims"];
    assert_eq!(claims["client_id"], "servicea", "{body}");
    assert_eq!(claims["aud"], "serviceb", "{body}");
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        workload_thumbprint(&s, "servicea"),
        "bound to the thumbprint of certs/servicea.pem: {body}"
    );
    // RFC 8705 §3.3 and §5: the metadata says so, and where.
    let (status, meta) = s
        .get(&s.factory, "/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(
        meta["tls_client_certificate_bound_access_tokens"], true,
        "{meta}"
    );
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{}/token", s.factory.https_url()),
        "{meta}"
    );
}

#[tokio::test]
async fn a_bound_token_works_only_with_its_certificate_while_a_bearer_token_replays() {
    let s = stack(MtlsMode::Permissive).await;
    let bound = servicea_token(&s, Grant::Bound).await;
    let bearer = servicea_token(&s, Grant::Bearer).await;
    assert!(payload(&bound).get("cnf").is_some(), "bound: {bound}");
    assert!(payload(&bearer).get("cnf").is_none(), "bearer: {bearer}");
    let (as_a, as_c) = (s.files.client_as("servicea"), s.files.client_as("servicec"));
    let b8 = b_https(&s, "/scenario8-server");
    let b6 = b_http(&s, "/scenario6-server");

    let stolen = send_token(&as_c, &b8, &bound).await;
    assert_binding_refused(
        "stolen, servicec's certificate",
        &stolen,
        "bound to another certificate",
    );
    let no_cert = send_token(&s.client, &b8, &bound).await;
    assert_binding_refused("stolen, no certificate", &no_cert, "presented none");
    let plain = send_token(&s.client, &b6, &bound).await;
    assert_binding_refused("bound, at plain http", &plain, "presented none");
    let unbound = send_token(&as_a, &b8, &bearer).await;
    assert_binding_refused("bearer at /scenario8-server", &unbound, "not bound");

    // With servicea's own certificate: accepted.
    assert_accepted(
        "bound, servicea's certificate",
        &send_token(&as_a, &b8, &bound).await,
    );
    // The lesson: a bearer token replays, from anyone.
    for replay in 0..2 {
        let r = send_token(&s.client, &b6, &bearer).await;
        assert_accepted(&format!("bearer replay {replay}"), &r);
    }
}

#[tokio::test]
async fn a_malformed_cnf_thumbprint_is_refused_saying_so() {
    let s = stack(MtlsMode::Permissive).await;
    let bearer = servicea_token(&s, Grant::Bearer).await;
    let as_a = s.files.client_as("servicea");
    let b8 = b_https(&s, "/scenario8-server");

    // Control: re-signed with a correct cnf, the forged token is accepted,
    // so the refusal below is the cnf and nothing else.
    let right = json!({ "x5t#S256": workload_thumbprint(&s, "servicea") });
    let good = rebound(&s, &bearer, right).await;
    assert_accepted("control", &send_token(&as_a, &b8, &good).await);

    let bad = rebound(&s, &bearer, json!({ "x5t#S256": "not-a-thumbprint" })).await;
    let why = "not a base64url SHA-256 thumbprint";
    let at_8 = send_token(&as_a, &b8, &bad).await;
    assert_binding_refused("malformed cnf at /scenario8-server", &at_8, why);
    let at_6 = send_token(&s.client, &b_http(&s, "/scenario6-server"), &bad).await;
    assert_binding_refused("malformed cnf at /scenario6-server", &at_6, why);
}

#[tokio::test]
async fn the_factory_will_not_bind_a_token_to_another_workload_certificate() {
    let s = stack(MtlsMode::Permissive).await;
    match token_for_serviceb(&s, "servicec", Grant::Bound).await {
        Ok(token) => panic!("a token bound to servicec's certificate: {}", token.token),
        Err(AppError::TokenRefused {
            upstream,
            error,
            description,
        }) => {
            assert_eq!(upstream, 401, "{error}: {description}");
            assert_eq!(error, "invalid_client", "{description}");
            assert!(
                description.contains(&format!(
                    "client certificate names {PRINCIPAL_C}, not client servicea"
                )),
                "names the certificate's workload and the client: {description}"
            );
        }
        Err(other) => panic!("expected invalid_client from the factory, got: {other}"),
    }
}

// ---------------------------------------------------------------------------
// Certificate files: re-read without restart; missing or broken.

#[tokio::test]
async fn a_reissued_servicea_certificate_is_presented_without_restart() {
    let s = stack(MtlsMode::Permissive).await;
    let before = scenario7_allows_servicea(&s).await;
    assert_eq!(before, workload_thumbprint(&s, "servicea"));

    let new = reissue_workload(&s, "servicea");
    assert_eq!(
        scenario7_allows_servicea(&s).await,
        new,
        "serviceb saw the new certificate"
    );
    // Scenario 8's token is bound to the new certificate, not the cached
    // one bound to the old.
    let (status, body) = s.get_a("/scenario8").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["claims"]["cnf"]["x5t#S256"], new, "{body}");
}

#[tokio::test]
async fn a_reissued_serviceb_certificate_is_served_without_restart() {
    let s = stack(MtlsMode::Permissive).await;
    let (cert, _) = s.files.workload("serviceb");
    let addr = s.b.https.unwrap();
    let served = served_certificate(&s.files.ca(), addr).await;
    assert_eq!(thumbprint(&served), thumbprint_of(&cert), "before");

    let new = reissue_workload(&s, "serviceb");
    let served = served_certificate(&s.files.ca(), addr).await;
    assert_eq!(
        thumbprint(&served),
        new,
        "the next handshake has the new one"
    );
    // And it still works end to end.
    scenario7_allows_servicea(&s).await;
}

#[tokio::test]
async fn a_receiver_listener_with_a_missing_or_broken_certificate_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    common::files::gen_certs(dir.path());
    let (cert, key) = CertFiles::in_dir(dir.path()).workload("serviceb");
    let tls = ServerTls {
        cert,
        key,
        client_ca: dir.path().join("ca.pem"),
        mode: MtlsMode::Strict,
    };
    assert!(
        s2s_web::tls::server_config(&tls).await.is_ok(),
        "control: the files as gen-certs wrote them"
    );
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "not a certificate").unwrap();
    let cases = [
        (
            "missing certificate",
            ServerTls {
                cert: dir.path().join("nowhere.pem"),
                ..tls.clone()
            },
            "nowhere.pem",
        ),
        (
            "missing client CA",
            ServerTls {
                client_ca: dir.path().join("no-ca.pem"),
                ..tls.clone()
            },
            "no-ca.pem",
        ),
        (
            "broken certificate",
            ServerTls {
                cert: broken,
                ..tls.clone()
            },
            "broken.pem",
        ),
    ];
    for (case, tls, file) in cases {
        let msg = match s2s_web::tls::server_config(&tls).await {
            Ok(_) => panic!("{case}: the listener started"),
            Err(e) => format!("{e:#}"),
        };
        eprintln!("{case}: {msg}");
        assert!(
            msg.contains(file) && msg.contains("gen-certs"),
            "{case}: names {file} and gen-certs: {msg}"
        );
    }
}

#[tokio::test]
async fn servicea_without_a_usable_workload_certificate_is_503_naming_the_file() {
    let s = stack(MtlsMode::Permissive).await;
    scenario7_allows_servicea(&s).await;
    let (cert, _) = s.files.workload("servicea");
    let good = std::fs::read(&cert).unwrap();
    let path = cert.to_str().unwrap();

    std::fs::remove_file(&cert).unwrap();
    for case in ["missing", "broken"] {
        if case == "broken" {
            std::fs::write(&cert, "not a certificate").unwrap();
        }
        let (status, body) = s.get_a("/scenario7").await;
        assert_eq!(status, 503, "certificate {case}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        eprintln!("certificate {case}: {msg}");
        assert!(
            msg.contains(path) && msg.contains("gen-certs"),
            "certificate {case}: names the file and gen-certs: {msg}"
        );
    }

    // Put back: used again without a restart.
    std::fs::write(&cert, good).unwrap();
    scenario7_allows_servicea(&s).await;
}
