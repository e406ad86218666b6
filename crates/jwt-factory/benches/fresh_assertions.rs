//! Signs client assertions for `scripts/bench.sh`'s `POST /token (fresh
//! jti)` row: one per line on stdout, each with its own `jti`, so wrk can
//! send a fresh one with every request (wrk's Lua cannot sign). Signing
//! happens before the row, on every core, so the row measures the factory
//! and not the client.
//!
//! ```text
//! cargo bench -p jwt-factory --bench fresh_assertions -- \
//!     <private key PEM> <ALGORITHM> <client_id> <aud> <count> <lifetime secs>
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;

use s2s_auth::{KeyPair, SigningAlgorithm, jws, now_unix};
use serde_json::json;

fn main() {
    // cargo bench appends `--bench`: only the positional arguments count.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let [key, alg, client, aud, count, lifetime] = args.as_slice() else {
        panic!(
            "usage: fresh_assertions <key.pem> <ALGORITHM> <client_id> <aud> <count> <lifetime secs>"
        );
    };
    let alg: SigningAlgorithm = alg.parse().expect("an ALGORITHM");
    let pem = std::fs::read_to_string(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    let key = KeyPair::from_private_pem_for(&pem, alg).expect("a private key for ALGORITHM");
    let count: usize = count.parse().expect("a count");
    let lifetime: i64 = lifetime.parse().expect("a lifetime in seconds");
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let now = now_unix();
    let run = std::process::id();
    let chunks: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key = &key;
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| {
                            let claims = json!({ "iss": client, "sub": client, "aud": aud,
                                "iat": now, "exp": now + lifetime,
                                "jti": format!("bench-{run}-{now}-{i}") });
                            jws::sign(claims.as_object().unwrap(), key, alg).unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in chunks.iter().flatten() {
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
}
