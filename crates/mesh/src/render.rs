//! One sidecar's whole configuration from the topology and the policies
//! that apply to its workload.
//!
//! | file | holds | changes when |
//! | --- | --- | --- |
//! | `envoy.json` | bootstrap: admin port, where the files below are | the topology changes (restart) |
//! | `cds.json` | clusters: the app, the other sidecars (mTLS), JWKS sources | the topology or a jwksUri |
//! | `lds.json` | listeners: inbound (mTLS per PeerAuthentication, jwt_authn per RequestAuthentication), outbound | a PeerAuthentication or RequestAuthentication |
//! | `rds.json` | the inbound route, with its RBAC rules | an AuthorizationPolicy |
//!
//! AuthorizationPolicy lands in the route configuration on purpose: Envoy
//! applies a new route configuration to the next request, on connections
//! already open too, so a policy change takes effect at once, as
//! `kubectl apply` does in a cluster. A new listener only serves new
//! connections, and open ones drain.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::{
    MeshError, Topology,
    envoy::{self, discovery_response},
    istio::{Action, MtlsMode, Policies},
    jwt, rbac, select,
    topology::Sidecar,
};

/// The files of one sidecar, each with the version it carries.
#[derive(Debug)]
pub struct SidecarConfig {
    pub sidecar: Sidecar,
    pub bootstrap: Value,
    /// `(file name, content, version)`, in the order to write them: clusters
    /// before the routes that use them, routes before the listener that
    /// names them.
    pub files: Vec<(&'static str, Value, String)>,
    /// What this sidecar enforces, in words.
    pub summary: Vec<String>,
}

impl SidecarConfig {
    pub fn version(&self, file: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(name, ..)| *name == file)
            .map(|(.., v)| v.as_str())
    }
}

/// Every sidecar's configuration, written under `dir/<workload>/`.
pub fn render(
    topology: &Topology,
    policies: &Policies,
    dir: &Path,
) -> Result<Vec<SidecarConfig>, MeshError> {
    topology
        .sidecars
        .iter()
        .map(|s| render_one(topology, policies, s, &dir.join(&s.workload)))
        .collect()
}

/// A workload's labels, as the selectors read them.
type Labels = BTreeMap<String, String>;

/// What every section of one sidecar's configuration reads.
struct Context<'a> {
    topology: &'a Topology,
    policies: &'a Policies,
    sidecar: &'a Sidecar,
    /// Where this sidecar's files go.
    dir: &'a Path,
    /// The sidecar's certificate and key, under `topology.certs`.
    cert: PathBuf,
    key: PathBuf,
}

impl Context<'_> {
    /// The sidecar's TLS context, requiring `peer_san` of the other side.
    fn tls_with(&self, peer_san: Value) -> Value {
        envoy::common_tls(&self.cert, &self.key, &self.topology.ca, peer_san)
    }

    /// Every other sidecar of the topology.
    fn others(&self) -> impl Iterator<Item = &Sidecar> {
        let me = &self.sidecar.workload;
        self.topology
            .sidecars
            .iter()
            .filter(move |o| o.workload != *me)
    }
}

fn render_one(
    topology: &Topology,
    policies: &Policies,
    sidecar: &Sidecar,
    dir: &Path,
) -> Result<SidecarConfig, MeshError> {
    let ctx = Context {
        topology,
        policies,
        sidecar,
        dir,
        cert: topology.certs.join(format!("{}.pem", sidecar.workload)),
        key: topology.certs.join(format!("{}-key.pem", sidecar.workload)),
    };
    let labels = Topology::labels(&sidecar.workload);
    let ns = &topology.namespace;
    let mut summary = Vec::new();

    let mode = mtls_mode(&ctx, &labels, &mut summary);
    // --- Tokens (RequestAuthentication).
    let jwt = jwt::config(topology, &select::applying(&policies.request, ns, &labels))?;
    summary.extend(jwt.summary.iter().cloned());
    let route_config = inbound_route(&ctx, &labels, &mut summary)?;
    let inbound = inbound_listener(&ctx, mode, &jwt);
    let (mut clusters, outbound) = outbound_listener(&ctx, &mut summary);
    for (name, addr) in &jwt.jwks_clusters {
        clusters.push(envoy::cluster(name, *addr, None));
    }

    let files = vec![
        versioned("cds.json", clusters),
        versioned("rds.json", vec![route_config]),
        versioned("lds.json", vec![inbound, outbound]),
    ];
    Ok(SidecarConfig {
        sidecar: sidecar.clone(),
        bootstrap: envoy::bootstrap(&sidecar.workload, sidecar.admin, dir),
        files,
        summary,
    })
}

