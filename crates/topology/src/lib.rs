//! # topology: the nine processes of the stack, defined once
//!
//! Names, ports, workload identities and URLs of jwt-factory, servicea,
//! serviceb, servicec, the gateway's verifier, the gateway (nginx) and the
//! three sidecars (Envoy). Everything else derives from this table: the
//! services' defaults (so `env/serviceb.env` need not say `PORT=3001`),
//! `app topology` for the scripts, the supervisor (`cargo xtask`), the
//! gateway's and the mesh's configuration, and the tests' checks. A port
//! changes here, and only here.
//!
//! It has no dependencies: it is the bottom layer, read by every other.

#![warn(unreachable_pub)]

use std::net::{Ipv4Addr, SocketAddr};

/// The host the processes listen on, and URLs name them by.
pub const LOCALHOST: &str = "localhost";

/// The SPIFFE trust domain of the workload certificates.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// The namespace the workloads run in (principals name it).
pub const NAMESPACE: &str = "default";

/// OpenBao's port in the walkthrough (scenario 11: `cargo xtask openbao
/// up`), its usual one.
pub const OPENBAO_PORT: u16 = 8200;

/// The first sidecar's ports are `SIDECAR_PORT_BASE + 10`, `+ 11`, `+ 12`.
pub const SIDECAR_PORT_BASE: u16 = 15000;

/// What a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// jwt-factory: the token service.
    Factory,
    /// servicea: calls the receivers.
    Caller,
    /// serviceb and servicec.
    Receiver,
    /// The gateway's token verifier, asked by nginx (scenario 9).
    Verifier,
    /// nginx, the gateway (scenario 9).
    Gateway,
    /// Envoy beside a workload (scenario 10).
    Sidecar,
}

/// One process of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its name: the subcommand or binary that runs it, its log's name.
    pub name: &'static str,
    pub kind: Kind,
    /// The workload it is, or for a sidecar the one it sits beside: its
    /// service account, its certificate's name (`certs/<workload>.pem`).
    pub workload: &'static str,
    /// Its plain-http port; a sidecar's admin port.
    pub port: u16,
    /// Its https port, if it has one.
    pub https_port: Option<u16>,
}

/// jwt-factory: plain http, and https (mTLS) for scenario 8's bound tokens.
pub const FACTORY: Process = Process {
    name: "jwt-factory",
    kind: Kind::Factory,
    workload: "jwt-factory",
    port: 5555,
    https_port: Some(5556),
};

/// servicea, the caller. It has no https listener.
pub const SERVICEA: Process = Process {
    name: "servicea",
    kind: Kind::Caller,
    workload: "servicea",
    port: 3000,
    https_port: None,
};

/// serviceb, a receiver.
pub const SERVICEB: Process = Process {
    name: "serviceb",
    kind: Kind::Receiver,
    workload: "serviceb",
    port: 3001,
    https_port: Some(8443),
};

/// servicec, a receiver.
pub const SERVICEC: Process = Process {
    name: "servicec",
    kind: Kind::Receiver,
    workload: "servicec",
    port: 3002,
    https_port: Some(9443),
};

/// The gateway's verifier: nginx asks it, on loopback.
pub const VERIFIER: Process = Process {
    name: "verifier",
    kind: Kind::Verifier,
    workload: "verifier",
    port: 3003,
    https_port: None,
};

/// The gateway (nginx): `/serviceb/...` leads to serviceb over mTLS.
pub const GATEWAY: Process = Process {
    name: "gateway",
    kind: Kind::Gateway,
    workload: "gateway",
    port: 8080,
    https_port: None,
};

/// The workloads with a sidecar, in order: the Nth gets the Nth ports.
pub const MESH_WORKLOADS: [Process; 3] = [SERVICEA, SERVICEB, SERVICEC];

/// servicea's, serviceb's and servicec's sidecars.
pub const SIDECARS: [Process; 3] = [sidecar(0), sidecar(1), sidecar(2)];

/// Every process, in the order the stack starts them.
pub const PROCESSES: [Process; 9] = [
    FACTORY,
    SERVICEA,
    SERVICEB,
    SERVICEC,
    VERIFIER,
    GATEWAY,
    SIDECARS[0],
    SIDECARS[1],
    SIDECARS[2],
];

