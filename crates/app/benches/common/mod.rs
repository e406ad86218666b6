//! What the benches of serviceb's receive path share: its https router,
//! set up to check servicea's self-signed tokens of one algorithm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use s2s_auth::{KeyPair, SigningAlgorithm, jws, now_unix};

/// serviceb's https router (scenarios 3-4: servicea's self-signed tokens
/// checked with its public key) and servicea's key to sign them, made in
/// `dir`.
pub fn serviceb_https(alg: SigningAlgorithm, dir: &std::path::Path) -> (axum::Router, KeyPair) {
    let private = dir.join(format!("{alg}-private.pem"));
    let public = dir.join(format!("{alg}-public.pem"));
    app::caller::generate_keys(alg, &private, &public).unwrap();
    let flags = [
        "--algorithm",
        alg.name(),
        "--service-a-public-key-path",
        public.to_str().unwrap(),
    ]
    .map(String::from);
    let state = test_support::receiver_state(app::Role::B, &flags);
    let router = app::receiver::https_router(state);
    let key = KeyPair::from_private_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
    (router, key)
}

/// `Bearer <token>`: servicea's self-signed token for serviceb, valid for
/// 30 s (the longest serviceb accepts; criterion's default run takes 8).
pub fn bearer(key: &KeyPair, alg: SigningAlgorithm) -> String {
    let now = now_unix();
    let serde_json::Value::Object(claims) = serde_json::json!({
        "iss": "https://service-issuer", "sub": "servicea", "aud": "serviceb",
        "iat": now, "exp": now + 30,
    }) else {
        unreachable!()
    };
    format!("Bearer {}", jws::sign(&claims, key, alg).unwrap())
}
