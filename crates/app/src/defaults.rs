//! Defaults derived from the topology (the `topology` crate), as the
//! `&'static str` clap's `default_value` takes: each is built once, on
//! first use. So no port or URL is written twice.

use std::sync::LazyLock;

use topology::{FACTORY, GATEWAY, MESH_WORKLOADS, Process, SERVICEA, SERVICEB, SERVICEC, VERIFIER};

/// `fn name() -> &'static str` for each `name => value`, built once.
macro_rules! derived {
    ($($(#[$doc:meta])* $name:ident => $value:expr;)*) => {
        $(
            $(#[$doc])*
            pub(crate) fn $name() -> &'static str {
                static VALUE: LazyLock<String> = LazyLock::new(|| $value);
                VALUE.as_str()
            }
        )*
    };
}

/// `NAME=127.0.0.1:PORT,...` of each process, on its plain or https port.
fn routes(processes: &[Process], https: bool) -> String {
    processes
        .iter()
        .map(|p| {
            let addr = if https {
                p.https_addr()
            } else {
                Some(p.addr())
            };
            let addr = addr.map_or_else(String::new, |a| a.to_string());
            format!("{}={addr}", p.name)
        })
        .collect::<Vec<_>>()
        .join(",")
}

derived! {
    /// jwt-factory's plain-http URL.
    factory_url => FACTORY.http_url();
    /// jwt-factory's https (mTLS) URL.
    factory_https_url => FACTORY.https_url().unwrap_or_default();
    serviceb_url => SERVICEB.http_url();
    serviceb_https_url => SERVICEB.https_url().unwrap_or_default();
    servicec_url => SERVICEC.http_url();
    servicec_https_url => SERVICEC.https_url().unwrap_or_default();
    /// The gateway (nginx).
    gateway_url => GATEWAY.http_url();
    /// servicea's sidecar's outbound port: its HTTP proxy into the mesh.
    mesh_proxy => topology::sidecar_of("servicea")
        .and_then(Process::sidecar_ports)
        .map_or_else(String::new, |[_, _, outbound]| format!("http://127.0.0.1:{outbound}"));
    /// The workloads with a sidecar, where each application listens.
    mesh_workloads => routes(&MESH_WORKLOADS, false);
    /// The services outside the mesh that its policies name.
    mesh_services => routes(&[FACTORY], false);
    /// Where nginx listens.
    gateway_listen => GATEWAY.addr().to_string();
    /// The verifier nginx asks.
    verifier_addr => VERIFIER.addr().to_string();
    /// The receivers, by name: the services the gateway routes to.
    receiver_names => [SERVICEB, SERVICEC].map(|p| p.name).join(",");
    /// The gateway's routes: each receiver's https (mTLS) listener.
    gateway_routes => routes(&[SERVICEB, SERVICEC], true);
    /// What to do when servicea's signing key is missing: the two ways.
    gen_keys_hint => format!(
        "Create it with `curl -X POST {}/gen-keys` (or `cargo run --release --bin app -- gen-keys`)",
        SERVICEA.http_url()
    );
    /// The same, said to a receiver that lacks servicea's public key.
    gen_keys_on_servicea_hint => format!(
        "Create it on servicea with `curl -X POST {}/gen-keys`",
        SERVICEA.http_url()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_the_topology() {
        assert_eq!(serviceb_url(), "http://localhost:3001");
        assert_eq!(servicec_https_url(), "https://localhost:9443");
        assert_eq!(mesh_proxy(), "http://127.0.0.1:15012");
        assert_eq!(
            mesh_workloads(),
            "servicea=127.0.0.1:3000,serviceb=127.0.0.1:3001,servicec=127.0.0.1:3002"
        );
        assert_eq!(
            gateway_routes(),
            "serviceb=127.0.0.1:8443,servicec=127.0.0.1:9443"
        );
        assert_eq!(mesh_services(), "jwt-factory=127.0.0.1:5555");
    }
}