/// mTLS (PeerAuthentication) on the inbound port: the mode, said in `summary`.
fn mtls_mode(ctx: &Context<'_>, labels: &Labels, summary: &mut Vec<String>) -> MtlsMode {
    let (mode, by) = select::mtls_mode(&ctx.policies.peer, &ctx.topology.namespace, labels);
    summary.push(format!(
        "inbound 127.0.0.1:{} -> app {}: mTLS {} ({})",
        ctx.sidecar.inbound,
        ctx.sidecar.app,
        mode_name(mode),
        by.map_or("no PeerAuthentication: Istio's default".to_owned(), |r| {
            format!("PeerAuthentication {}", r.id())
        })
    ));
    mode
}

/// Authorization (AuthorizationPolicy), per route: the inbound route
/// configuration with its RBAC rules, said in `summary`.
fn inbound_route(
    ctx: &Context<'_>,
    labels: &Labels,
    summary: &mut Vec<String>,
) -> Result<Value, MeshError> {
    let authz = select::applying(&ctx.policies.authz, &ctx.topology.namespace, labels);
    let deny = rbac::rules(&authz, Action::Deny)?;
    let allow = rbac::rules(&authz, Action::Allow)?;
    let names = |action| {
        authz
            .iter()
            .filter(|p| p.spec.action == action)
            .map(|p| p.id())
            .collect::<Vec<_>>()
            .join(", ")
    };
    summary.push(match (&deny, &allow) {
        (None, None) => "no AuthorizationPolicy: every caller that passes the checks above".into(),
        _ => format!(
            "AuthorizationPolicy: deny [{}], allow [{}]{}",
            names(Action::Deny),
            names(Action::Allow),
            if allow
                .as_ref()
                .is_some_and(|a| a["policies"].as_object().is_some_and(|p| p.is_empty()))
            {
                " (no ALLOW rule: nothing is allowed)"
            } else {
                ""
            }
        ),
    });
    let mut per_filter = serde_json::Map::new();
    if let Some(rules) = deny {
        per_filter.insert("rbac-deny".into(), envoy::rbac_per_route(rules));
    }
    if let Some(rules) = allow {
        per_filter.insert("rbac-allow".into(), envoy::rbac_per_route(rules));
    }
    Ok(json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "inbound",
        "virtual_hosts": [{
            "name": "inbound",
            "domains": ["*"],
            "routes": [{
                "match": { "prefix": "/" },
                "route": { "cluster": "inbound|app", "timeout": "10s" },
                "typed_per_filter_config": per_filter,
            }],
        }],
    }))
}

/// The inbound listener: mTLS per `mode`, then the token check, the RBAC
/// filters and the route to the app.
fn inbound_listener(ctx: &Context<'_>, mode: MtlsMode, jwt: &jwt::JwtConfig) -> Value {
    let workload = &ctx.sidecar.workload;
    let mut filters = Vec::new();
    filters.push(envoy::remove_request_headers(&jwt.payload_headers));
    filters.extend(jwt.filter.clone());
    filters.push(envoy::rbac_filter("rbac-deny"));
    filters.push(envoy::rbac_filter("rbac-allow"));
    filters.push(envoy::router());
    let inbound_hcm = envoy::http_connection_manager(
        "inbound",
        json!({
            // The peer's identity reaches the app in x-forwarded-client-cert,
            // set here from the verified certificate; a caller's own is dropped.
            "forward_client_cert_details": "SANITIZE_SET",
            // The app sees the name it is called by (`serviceb`), not the
            // port the caller aimed at: on the laptop that port is the
            // sidecar's, not the app's.
            "strip_any_host_port": true,
            // Paths as Istio's default normalization leaves them, so a
            // policy on `/admin` also meets `/./admin` and `//admin`;
            // `%2F` is refused rather than guessed.
            "normalize_path": true,
            "merge_slashes": true,
            "path_with_escaped_slashes_action": "REJECT_REQUEST",
            "common_http_protocol_options": envoy::no_underscore_headers(),
            "set_current_client_cert_details": { "uri": true },
            "rds": { "route_config_name": "inbound", "config_source": envoy::file_source(&ctx.dir.join("rds.json")) },
            "http_filters": filters,
            "access_log": envoy::access_log(&format!("{workload} sidecar inbound")),
            "local_reply_config": envoy::json_local_replies(&format!("{workload}'s sidecar")),
        }),
    );
    let mesh_peers = json!({ "prefix": format!("spiffe://{}/", ctx.topology.trust_domain) });
    let tls_chain = json!({
        "filter_chain_match": { "transport_protocol": "tls" },
        "transport_socket": envoy::downstream_tls(ctx.tls_with(mesh_peers)),
        "filters": [inbound_hcm.clone()],
    });
    let plain_chain = json!({
        "filter_chain_match": { "transport_protocol": "raw_buffer" },
        "filters": [inbound_hcm],
    });
    let chains = match mode {
        MtlsMode::Strict => vec![tls_chain],
        MtlsMode::Permissive | MtlsMode::Unset => vec![tls_chain, plain_chain],
        MtlsMode::Disable => vec![plain_chain],
    };
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "inbound",
        "address": envoy::loopback(ctx.sidecar.inbound),
        "listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" },
        }],
        "filter_chains": chains,
    })
}