/// The sidecar of the `index`th mesh workload (from 0).
const fn sidecar(index: usize) -> Process {
    let workload = MESH_WORKLOADS[index];
    Process {
        name: match index {
            0 => "sidecar-servicea",
            1 => "sidecar-serviceb",
            _ => "sidecar-servicec",
        },
        kind: Kind::Sidecar,
        workload: workload.workload,
        port: SIDECAR_PORT_BASE + 10 * (index as u16 + 1),
        https_port: None,
    }
}

/// The process named `name`.
pub fn by_name(name: &str) -> Option<&'static Process> {
    PROCESSES.iter().find(|p| p.name == name)
}

/// The sidecar beside `workload`, if it has one.
pub fn sidecar_of(workload: &str) -> Option<&'static Process> {
    SIDECARS.iter().find(|p| p.workload == workload)
}

impl Process {
    /// Where it listens: loopback, its plain port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its https listener, on loopback.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_port
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// `http://localhost:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://{LOCALHOST}:{}", self.port)
    }

    /// `https://localhost:HTTPS_PORT`, if it has https.
    pub fn https_url(&self) -> Option<String> {
        self.https_port
            .map(|port| format!("https://{LOCALHOST}:{port}"))
    }

    /// As the mesh names it: `http://serviceb:3001` (its Service).
    pub fn mesh_url(&self) -> String {
        format!("http://{}:{}", self.workload, self.port)
    }

    /// The names a request through the mesh may carry as its `Host`: the
    /// Service's short and qualified names.
    pub fn mesh_host_names(&self) -> [String; 4] {
        let name = self.workload;
        [
            name.to_owned(),
            format!("{name}.{NAMESPACE}"),
            format!("{name}.{NAMESPACE}.svc"),
            format!("{name}.{NAMESPACE}.svc.{TRUST_DOMAIN}"),
        ]
    }

    /// Its SPIFFE ID in [`TRUST_DOMAIN`].
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{}",
            self.workload
        )
    }

    /// A sidecar's ports: admin, inbound (mTLS from other sidecars),
    /// outbound (its workload's HTTP proxy).
    pub fn sidecar_ports(&self) -> Option<[u16; 3]> {
        (self.kind == Kind::Sidecar).then_some([self.port, self.port + 1, self.port + 2])
    }

    /// Every port it listens on.
    pub fn ports(&self) -> Vec<u16> {
        match self.sidecar_ports() {
            Some(ports) => ports.to_vec(),
            None => std::iter::once(self.port).chain(self.https_port).collect(),
        }
    }

    /// Its env file, for the processes `app` or jwt-factory run.
    pub fn env_file(&self) -> Option<String> {
        match self.kind {
            Kind::Gateway | Kind::Sidecar => None,
            _ => Some(format!("env/{}.env", self.name)),
        }
    }
}

/// Every port of the stack, once each.
pub fn all_ports() -> Vec<u16> {
    PROCESSES.iter().flat_map(Process::ports).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_processes_share_a_port() {
        let mut ports = all_ports();
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "{ports:?}");
        assert_eq!(n, 18);
    }

    #[test]
    fn names_are_unique_and_found() {
        for p in PROCESSES {
            assert_eq!(by_name(p.name), Some(&p));
        }
        assert_eq!(by_name("nobody"), None);
    }

    #[test]
    fn sidecars_take_ten_ports_each_from_the_base() {
        assert_eq!(SIDECARS[0].sidecar_ports(), Some([15010, 15011, 15012]));
        assert_eq!(sidecar_of("servicec").map(|p| p.port), Some(15030));
        assert_eq!(sidecar_of("jwt-factory"), None);
    }

    #[test]
    fn urls_and_names() {
        assert_eq!(SERVICEB.http_url(), "http://localhost:3001");
        assert_eq!(
            SERVICEB.https_url().as_deref(),
            Some("https://localhost:8443")
        );
        assert_eq!(SERVICEB.mesh_url(), "http://serviceb:3001");
        assert_eq!(
            SERVICEB.spiffe_id(),
            "spiffe://cluster.local/ns/default/sa/serviceb"
        );
        assert_eq!(
            SERVICEC.mesh_host_names()[3],
            "servicec.default.svc.cluster.local"
        );
    }
}
