//! The files the services read, made in a temp dir: a local CA and a
//! `localhost` certificate (what `app gen-certs` writes), servicea's
//! scenario-3 key pair (what `app gen-keys` writes), jwt-factory's
//! KEYS_DIR; and the flags that point each role at them.

use std::path::{Path, PathBuf};

use s2s_auth::SigningAlgorithm;
use s2s_web::pki::{CertFiles, Validity};
use tempfile::TempDir;

/// A fresh local CA and a `localhost` certificate it signed, written into
/// `dir` under the names `app gen-certs` uses.
pub fn gen_certs(dir: &Path) {
    gen_certs_valid(dir, Validity::default());
}

/// As [`gen_certs`], with certificates valid only within `validity`.
pub fn gen_certs_valid(dir: &Path, validity: Validity) {
    s2s_web::pki::generate(
        &CertFiles::in_dir(dir),
        false,
        &s2s_web::pki::Profile {
            validity,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("gen-certs in {}: {e}", dir.display()));
}

/// A temp dir holding a CA and a `localhost` certificate of their own,
/// from another `gen-certs` run: not the CA a stack's servicea trusts.
pub fn other_ca() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    gen_certs(dir.path());
    dir
}

/// `(flag, value)` pairs as one argument list.
fn flags<const N: usize>(pairs: [(&str, &str); N]) -> Vec<String> {
    pairs
        .into_iter()
        .flat_map(|(f, v)| [f.to_owned(), v.to_owned()])
        .collect()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Where the services' files are, under one directory, laid out as `app`
/// expects them from its working directory.
#[derive(Clone, Debug)]
pub struct Files {
    /// `ca.pem`, `ca-key.pem`, `localhost.pem`, `localhost-key.pem`.
    pub certs: PathBuf,
    /// servicea's scenario-3 signing key.
    pub private: PathBuf,
    /// Its public half, which the receivers verify with.
    pub public: PathBuf,
    /// jwt-factory's KEYS_DIR.
    pub keys: PathBuf,
    /// The receivers' authorization policy (scenario 7): servicea may
    /// call `/scenario7-server`, as `env/serviceb-authz.json` says.
    pub policy: PathBuf,
}

/// The policy `env/serviceb-authz.json` holds: servicea, and only it, may
/// call `/scenario7-server`.
pub const POLICY: &str = r#"{"rules": [{"from": {"principals": ["cluster.local/ns/default/sa/servicea"]},
  "to": {"paths": ["/scenario7-server"]}}]}"#;

impl Files {
    /// The layout under `dir` (nothing is written yet).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            certs: dir.join("certs"),
            private: dir.join("scenario-3-keys/jwt-private.pem"),
            public: dir.join("scenario-3-keys/jwt-public.pem"),
            keys: dir.join("keys"),
            policy: dir.join("authz.json"),
        }
    }

    /// `certs/` and, with `alg`, the scenario-3 key pair for it, written
    /// under `dir`.
    pub fn generate(dir: &Path, alg: Option<SigningAlgorithm>) -> Self {
        let files = Self::in_dir(dir);
        gen_certs(&files.certs);
        std::fs::write(&files.policy, POLICY).expect("writing the policy");
        if let Some(alg) = alg {
            files.gen_keys(alg);
        }
        files
    }

    /// A new scenario-3 key pair for `alg` (as `app gen-keys` or
    /// servicea's `POST /gen-keys` makes it), over any old one.
    pub fn gen_keys(&self, alg: SigningAlgorithm) {
        app::caller::generate_keys(alg, &self.private, &self.public).expect("gen-keys");
    }

    /// The CA servicea trusts.
    pub fn ca(&self) -> PathBuf {
        self.certs.join("ca.pem")
    }

    /// A client that trusts this CA and no other.
    pub fn client(&self) -> reqwest::ClientBuilder {
        let pem = std::fs::read(self.ca()).expect("certs/ca.pem");
        let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
        reqwest::Client::builder().tls_certs_only([ca])
    }

    /// servicea's flags: jwt-factory at `factory`, its key pair and
    /// trusted CA here, its own tokens' issuer, algorithm and lifetime.
    pub fn servicea_flags(&self, alg: &str, factory: &str) -> Vec<String> {
        flags([
            ("--host", "127.0.0.1"),
            ("--jwt-factory-endpoint", factory),
            ("--service-a-private-key-path", text(&self.private)),
            ("--service-a-public-key-path", text(&self.public)),
            ("--ca-cert-path", text(&self.ca())),
            ("--self-signed-issuer", "https://service-issuer"),
            ("--algorithm", alg),
            ("--self-signed-lifetime-secs", "30"),
            ("--workload-cert-path", text(&self.workload("servicea").0)),
        ])
    }

    /// A workload's certificate and key, as gen-certs names them.
    pub fn workload(&self, name: &str) -> (PathBuf, PathBuf) {
        s2s_web::pki::CertFiles::in_dir(&self.certs).workload(name)
    }

    /// A client that trusts this CA and presents `name`'s workload
    /// certificate (mTLS).
    pub fn client_as(&self, name: &str) -> reqwest::Client {
        self.client()
            .identity(self.identity(name))
            .build()
            .expect("an mTLS client")
    }

    /// `name`'s workload certificate and key, as a client identity.
    pub fn identity(&self, name: &str) -> reqwest::Identity {
        let (cert, key) = self.workload(name);
        let mut pem = std::fs::read(cert).expect("workload certificate");
        pem.extend(std::fs::read(key).expect("workload key"));
        reqwest::Identity::from_pem(&pem).expect("a certificate and key")
    }

    /// A receiver's flags: jwt-factory at `factory`, servicea's public key
    /// here, and what it expects of servicea's and the factory's tokens.
    pub fn receiver_flags(&self, alg: &str, factory: &str) -> Vec<String> {
        flags([
            ("--host", "127.0.0.1"),
            ("--jwt-factory-endpoint", factory),
            ("--service-a-public-key-path", text(&self.public)),
            ("--self-signed-issuer", "https://service-issuer"),
            ("--algorithm", alg),
            ("--caller", "servicea"),
            ("--self-signed-lifetime-secs", "30"),
            ("--leeway-secs", "5"),
            ("--factory-issuer", "https://jwt-factory/"),
            ("--factory-token-lifetime-secs", "3600"),
            ("--ca-cert-path", text(&self.ca())),
            ("--authz-policy-file", text(&self.policy)),
        ])
    }
}

/// servicea's flags naming its peers: serviceb's and servicec's base URLs,
/// plain http and https.
pub fn peer_flags(b: &str, b_https: &str, c: &str, c_https: &str) -> Vec<String> {
    flags([
        ("--service-b-endpoint", b),
        ("--service-b-endpoint-https", b_https),
        ("--service-c-endpoint", c),
        ("--service-c-endpoint-https", c_https),
    ])
}
