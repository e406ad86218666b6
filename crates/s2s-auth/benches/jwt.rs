//! Signing and verification, per algorithm, with the key parsed once.
//!
//! `sign/jws_parsed_key` is what the services do ([`s2s_auth::jws::sign`],
//! an aws-lc-rs key parsed once); `sign/jsonwebtoken_encode` is
//! `jsonwebtoken::encode`, which re-parses the RSA private key on every call.
//! The difference is the reason `jws` exists.
//!
//! Run: `cargo bench -p s2s-auth --bench jwt`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use s2s_auth::{Expectations, KeyPair, SigningAlgorithm, jws, now_unix};

fn claims() -> jws::Claims {
    let now = now_unix();
    let serde_json::Value::Object(c) = serde_json::json!({
        "iss": "https://service-issuer", "sub": "servicea", "aud": "serviceb",
        "iat": now, "exp": now + 30,
    }) else {
        unreachable!()
    };
    c
}

fn bench(c: &mut Criterion) {
    let claims = claims();
    for alg in SigningAlgorithm::ALL {
        let key = KeyPair::generate(alg).unwrap();
        let mut g = c.benchmark_group(format!("{alg}"));
        g.bench_function("sign/jws_parsed_key", |b| {
            b.iter(|| jws::sign(black_box(&claims), &key, alg).unwrap())
        });
        if alg == SigningAlgorithm::RS256 {
            let encoding =
                jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem().as_bytes()).unwrap();
            let header = jsonwebtoken::Header::new(alg.jwt());
            g.bench_function("sign/jsonwebtoken_encode", |b| {
                b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &encoding).unwrap())
            });
        }
        let token = jws::sign(&claims, &key, alg).unwrap();
        let expect = Expectations {
            algorithm: alg,
            typ: s2s_auth::verify::TYP_JWT,
            issuer: "https://service-issuer".into(),
            audience: "serviceb".into(),
            subject: "servicea".into(),
            leeway_secs: 5,
            max_lifetime_secs: 30,
        };
        g.bench_function("verify", |b| {
            b.iter(|| expect.verify(black_box(&token), key.public()).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
