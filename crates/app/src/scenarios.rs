//! The scenarios, as one table ([`SCENARIOS`]). servicea's routes and the
//! receivers' routes are both registered from the table, so a new scenario
//! is one row; what servicea does for each is one arm of
//! `caller::plan`.
//!
//! | scenario | token from | transport | verified by |
//! | --- | --- | --- | --- |
//! | 1 | jwt-factory | http to serviceb | jwt-factory, asked by serviceb |
//! | 2 | jwt-factory (one per audience) | http to serviceb and servicec, concurrently | jwt-factory |
//! | 3 | servicea signs it | https to serviceb (one-way TLS) | serviceb, locally, with servicea's public key |
//! | 4 | servicea signs one per audience | https to serviceb and servicec, concurrently | each receiver, locally |
//! | 5 | jwt-factory (with a `kid`) | http to serviceb | serviceb, locally, with the factory's JWK Set |
//! | 6 | jwt-factory's `POST /token`: servicea authenticates with its own key (`private_key_jwt`), caches the token | http to serviceb | serviceb, locally, with the JWK Set; `typ: at+jwt`, `client_id` |
//! | 7 | none | mTLS to serviceb, with servicea's workload certificate | serviceb: the certificate's SPIFFE ID, allowed by its policy |
//! | 8 | as 6, over mTLS to the factory: bound to servicea's certificate (`cnf.x5t#S256`, RFC 8705) | mTLS to serviceb | as 6, and the binding: same certificate on both hops |
//! | 9 | jwt-factory's `POST /token`, cached, as 6 | http to the gateway (nginx), which calls serviceb over mTLS | the gateway's verifier (JWK Set, `typ: at+jwt`); serviceb reads the forwarded identity |
//! | 10 | jwt-factory's `POST /token`, cached, as 6 | plain http to servicea's sidecar (Envoy), mTLS between sidecars, plain http to serviceb | serviceb's sidecar (jwt_authn, RBAC, from Istio YAML); serviceb reads what it verified |

/// How the receivers check a scenario's token (and so where the token
/// comes from, and over which transport it travels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Token from jwt-factory; the receiver asks jwt-factory (plain http).
    Factory,
    /// servicea signs its own token; the receiver verifies it with
    /// servicea's public key, over https only.
    CallerKey,
    /// Token from jwt-factory; the receiver verifies it with the factory's
    /// published keys (JWK Set), plain http.
    Jwks,
    /// Token from jwt-factory's OAuth token endpoint (client credentials,
    /// `private_key_jwt`), cached by servicea; the receiver verifies it as
    /// [`Check::Jwks`] does, and requires `typ: at+jwt` and `client_id`.
    Sts,
    /// No token: the receiver knows the caller by its mTLS client
    /// certificate and allows it by policy.
    Identity,
    /// As [`Check::Sts`], over mTLS on both hops: the token is bound to
    /// servicea's certificate, and the receiver checks the binding.
    BoundSts,
    /// Token from jwt-factory's `POST /token` (as [`Check::Sts`]), sent
    /// through the gateway (nginx), which has it verified once and forwards
    /// the identity as `X-Jwt-*` headers over mTLS; the receiver believes
    /// those headers from the gateway alone.
    Gateway,
    /// Token from jwt-factory, sent through servicea's Envoy sidecar to
    /// serviceb's: the sidecars do mTLS, serviceb's checks the token and
    /// the AuthorizationPolicy, and serviceb reads what it verified. The
    /// services do none of it (scenario 10, `mesh` crate).
    Mesh,
}

impl Check {
    /// Whether the call travels over TLS (servicea's https clients, the
    /// receivers' https listener).
    pub fn over_tls(self) -> bool {
        matches!(
            self,
            Self::CallerKey | Self::Identity | Self::BoundSts | Self::Gateway
        )
    }

    /// Whether servicea presents its workload certificate (mTLS).
    pub fn mutual_tls(self) -> bool {
        matches!(self, Self::Identity | Self::BoundSts)
    }
}

