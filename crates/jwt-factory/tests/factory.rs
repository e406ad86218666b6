#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests: the real jwt-factory over HTTP (see `test_support::factory`).

use test_support::factory as common;

use std::{fs, os::unix::fs::PermissionsExt};

use common::{
    Factory, ISSUER, assert_token, create_key, decode_pem, dump, error_message, file_names,
    iso_millis, issue, issue_request, now_unix, payload, public_pem, refused, verify,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use test_support::{
    forge::{Sig, edit_header, forge_raw, pem_der},
    json_reply, reply,
};

/// Decodes `token` with `jsonwebtoken` alone, using the PEM the factory
/// publishes: nothing of the factory's own verification code is involved.
fn independent_decode(pem: &str, token: &str, aud: &str) -> Value {
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).expect("published PEM parses");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies independently")
        .claims
}

/// Key file names a dump may legitimately produce.
fn is_valid_key_file(name: &str) -> bool {
    let id = name
        .strip_suffix("-private.pem")
        .or_else(|| name.strip_suffix("-public.pem"));
    id.is_some_and(|id| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

#[test]
fn iso_helper_matches_node_format() {
    assert_eq!(iso_millis(1_696_281_603), "2023-10-02T21:20:03.000Z");
    assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso_millis(951_782_400), "2000-02-29T00:00:00.000Z");
}

// ---------------------------------------------------------------- /keys

#[tokio::test]
async fn keys_get_and_post_create_and_replace() {
    let (f, http) = Factory::with_client().await;

    let first = create_key(&http, &f, "servicea").await;
    let pem = decode_pem(&first);
    assert!(pem.contains("PUBLIC KEY"), "{pem}");
    DecodingKey::from_rsa_pem(pem.as_bytes()).expect("an RSA public key");

    let (status, body) = json_reply(http.post(f.url("/keys/servicea"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = body["publicKey"].as_str().expect("publicKey").to_owned();
    decode_pem(&second);
    assert_ne!(first, second, "POST /keys must replace the key");

    // The published key is the replacement.
    assert_eq!(public_pem(&http, &f, "servicea").await, decode_pem(&second));

    let third = create_key(&http, &f, "servicea").await;
    assert_ne!(second, third, "GET /keys must replace the key too");
    assert_eq!(public_pem(&http, &f, "servicea").await, decode_pem(&third));
}

// ---------------------------------------------------------------- /issueToken

#[tokio::test]
async fn issue_token_verifies_independently_with_defaults() {
    let (f, http) = Factory::with_key("servicea").await;
    let pem = public_pem(&http, &f, "servicea").await;

    let before = now_unix();
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    let after = now_unix();

    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));

    let claims = independent_decode(&pem, &token, "serviceb");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "servicea");
    assert_eq!(claims["aud"], "serviceb");
    let iat = claims["iat"].as_i64().expect("iat integer");
    let exp = claims["exp"].as_i64().expect("exp integer");
    assert_eq!(exp - iat, 3600);
    assert!((before..=after).contains(&iat), "iat {iat} not now");
}

#[tokio::test]
async fn issue_token_body_overrides_iss_and_sub() {
    let (f, http) = Factory::with_key("servicea").await;
    let pem = public_pem(&http, &f, "servicea").await;

    let body = json!({
        "aud": "servicec",
        "iss": "https://someone-else/",
        "sub": "custom-subject",
        "scope": ["read", "write"],
    });
    let token = issue(&http, &f, "servicea", "", &body).await;
    let claims = independent_decode(&pem, &token, "servicec");
    assert_eq!(claims["iss"], "https://someone-else/");
    assert_eq!(claims["sub"], "custom-subject");
    assert_eq!(claims["aud"], "servicec");
    assert_eq!(claims["scope"], json!(["read", "write"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn issue_token_expired_flag() {
    let (f, http) = Factory::with_key("servicea").await;
    let body = json!({ "aud": "serviceb" });

    let now = now_unix();
    let expired = payload(&issue(&http, &f, "servicea", "?expired=1", &body).await);
    let exp = expired["exp"].as_i64().unwrap();
    assert!(exp < now, "expired=1: exp {exp} should be before {now}");
    assert_eq!(exp - expired["iat"].as_i64().unwrap(), 3600);

    for q in ["?expired=0", "?expired=false", ""] {
        let now = now_unix();
        let claims = payload(&issue(&http, &f, "servicea", q, &body).await);
        let exp = claims["exp"].as_i64().unwrap();
        assert!(
            exp > now + 3000,
            "{q:?}: exp {exp} should be ~1 h ahead of {now}"
        );
    }
}

#[tokio::test]
async fn issue_token_empty_body_is_ok() {
    let (f, http) = Factory::with_key("servicea").await;

    let r = reply(issue_request(&http, &f, "servicea", "", None)).await;
    let claims = payload(&assert_token(r));
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "servicea");
    assert!(claims.get("aud").is_none(), "{claims}");
}

#[tokio::test]
async fn issue_token_non_json_body_is_400_json() {
    let (f, http) = Factory::with_key("servicea").await;

    let msg = error_message(
        http.post(f.url("/issueToken/servicea"))
            .header("content-type", "application/json")
            .body("aud=serviceb"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.contains("JSON"), "{msg}");
}

#[tokio::test]
async fn issue_token_json_array_body_is_400() {
    let (f, http) = Factory::with_key("servicea").await;

    let msg = error_message(
        issue_request(&http, &f, "servicea", "", Some(&json!(["aud", "serviceb"]))),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.contains("object"), "{msg}");
}

#[tokio::test]
async fn issue_token_body_with_exp_or_iat_is_400() {
    let (f, http) = Factory::with_key("servicea").await;

    for claim in ["exp", "iat"] {
        let body = json!({ "aud": "serviceb", claim: now_unix() + 999_999 });
        let msg = error_message(
            issue_request(&http, &f, "servicea", "", Some(&body)),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(msg.contains(claim), "{claim}: {msg}");
    }
}

#[tokio::test]
async fn issue_token_body_with_header_parameter_is_400() {
    let (f, http) = Factory::with_key("servicea").await;

    for (name, value) in [
        ("alg", json!("none")),
        ("kid", json!("other")),
        ("crit", json!(["x"])),
    ] {
        let body = json!({ "aud": "serviceb", name: value });
        let msg = error_message(
            issue_request(&http, &f, "servicea", "", Some(&body)),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            msg.contains(name) && msg.contains("header"),
            "{name}: {msg}"
        );
    }
}

#[tokio::test]
async fn issue_token_aud_of_wrong_type_is_400() {
    let (f, http) = Factory::with_key("servicea").await;

    for aud in [
        json!(42),
        json!([]),
        json!([1, 2]),
        json!({ "a": 1 }),
        json!(null),
    ] {
        let msg = error_message(
            issue_request(&http, &f, "servicea", "", Some(&json!({ "aud": aud }))),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(msg.contains("aud") && msg.contains("type"), "{aud}: {msg}");
    }
    // A list of strings is a valid audience.
    issue(
        &http,
        &f,
        "servicea",
        "",
        &json!({ "aud": ["serviceb", "servicec"] }),
    )
    .await;
}

#[tokio::test]
async fn issue_token_unknown_key_is_404_json() {
    let (f, http) = Factory::with_client().await;

    let msg = error_message(
        issue_request(&http, &f, "nobody", "", Some(&json!({ "aud": "serviceb" }))),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        msg.contains("key not found") && msg.contains("nobody"),
        "{msg}"
    );
}

#[tokio::test]
async fn issue_token_oversize_body_is_413_and_oversize_token_400() {
    let (f, http) = Factory::with_key("servicea").await;

    let body = json!({ "aud": "serviceb", "pad": "x".repeat(17 * 1024) });
    let msg = error_message(
        issue_request(&http, &f, "servicea", "", Some(&body)),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(msg.contains("limit"), "{msg}");

    // Just under the body limit is read, but makes a token over the 8 KiB
    // every verifier accepts: refused, with the reason.
    let body = json!({ "aud": "serviceb", "pad": "x".repeat(15 * 1024) });
    let msg = error_message(
        issue_request(&http, &f, "servicea", "", Some(&body)),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.contains("claims too large"), "{msg}");

    // Claims that fit in a verifiable token are fine.
    let body = json!({ "aud": "serviceb", "pad": "x".repeat(5 * 1024) });
    issue(&http, &f, "servicea", "", &body).await;
}

// ---------------------------------------------------------------- /verify

#[tokio::test]
async fn verify_valid_token() {
    let (f, http) = Factory::with_key("servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["valid"], true);
    let claims = &body["claims"];
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "servicea");
    assert_eq!(claims["aud"], "serviceb");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(claims, &payload(&token));
}

#[tokio::test]
async fn verify_expired_token() {
    let (f, http) = Factory::with_key("servicea").await;
    let token = issue(
        &http,
        &f,
        "servicea",
        "?expired=1",
        &json!({ "aud": "serviceb" }),
    )
    .await;
    let exp = payload(&token)["exp"].as_i64().unwrap();

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "TokenExpiredError", "{body}");
    assert_eq!(err["message"], "jwt expired", "{body}");
    let at = err["expiredAt"].as_str().expect("expiredAt string");
    assert!(at.ends_with(".000Z"), "{at}");
    assert_eq!(at, iso_millis(exp));
}

#[tokio::test]
async fn verify_wrong_audience() {
    let (f, http) = Factory::with_key("servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    let (status, body) = verify(&http, &f, "servicea", &token, "servicec", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "JsonWebTokenError");
    assert_eq!(err["message"], "jwt audience invalid. expected: servicec");
}

#[tokio::test]
async fn verify_token_without_aud_claim() {
    let (f, http) = Factory::with_key("servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({})).await;

    let (status, body) = verify(&http, &f, "servicea", &token, "servicec", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["message"], "jwt audience invalid. expected: servicec");
}

#[tokio::test]
async fn verify_wrong_subject() {
    let (f, http) = Factory::with_key("servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "serviceb").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "JsonWebTokenError");
    assert_eq!(err["message"], "jwt subject invalid. expected: serviceb");
}

#[tokio::test]
async fn verify_wrong_issuer() {
    let (f, http) = Factory::with_key("servicea").await;
    let body = json!({ "aud": "serviceb", "iss": "https://evil.example/" });
    let token = issue(&http, &f, "servicea", "", &body).await;

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "JsonWebTokenError");
    assert_eq!(
        err["message"],
        "jwt issuer invalid. expected: https://jwt-factory/"
    );
}

#[tokio::test]
async fn verify_not_yet_valid_token() {
    let (f, http) = Factory::with_key("servicea").await;
    let nbf = now_unix() + 3600;
    let token = issue(
        &http,
        &f,
        "servicea",
        "",
        &json!({ "aud": "serviceb", "nbf": nbf }),
    )
    .await;

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "NotBeforeError", "{body}");
    assert_eq!(err["message"], "jwt not active");
    assert_eq!(err["date"], iso_millis(nbf), "{body}");
}

#[tokio::test]
async fn verify_token_signed_by_another_key() {
    let (f, http) = Factory::with_key("servicea").await;
    create_key(&http, &f, "serviceb").await;
    // Claims that would pass for servicea: only the signature is wrong.
    let token = issue(
        &http,
        &f,
        "serviceb",
        "",
        &json!({ "aud": "servicec", "sub": "servicea" }),
    )
    .await;

    // Its kid names serviceb's key, which is not one of servicea's.
    let (status, body) = verify(&http, &f, "servicea", &token, "servicec", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "JsonWebTokenError");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("no key with kid serviceb."),
        "{err:?}"
    );
    // Without a kid, it is checked against servicea's current key: the signature fails.
    let without_kid = edit_header(&token, |h| {
        h.remove("kid");
    });
    let (status, body) = verify(&http, &f, "servicea", &without_kid, "servicec", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["message"], "invalid signature");
    // Sanity: the same token is fine against its own key.
    let (status, body) = verify(&http, &f, "serviceb", &token, "servicec", "servicea").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn verify_alg_none_token_is_refused() {
    let (f, http) = Factory::with_key("servicea").await;

    let header = r#"{"alg":"none","typ":"JWT"}"#;
    let claims = json!({
        "iss": ISSUER, "sub": "servicea", "aud": "serviceb",
        "iat": now_unix(), "exp": now_unix() + 600,
    })
    .to_string();
    for sig in ["", "AAAA"] {
        let token = forge_raw(header, &claims, Sig::Raw(sig));
        let (status, resp) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
        let err = refused(status, &resp);
        assert_eq!(err["message"], "invalid algorithm", "{token}: {resp}");
    }
}

#[tokio::test]
async fn verify_hs256_keyed_with_public_key_is_refused() {
    let (f, http) = Factory::with_key("servicea").await;
    let pem = public_pem(&http, &f, "servicea").await;

    let claims = json!({
        "iss": ISSUER, "sub": "servicea", "aud": "serviceb",
        "iat": now_unix(), "exp": now_unix() + 600,
    });
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    let err = refused(status, &body);
    assert_eq!(err["name"], "JsonWebTokenError");
    assert_eq!(err["message"], "invalid algorithm");
}

#[tokio::test]
async fn verify_token_without_exp_is_refused() {
    let (f, http) = Factory::with_key("servicea").await;
    let key = dumped_private_key(&http, &f, "servicea").await;

    let claims = json!({
        "iss": ISSUER, "sub": "servicea", "aud": "serviceb", "iat": now_unix(),
    });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    let err = refused(status, &body);
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("exp"), "{body}");

    // Control: the same key and claims plus exp verify, so exp was the reason.
    let mut claims = claims;
    claims["exp"] = json!(now_unix() + 600);
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The factory's private key for `id`, read from a dump (to sign test tokens).
async fn dumped_private_key(http: &Client, f: &Factory, id: &str) -> EncodingKey {
    dump(http, f).await;
    let private = fs::read(f.keys_dir().join(format!("{id}-private.pem"))).unwrap();
    EncodingKey::from_rsa_pem(&private).expect("dumped private key parses")
}

#[tokio::test]
async fn verify_refuses_well_signed_tokens_that_break_the_rules() {
    let (f, http) = Factory::with_key("servicea").await;
    let key = dumped_private_key(&http, &f, "servicea").await;
    let now = now_unix();
    let base = json!({ "iss": ISSUER, "sub": "servicea", "aud": "serviceb" });
    let with = |extra: Value| {
        let mut c = base.clone();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let rs256 = Header::new(Algorithm::RS256);
    let mut crit = Header::new(Algorithm::RS256);
    crit.crit = Some(vec!["exp".into()]);

    let cases = [
        (
            &rs256,
            with(json!({ "iat": now, "exp": now + 10 * 86_400 })),
            "jwt lifetime too long",
        ),
        (
            &rs256,
            with(json!({ "iat": now + 3600, "exp": now + 3600 })),
            "jwt issued in the future (iat)",
        ),
        (
            &rs256,
            with(json!({ "iat": now, "exp": now + 600, "nbf": "soon" })),
            "invalid nbf value",
        ),
        (
            &crit,
            with(json!({ "iat": now, "exp": now + 600 })),
            "unsupported critical header parameter (crit)",
        ),
    ];
    for (header, claims, expected) in cases {
        let token = jsonwebtoken::encode(header, &claims, &key).unwrap();
        let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
        let err = refused(status, &body);
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{claims}: expected {expected:?}, got {body}"
        );
    }

    // Control: the same key with sane claims, including an audience list.
    let claims = with(json!({ "aud": ["serviceb", "servicec"], "iat": now, "exp": now + 600 }));
    let token = jsonwebtoken::encode(&rs256, &claims, &key).unwrap();
    for aud in ["serviceb", "servicec"] {
        let (status, body) = verify(&http, &f, "servicea", &token, aud, "servicea").await;
        assert_eq!(status, StatusCode::OK, "{aud}: {body}");
    }
}

#[tokio::test]
async fn verify_garbage_is_malformed() {
    let (f, http) = Factory::with_key("servicea").await;

    for token in ["abc", "a.b.c", "....", "e30.e30.e30"] {
        let (status, body) = verify(&http, &f, "servicea", token, "serviceb", "servicea").await;
        let err = refused(status, &body);
        assert_eq!(err["name"], "JsonWebTokenError", "{token}");
        // "e30" is `{}`: a header with no alg, refused as such.
        let expected = if token == "e30.e30.e30" {
            "invalid algorithm"
        } else {
            "jwt malformed"
        };
        assert_eq!(err["message"], expected, "{token}: {body}");
    }
}

#[tokio::test]
async fn verify_missing_fields_are_400() {
    let (f, http) = Factory::with_key("servicea").await;
    let cases = [
        (
            json!({ "aud": "serviceb", "sub": "servicea" }),
            "no token specified",
        ),
        (
            json!({ "token": "", "aud": "serviceb", "sub": "servicea" }),
            "no token specified",
        ),
        (
            json!({ "token": "abc", "sub": "servicea" }),
            "no audience specified",
        ),
        (
            json!({ "token": "abc", "aud": 7, "sub": "servicea" }),
            "no audience specified",
        ),
        (
            json!({ "token": "abc", "aud": "serviceb" }),
            "no subject specified",
        ),
        (json!({}), "no token specified"),
    ];
    for (req, expected) in cases {
        let (status, body) = json_reply(http.post(f.url("/verify/servicea")).json(&req)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{req}: {body}");
        assert_eq!(body, json!({ "valid": false, "error": expected }), "{req}");
    }
}

#[tokio::test]
async fn verify_unknown_key_is_404() {
    let (f, http) = Factory::with_client().await;
    let (status, body) = verify(&http, &f, "nobody", "abc", "serviceb", "servicea").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body, json!({ "valid": false, "error": "key not found" }));
}

#[tokio::test]
async fn verify_non_json_body_is_400_json() {
    let (f, http) = Factory::with_key("servicea").await;

    for raw in ["token=abc", "", "[1,2"] {
        let (status, body) = json_reply(
            http.post(f.url("/verify/servicea"))
                .header("content-type", "application/json")
                .body(raw),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}: {body}");
        assert_eq!(body["valid"], false, "{body}");
        let msg = body["error"].as_str().expect("error string");
        assert!(msg.contains("JSON"), "{raw:?}: {msg}");
    }
}

// ---------------------------------------------------------------- /utils

#[tokio::test]
async fn public_key_unknown_is_404_json() {
    let (f, http) = Factory::with_client().await;
    let msg = error_message(
        http.get(f.url("/utils/publicKey/nobody")),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(msg.contains("key not found"), "{msg}");
}

#[tokio::test]
async fn keys_list_is_sorted() {
    let (f, http) = Factory::with_client().await;

    let (status, body) = json_reply(http.get(f.url("/utils/keys"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));

    for id in ["zeta", "alpha", "Mid", "servicea", "a_1"] {
        create_key(&http, &f, id).await;
    }
    create_key(&http, &f, "alpha").await; // a replacement is not a second entry
    let (status, body) = json_reply(http.get(f.url("/utils/keys"))).await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = vec!["zeta", "alpha", "Mid", "servicea", "a_1"];
    expected.sort_unstable();
    assert_eq!(body, json!(expected));
}

#[tokio::test]
async fn dump_writes_key_files_with_modes() {
    let (f, http) = Factory::with_client().await;
    let a = create_key(&http, &f, "servicea").await;
    let b = create_key(&http, &f, "serviceb").await;

    for route in ["/utils/dump", "/dump"] {
        let (status, body) = json_reply(http.post(f.url(route))).await;
        assert_eq!(status, StatusCode::OK, "{route}: {body}");

        let dir = f.keys_dir();
        assert_eq!(
            file_names(&dir),
            [
                "servicea-private.pem",
                "servicea-public.pem",
                "serviceb-private.pem",
                "serviceb-public.pem",
            ],
            "{route}: only key files, no leftover temporary files"
        );
        for (id, public_b64) in [("servicea", &a), ("serviceb", &b)] {
            let public = fs::read_to_string(dir.join(format!("{id}-public.pem"))).unwrap();
            assert_eq!(public, decode_pem(public_b64), "{id}");
            let private_path = dir.join(format!("{id}-private.pem"));
            let private = fs::read_to_string(&private_path).unwrap();
            assert!(private.contains("PRIVATE KEY"), "{id}");
            EncodingKey::from_rsa_pem(private.as_bytes()).expect("private key parses");
            let mode = fs::metadata(&private_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{id}: private key mode {mode:o}");
            // Public keys: 0644 under the usual umask; never writable by others.
            let mode = fs::metadata(dir.join(format!("{id}-public.pem")))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert!(
                mode & 0o400 != 0 && mode & 0o022 == 0,
                "{id}: public key mode {mode:o}"
            );
        }
    }
}

#[tokio::test]
async fn dump_then_restart_keeps_keys_and_tokens() {
    let (f, http) = Factory::with_client().await;
    for id in ["servicea", "serviceb", "servicec"] {
        create_key(&http, &f, id).await;
    }
    let pem_before = public_pem(&http, &f, "servicea").await;
    let token = issue(&http, &f, "servicea", "", &json!({ "aud": "serviceb" })).await;
    dump(&http, &f).await;
    let old_addr = f.addr;

    let dir = f.stop().await;
    // The old instance is really gone.
    assert!(
        http.get(format!("http://{old_addr}/utils/keys"))
            .send()
            .await
            .is_err(),
        "old factory still answering"
    );

    let f = Factory::start_in(dir).await;
    let (status, body) = json_reply(http.get(f.url("/utils/keys"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(["servicea", "serviceb", "servicec"]));
    assert_eq!(public_pem(&http, &f, "servicea").await, pem_before);

    let (status, body) = verify(&http, &f, "servicea", &token, "serviceb", "servicea").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "token from before the restart: {body}"
    );
    assert_eq!(body["valid"], true);
    f.stop().await;
}

#[tokio::test]
async fn startup_skips_stray_and_corrupt_files() {
    // A good key, dumped by a first instance.
    let (f, http) = Factory::with_client().await;
    create_key(&http, &f, "good").await;
    let good_pem = public_pem(&http, &f, "good").await;
    dump(&http, &f).await;
    let keys = f.keys_dir();
    let dir = f.stop().await;

    let good_private = fs::read(keys.join("good-private.pem")).unwrap();
    fs::write(keys.join("bad-private.pem"), "this is not a key\n").unwrap();
    fs::write(
        keys.join("trunc-private.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::write(keys.join("empty-private.pem"), "").unwrap();
    fs::write(keys.join("x.y-private.pem"), &good_private).unwrap(); // invalid key id
    fs::write(keys.join("-private.pem"), &good_private).unwrap(); // empty key id
    fs::write(keys.join("README"), "unrelated\n").unwrap();
    fs::write(keys.join("orphan-public.pem"), good_pem.as_bytes()).unwrap();
    fs::create_dir(keys.join("dir-private.pem")).unwrap();
    let mut huge = good_private.clone();
    huge.extend(std::iter::repeat_n(b'\n', 70 * 1024));
    fs::write(keys.join("huge-private.pem"), huge).unwrap();

    let f = Factory::start_in(dir).await;
    let (status, body) = json_reply(http.get(f.url("/utils/keys"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(["good"]));
    assert_eq!(public_pem(&http, &f, "good").await, good_pem);
    let token = issue(&http, &f, "good", "", &json!({ "aud": "x" })).await;
    let (status, body) = verify(&http, &f, "good", &token, "x", "good").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.stop().await;
}

// ---------------------------------------------------------------- input safety

#[tokio::test]
async fn invalid_key_ids_are_400_and_never_reach_the_disk() {
    let (f, http) = Factory::with_key("servicea").await;

    let keys = f.keys_dir();
    let parent = keys.parent().unwrap().to_path_buf();
    let grandparent = parent.parent().unwrap().to_path_buf();
    let escapes = |d: &std::path::Path| -> Vec<String> {
        file_names(d)
            .into_iter()
            .filter(|n| n.contains("escape"))
            .collect()
    };
    let before = (escapes(&parent), escapes(&grandparent));

    let long = "x".repeat(65);
    let bad_ids = [
        "..%2F..%2Fescape",
        "..%2Fescape",
        "..%5C..%5Cescape",
        "a.b",
        long.as_str(),
        "%00",
        "a%00b",
        "%C3%A9",
        "%FF",
        "a%20b",
    ];
    for id in bad_ids {
        for (method, path) in [
            ("GET", format!("/keys/{id}")),
            ("POST", format!("/keys/{id}")),
            ("POST", format!("/issueToken/{id}")),
            ("GET", format!("/utils/publicKey/{id}")),
        ] {
            let req = if method == "GET" {
                http.get(f.url(&path))
            } else {
                http.post(f.url(&path))
            };
            let msg = error_message(req, StatusCode::BAD_REQUEST).await;
            let expected = if id == "%FF" {
                "Invalid UTF-8"
            } else {
                "invalid key id: must be 1-64"
            };
            assert!(msg.contains(expected), "{method} {path}: {msg}");
        }
        let (status, body) = json_reply(
            http.post(f.url(&format!("/verify/{id}")))
                .json(&json!({ "token": "abc", "aud": "a", "sub": "b" })),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "/verify/{id}: {body}");
        assert_eq!(body["valid"], false);
        assert!(
            body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A 64-character id is fine.
    create_key(&http, &f, &"x".repeat(64)).await;

    dump(&http, &f).await;
    let (_, ids) = json_reply(http.get(f.url("/utils/keys"))).await;
    assert_eq!(ids, json!(["servicea", "x".repeat(64)]));

    assert_eq!(
        (escapes(&parent), escapes(&grandparent)),
        before,
        "file written outside KEYS_DIR"
    );
    assert_eq!(
        file_names(&parent),
        ["keys"],
        "only KEYS_DIR in the temp dir"
    );
    let names = file_names(&keys);
    assert_eq!(names.len(), 4, "{names:?}");
    for name in &names {
        assert!(
            is_valid_key_file(name),
            "unexpected file in KEYS_DIR: {name:?}"
        );
    }
}

#[tokio::test]
async fn unknown_route_is_404_json() {
    let (f, http) = Factory::with_client().await;
    for path in ["/nope", "/keys", "/keys/", "/keys/a/b", "/utils"] {
        let msg = error_message(http.get(f.url(path)), StatusCode::NOT_FOUND).await;
        assert!(msg.contains("endpoint"), "{path}: {msg}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_json() {
    let (f, http) = Factory::with_client().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/keys/x"),
        (reqwest::Method::GET, "/issueToken/x"),
        (reqwest::Method::GET, "/verify/x"),
        (reqwest::Method::GET, "/utils/dump"),
        (reqwest::Method::POST, "/utils/keys"),
    ] {
        let msg = error_message(
            http.request(method.clone(), f.url(path)),
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .await;
        assert!(msg.contains("method"), "{method} {path}: {msg}");
    }
}

/// One DER TLV: (tag, contents, rest). Enough for PKCS#8 wrappers.
fn der_tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = b[0];
    let (len, hdr) = match b[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let k = usize::from(n & 0x7f);
            let len = b[2..2 + k]
                .iter()
                .fold(0usize, |a, &x| (a << 8) | usize::from(x));
            (len, 2 + k)
        }
    };
    (tag, &b[hdr..hdr + len], &b[hdr + len..])
}

/// A PKCS#8 RSA private key PEM rewritten as PKCS#1 (`RSA PRIVATE KEY`), the
/// form `openssl genrsa -traditional` and older tools produce.
fn pkcs8_to_pkcs1_pem(pkcs8_pem: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let der = pem_der(pkcs8_pem);
    let (tag, info, _) = der_tlv(&der);
    assert_eq!(tag, 0x30);
    let (tag, _version, rest) = der_tlv(info);
    assert_eq!(tag, 0x02);
    let (tag, _alg, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30);
    let (tag, pkcs1, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    let b64 = STANDARD.encode(pkcs1);
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    pem
}

/// Starts a factory whose KEYS_DIR holds one key, `legacy`, as a PKCS#1
/// (`RSA PRIVATE KEY`) PEM: the form `openssl genrsa -traditional` writes and
/// that `KeyPair::from_private_pem` documents as accepted. Returns the
/// factory and the key's public PEM.
async fn factory_with_pkcs1_key(http: &Client) -> (Factory, String) {
    let f = Factory::start().await;
    create_key(http, &f, "legacy").await;
    let pem = public_pem(http, &f, "legacy").await;
    dump(http, &f).await;
    let private_path = f.keys_dir().join("legacy-private.pem");
    let dir = f.stop().await;

    let pkcs1 = pkcs8_to_pkcs1_pem(&fs::read_to_string(&private_path).unwrap());
    // The conversion is right: jsonwebtoken reads PKCS#1 PEMs.
    EncodingKey::from_rsa_pem(pkcs1.as_bytes()).expect("PKCS#1 PEM parses");
    fs::write(&private_path, &pkcs1).unwrap();

    let f = Factory::start_in(dir).await;
    assert_eq!(
        public_pem(http, &f, "legacy").await,
        pem,
        "PKCS#1 key loaded"
    );
    (f, pem)
}

/// A PKCS#1 key in KEYS_DIR loads, and the factory itself keeps it across
/// dump + restart.
#[tokio::test]
async fn pkcs1_key_in_keys_dir_loads_and_survives_dump_and_restart() {
    let http = Client::new();
    let (f, pem) = factory_with_pkcs1_key(&http).await;
    let token = issue(&http, &f, "legacy", "", &json!({ "aud": "x" })).await;
    dump(&http, &f).await;
    let dir = f.stop().await;

    let f = Factory::start_in(dir).await;
    assert_eq!(public_pem(&http, &f, "legacy").await, pem);
    let (status, body) = verify(&http, &f, "legacy", &token, "x", "legacy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.stop().await;
}

/// A key loaded from a PKCS#1 PEM is dumped as real PKCS#8 (regression:
/// it used to be PKCS#1 bytes under a PKCS#8 label, which other tools refuse).
#[tokio::test]
async fn dumped_pkcs1_loaded_key_is_a_well_labelled_pem() {
    let http = Client::new();
    let (f, _) = factory_with_pkcs1_key(&http).await;
    dump(&http, &f).await;

    let dumped = fs::read_to_string(f.keys_dir().join("legacy-private.pem")).unwrap();
    let der = pem_der(&dumped);
    if dumped.starts_with("-----BEGIN PRIVATE KEY-----") {
        // PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE {alg}, OCTET STRING }.
        let (_, info, _) = der_tlv(&der);
        let (_, _, rest) = der_tlv(info);
        let (tag, _, _) = der_tlv(rest);
        assert_eq!(
            tag, 0x30,
            "dumped file is labelled PRIVATE KEY (PKCS#8) but holds PKCS#1 DER:\n{dumped}"
        );
    }
    let key = EncodingKey::from_rsa_pem(dumped.as_bytes()).expect("dumped private key parses");
    let now = now_unix();
    let claims =
        json!({ "iss": ISSUER, "sub": "legacy", "aud": "x", "iat": now, "exp": now + 600 });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .expect("dumped private key signs");
    let (status, body) = verify(&http, &f, "legacy", &token, "x", "legacy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.stop().await;
}

// ---------------------------------------------------------------- the binary

/// `jwt-factory --help` explains every option with its env variable, and a
/// bad value names the variable.
#[test]
fn help_explains_every_option_and_bad_values_name_the_variable() {
    let exe = env!("CARGO_BIN_EXE_jwt-factory");
    let vars = [
        "HOST",
        "PORT",
        "ISSUER",
        "ALGORITHM",
        "KEYS_DIR",
        "TOKEN_LIFETIME_SECS",
        "LEEWAY_SECS",
        "JWKS_MAX_AGE_SECS",
        "HEADER_TIMEOUT_MS",
    ];
    let clean = |cmd: &mut std::process::Command| {
        for v in vars {
            cmd.env_remove(v);
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--help");
    clean(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for v in vars {
        assert!(
            help.contains(&format!("[env: {v}")),
            "--help lacks {v}:\n{help}"
        );
    }
    assert!(help.contains("--env-file"));

    let mut cmd = std::process::Command::new(exe);
    clean(&mut cmd);
    cmd.env("ALGORITHM", "none");
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ALGORITHM") && err.contains("unsupported algorithm"),
        "{err}"
    );
}
