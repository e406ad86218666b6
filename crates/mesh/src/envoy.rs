//! Envoy's configuration, as JSON: the pieces every sidecar is made of.
//!
//! Plain builders with no policy logic: [`crate::render`] decides what goes
//! where. Envoy reads JSON as readily as YAML, and serde_json writes it.

use std::{net::SocketAddr, path::Path};

use serde_json::{Value, json};

const TLS: &str = "envoy.transport_sockets.tls";

/// An address on loopback.
pub fn loopback(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// A file Envoy reads, and reloads when a file is moved into its folder.
pub fn file_source(path: &Path) -> Value {
    let dir = path.parent().unwrap_or(Path::new("."));
    json!({
        "resource_api_version": "V3",
        "path_config_source": {
            "path": path.display().to_string(),
            "watched_directory": { "path": dir.display().to_string() },
        },
    })
}

/// The bootstrap: the admin interface, and listeners and clusters from
/// files in `dir` (`lds.json`, `cds.json`).
pub fn bootstrap(workload: &str, admin: u16, dir: &Path) -> Value {
    json!({
        "node": { "id": format!("{workload}~sidecar"), "cluster": workload },
        "admin": { "address": loopback(admin) },
        // A bound on open connections: past it Envoy refuses new ones
        // instead of running out of memory.
        "overload_manager": {
            "resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": 4096,
                },
            }],
        },
        "dynamic_resources": {
            "lds_config": file_source(&dir.join("lds.json")),
            "cds_config": file_source(&dir.join("cds.json")),
        },
    })
}

/// The certificate and key a sidecar presents, and the CA it trusts, with
/// the SPIFFE IDs it accepts from the other side.
pub fn common_tls(cert: &Path, key: &Path, ca: &Path, peer_san: Value) -> Value {
    json!({
        "tls_params": { "tls_minimum_protocol_version": "TLSv1_2" },
        "tls_certificates": [{
            "certificate_chain": { "filename": cert.display().to_string() },
            "private_key": { "filename": key.display().to_string() },
        }],
        "validation_context": {
            "trusted_ca": { "filename": ca.display().to_string() },
            "match_typed_subject_alt_names": [{ "san_type": "URI", "matcher": peer_san }],
        },
    })
}

/// Server side of mTLS: a client certificate is required.
pub fn downstream_tls(common: Value) -> Value {
    json!({
        "name": TLS,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": true,
            "common_tls_context": common,
        },
    })
}

/// Client side of mTLS, to the workload named `sni`.
pub fn upstream_tls(common: Value, sni: &str) -> Value {
    json!({
        "name": TLS,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": common,
        },
    })
}

/// A cluster of one address, optionally over TLS.
pub fn cluster(name: &str, addr: SocketAddr, tls: Option<Value>) -> Value {
    let mut cluster = json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(addr) } }] }],
        },
    });
    if let Some(tls) = tls {
        cluster["transport_socket"] = tls;
    }
    cluster
}

/// An HTTP filter by name and typed configuration.
pub fn http_filter(name: &str, type_url: &str, mut config: Value) -> Value {
    config["@type"] = json!(format!("type.googleapis.com/{type_url}"));
    json!({ "name": name, "typed_config": config })
}

pub fn router() -> Value {
    http_filter(
        "envoy.filters.http.router",
        "envoy.extensions.filters.http.router.v3.Router",
        json!({}),
    )
}

/// Removes request headers before any other filter sees them.
pub fn remove_request_headers(names: &[String]) -> Value {
    let mutations: Vec<Value> = names.iter().map(|n| json!({ "remove": n })).collect();
    http_filter(
        "strip-forged-headers",
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        json!({ "mutations": { "request_mutations": mutations } }),
    )
}

/// An RBAC filter named `name` that enforces nothing unless a route gives
/// it rules ([`rbac_per_route`]).
pub fn rbac_filter(name: &str) -> Value {
    http_filter(
        name,
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        json!({}),
    )
}

/// A route's rules for an RBAC filter.
pub fn rbac_per_route(rules: Value) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "rbac": { "rules": rules },
    })
}

/// A request with an underscore in a header name is refused (400):
/// `x_forwarded_client_cert` would slip past the rules on
/// `x-forwarded-client-cert`, and some frameworks read both as one.
pub fn no_underscore_headers() -> Value {
    json!({ "headers_with_underscores_action": "REJECT_REQUEST" })
}

/// One line per request on the sidecar's stdout: what it decided and why.
pub fn access_log(who: &str) -> Value {
    let format = format!(
        "[{who}] %REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)% -> \
         %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% peer=%DOWNSTREAM_PEER_URI_SAN% \
         upstream=%UPSTREAM_HOST% %DURATION%ms\n"
    );
    json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {
                "text_format_source": { "inline_string": format },
                // The path without its query: a token sent as
                // `?access_token=` never lands in the log.
                "formatters": [{
                    "name": "envoy.formatter.req_without_query",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery",
                    },
                }],
            },
        },
    }])
}

/// The sidecar's own answers (a refusal, no route, a peer down) as JSON
/// that says why, like every other answer of the workshop: Envoy's text
/// (`RBAC: access denied`, `Jwt is expired`) becomes `message`.
pub fn json_local_replies(who: &str) -> Value {
    json!({
        "body_format": {
            "json_format": {
                "message": "%LOCAL_REPLY_BODY%",
                "details": "%RESPONSE_CODE_DETAILS%",
                "by": who,
            },
        },
    })
}

/// An HTTP connection manager.
pub fn http_connection_manager(stat_prefix: &str, mut config: Value) -> Value {
    config["@type"] = json!(
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    config["stat_prefix"] = json!(stat_prefix);
    config["codec_type"] = json!("AUTO");
    json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": config })
}

/// A discovery response: what a file-based xDS source holds.
pub fn discovery_response(version: &str, resources: Vec<Value>) -> Value {
    json!({ "version_info": version, "resources": resources })
}
