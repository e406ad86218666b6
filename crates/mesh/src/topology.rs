//! Where the mesh runs on a laptop: one sidecar per workload, each with
//! three ports, and the services outside the mesh that policies name (the
//! JWKS of jwt-factory).
//!
//! In a cluster, iptables sends a pod's traffic through its sidecar and the
//! Service names resolve by DNS. On a laptop there is one loopback, so each
//! sidecar gets ports of its own and callers name it as their HTTP proxy.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

/// One workload and its sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sidecar {
    /// The workload's name: its service account, its `app` label, its
    /// Service's name and its certificate's name (`certs/<name>.pem`).
    pub workload: String,
    /// The application, plain http on loopback.
    pub app: SocketAddr,
    /// Envoy's admin interface (readiness, the configuration it runs).
    pub admin: u16,
    /// Where other sidecars call this workload: mTLS per PeerAuthentication.
    pub inbound: u16,
    /// Where this workload's own calls leave: its HTTP proxy.
    pub outbound: u16,
}

impl Sidecar {
    /// The ports of the `index`th workload (from 1): `base + 10 * index`
    /// for admin, then inbound, then outbound (servicea, first, gets 15010,
    /// 15011 and 15012 with base 15000).
    pub fn numbered(workload: &str, app: SocketAddr, base: u16, index: u16) -> Option<Self> {
        let admin = base.checked_add(index.checked_mul(10)?)?;
        Some(Self {
            workload: workload.to_owned(),
            app,
            admin,
            inbound: admin.checked_add(1)?,
            outbound: admin.checked_add(2)?,
        })
    }
}

/// The whole laptop mesh.
#[derive(Clone, Debug)]
pub struct Topology {
    /// The SPIFFE trust domain of the workload certificates.
    pub trust_domain: String,
    /// The namespace the workloads run in (principals name it).
    pub namespace: String,
    /// The CA that signs every workload certificate.
    pub ca: PathBuf,
    /// `<certs>/<workload>.pem` and `<workload>-key.pem`.
    pub certs: PathBuf,
    pub sidecars: Vec<Sidecar>,
    /// Services outside the mesh, by Service name (`jwt-factory`): where a
    /// URL such as `http://jwt-factory.default.svc.cluster.local:5555` goes.
    pub services: BTreeMap<String, SocketAddr>,
    /// How long a sidecar keeps a fetched JWK Set (Envoy's
    /// `cache_duration`). The issuer must publish a new key at least this
    /// long before it signs with it (docs/rotation.md).
    pub jwks_cache: Duration,
}

impl Topology {
    /// A workload's SPIFFE ID.
    pub fn spiffe_id(&self, workload: &str) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{workload}",
            self.trust_domain, self.namespace
        )
    }

    /// A workload's labels, as its Deployment sets them.
    pub fn labels(workload: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_owned(), workload.to_owned())])
    }
}