/// One scenario, as data.
#[derive(Debug)]
pub struct Scenario {
    /// Its number: servicea serves `/scenario{n}`, receivers `/scenario{n}-server`.
    pub n: u8,
    /// What it teaches, in one line.
    pub teaches: &'static str,
    pub check: Check,
    /// Call servicec too, concurrently.
    pub fan_out: bool,
    /// With `?expired=1`, expire servicec's token only (scenario 2 shows one
    /// leg failing), or every token.
    pub expire_only_c: bool,
    /// The first log line: what is about to happen.
    pub story: &'static str,
}

impl Scenario {
    /// servicea's path.
    pub fn path(&self) -> String {
        format!("/scenario{}", self.n)
    }

    /// The receivers' path.
    pub fn receiver_path(&self) -> String {
        format!("/scenario{}-server", self.n)
    }
}

/// Every scenario. Adding one here adds its routes on servicea and on the
/// receivers.
pub static SCENARIOS: [Scenario; 10] = [
    Scenario {
        n: 1,
        teaches: "central issue and verify: the receiver holds no key and asks the issuer",
        check: Check::Factory,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb asks jwt-factory to verify it",
    },
    Scenario {
        n: 2,
        teaches: "one token per audience: a token for serviceb cannot be replayed at servicec",
        check: Check::Factory,
        fan_out: true,
        expire_only_c: true,
        story: "one jwt-factory token per audience, call serviceb and servicec concurrently",
    },
    Scenario {
        n: 3,
        teaches: "self-signed tokens over one-way TLS: the receiver verifies locally with the caller's public key",
        check: Check::CallerKey,
        fan_out: false,
        expire_only_c: false,
        story: "sign my own short-lived token, call serviceb over https; serviceb verifies it locally with my public key",
    },
    Scenario {
        n: 4,
        teaches: "self-signed tokens, one per audience, to two receivers over TLS",
        check: Check::CallerKey,
        fan_out: true,
        expire_only_c: false,
        story: "sign one token per audience, call serviceb and servicec over https concurrently",
    },
    Scenario {
        n: 5,
        teaches: "the issuer publishes its keys (JWKS); receivers verify locally from a cache, and keys rotate without restarts",
        check: Check::Jwks,
        fan_out: false,
        expire_only_c: false,
        story: "get a token from jwt-factory, call serviceb over http; serviceb verifies it locally with the factory's published keys (JWK Set)",
    },
    Scenario {
        n: 6,
        teaches: "a token service that authenticates its callers: client credentials with private_key_jwt, a short-lived cached token, verified locally",
        check: Check::Sts,
        fan_out: false,
        expire_only_c: false,
        story: "a token for serviceb from jwt-factory's POST /token (I prove who I am with an assertion signed by my own key), cached; serviceb verifies it locally with the JWK Set",
    },
    Scenario {
        n: 7,
        teaches: "mutual TLS and workload identity, no token: the receiver authorizes the caller's SPIFFE ID by policy",
        check: Check::Identity,
        fan_out: false,
        expire_only_c: false,
        story: "call serviceb over mTLS with my workload certificate (spiffe://.../sa/servicea), no token; serviceb allows callers by identity",
    },
    Scenario {
        n: 8,
        teaches: "certificate-bound tokens (RFC 8705): a stolen token is useless without the certificate's private key",
        check: Check::BoundSts,
        fan_out: false,
        expire_only_c: false,
        story: "a token from jwt-factory's POST /token over mTLS, bound to my certificate (cnf x5t#S256); call serviceb over mTLS with the same certificate",
    },
    Scenario {
        n: 9,
        teaches: "the gateway pattern: nginx verifies once at the edge and forwards the caller's identity; services trust those headers from the gateway alone",
        check: Check::Gateway,
        fan_out: false,
        expire_only_c: false,
        story: "get an access token from jwt-factory's POST /token, call serviceb through the gateway (nginx); the gateway has it verified, then forwards my identity to serviceb over mTLS",
    },
    Scenario {
        n: 10,
        teaches: "the mesh: sidecars (Envoy, configured from Istio YAML) do mTLS, check the token and authorize by identity; the services do none of it",
        check: Check::Mesh,
        fan_out: false,
        expire_only_c: false,
        story: "a token for serviceb from jwt-factory's POST /token (cached, as in scenario 6), call http://serviceb through my sidecar (Envoy); the sidecars talk mTLS, serviceb's checks the token and its AuthorizationPolicy, and serviceb reads what its sidecar verified",
    },
];