/// The outbound listener, the workload's HTTP proxy to the others, said
/// in `summary`; with the clusters: the app's, then one per other sidecar.
fn outbound_listener(ctx: &Context<'_>, summary: &mut Vec<String>) -> (Vec<Value>, Value) {
    let (topology, sidecar) = (ctx.topology, ctx.sidecar);
    let mut clusters = vec![envoy::cluster("inbound|app", sidecar.app, None)];
    let mut virtual_hosts = Vec::new();
    for other in ctx.others() {
        let (cluster, virtual_host) = outbound_route(ctx, other);
        clusters.push(cluster);
        virtual_hosts.push(virtual_host);
    }
    let outbound = json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": "outbound",
        "address": envoy::loopback(sidecar.outbound),
        "filter_chains": [{
            "filters": [envoy::http_connection_manager("outbound", json!({
                // The app names its peer in the URL (http://serviceb:3001/...),
                // with this sidecar as its HTTP proxy.
                "http_protocol_options": { "allow_absolute_url": true },
                "common_http_protocol_options": envoy::no_underscore_headers(),
                "route_config": { "name": "outbound", "virtual_hosts": virtual_hosts },
                "http_filters": [envoy::router()],
                "access_log": envoy::access_log(&format!("{} sidecar outbound", sidecar.workload)),
                "local_reply_config": envoy::json_local_replies(&format!("{}'s sidecar", sidecar.workload)),
            }))],
        }],
    });
    summary.push(format!(
        "outbound proxy 127.0.0.1:{}: mTLS as {} to {}",
        sidecar.outbound,
        topology.spiffe_id(&sidecar.workload),
        ctx.others()
            .map(|o| o.workload.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    (clusters, outbound)
}

/// The cluster of `other`'s sidecar and the virtual host that routes its
/// names to it.
fn outbound_route(ctx: &Context<'_>, other: &Sidecar) -> (Value, Value) {
    let ns = &ctx.topology.namespace;
    let name = &other.workload;
    let cluster = format!("outbound|{name}");
    let (other_mode, _) = select::mtls_mode(&ctx.policies.peer, ns, &Topology::labels(name));
    // Istio's auto mTLS: to a sidecar that accepts it, always mTLS, and
    // only to the identity that workload must have.
    let tls = (other_mode != MtlsMode::Disable).then(|| {
        envoy::upstream_tls(
            ctx.tls_with(json!({ "exact": ctx.topology.spiffe_id(name) })),
            name,
        )
    });
    let hosts = [
        name.clone(),
        format!("{name}.{ns}"),
        format!("{name}.{ns}.svc"),
        format!("{name}.{ns}.svc.cluster.local"),
    ];
    let domains: Vec<String> = hosts
        .iter()
        .flat_map(|h| [h.clone(), format!("{h}:*")])
        .collect();
    (
        envoy::cluster(&cluster, ([127, 0, 0, 1], other.inbound).into(), tls),
        json!({
            "name": name,
            "domains": domains,
            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster, "timeout": "10s" } }],
        }),
    )
}

/// A file's discovery response, its version the digest of its resources
/// (the same resources, the same version: nothing reloads).
fn versioned(file: &'static str, resources: Vec<Value>) -> (&'static str, Value, String) {
    let bytes = serde_json::to_vec(&resources).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    let version: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (file, discovery_response(&version, resources), version)
}

fn mode_name(mode: MtlsMode) -> &'static str {
    match mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Permissive | MtlsMode::Unset => "PERMISSIVE",
        MtlsMode::Disable => "DISABLE",
    }
}
