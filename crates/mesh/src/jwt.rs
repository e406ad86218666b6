//! RequestAuthentication → Envoy's `jwt_authn` filter.
//!
//! As Istio configures it: every issuer of every RequestAuthentication that
//! applies is a provider; a request passes with no token at all, or with a
//! token one provider verifies (issuer, signature by a key of its JWK Set,
//! `exp`/`nbf`, audience), and is refused otherwise: 401, or 403 for a
//! token for another audience. Whether a
//! token is *required* is the AuthorizationPolicy's business
//! (`requestPrincipals`), as in Istio.
//!
//! The difference from a cluster, said plainly: istiod fetches `jwksUri`
//! itself and inlines the keys (refreshing about every 20 minutes; on a
//! failed fetch it inlines a key set that refuses every token). Here each
//! sidecar fetches the URI, cached [`crate::Topology::jwks_cache`].

use std::{collections::BTreeMap, net::SocketAddr};

use serde_json::{Value, json};

use crate::{
    MeshError, Topology,
    istio::{JwtRule, RequestAuthenticationSpec, Resource},
};

/// The header the workshop's services read verified claims from
/// (`outputPayloadToHeader` in deploy/istio). Every inbound listener
/// removes it from incoming requests, whatever the policies say: a
/// RequestAuthentication that is missing, renamed or selects the wrong
/// workload must not leave a header the app trusts open to forgery.
pub const PAYLOAD_HEADER: &str = "x-mesh-jwt-payload";

/// Where jwt_authn leaves the verified payload in the request's metadata,
/// for RBAC's `requestPrincipals`.
pub const PAYLOAD_METADATA: &str = "jwt_payload";

/// The filter's configuration and the clusters its key sets are fetched
/// from (name → address).
#[derive(Debug, Default)]
pub struct JwtConfig {
    pub filter: Option<Value>,
    pub jwks_clusters: BTreeMap<String, SocketAddr>,
    /// Headers the sidecar writes the verified payload to: removed from
    /// every incoming request first, so a caller cannot forge them.
    pub payload_headers: Vec<String>,
    /// One line per provider, for the narration.
    pub summary: Vec<String>,
}

pub fn config(
    topology: &Topology,
    policies: &[&Resource<RequestAuthenticationSpec>],
) -> Result<JwtConfig, MeshError> {
    let mut out = JwtConfig {
        payload_headers: vec![PAYLOAD_HEADER.to_owned()],
        ..JwtConfig::default()
    };
    let mut providers = serde_json::Map::new();
    for policy in policies {
        for (i, rule) in policy.spec.jwt_rules.iter().enumerate() {
            let bad = |what: String| MeshError::Resource {
                path: policy.file.clone(),
                what: format!(
                    "RequestAuthentication {}: jwtRules[{i}] (issuer {}): {what}",
                    policy.id(),
                    rule.issuer
                ),
            };
            let provider = provider(topology, rule, &mut out).map_err(bad)?;
            out.summary.push(format!(
                "accepts tokens from {} for {} ({}; {})",
                rule.issuer,
                if rule.audiences.is_empty() {
                    "any audience".to_owned()
                } else {
                    rule.audiences.join(", ")
                },
                provider.keys,
                policy.id()
            ));
            providers.insert(format!("{}[{i}]", policy.id()), provider.json);
        }
    }
    if !providers.is_empty() {
        out.filter = Some(filter(providers));
    }
    Ok(out)
}

/// One jwt_authn provider, and where its keys come from in words.
struct Provider {
    json: Value,
    keys: String,
}

/// The provider of one jwtRule. Its payload header and its JWK Set's
/// cluster are added to `out`. The error is the message, without the rule.
fn provider(topology: &Topology, rule: &JwtRule, out: &mut JwtConfig) -> Result<Provider, String> {
    if rule.issuer.trim().is_empty() {
        // Envoy reads an empty issuer as "any issuer"; Istio refuses it.
        return Err("an empty issuer".into());
    }
    if rule.audiences.iter().any(|a| a.trim().is_empty()) {
        return Err("an empty audience".into());
    }
    let mut provider = json!({
        "issuer": rule.issuer,
        "forward": rule.forward_original_token,
        "payload_in_metadata": PAYLOAD_METADATA,
    });
    if !rule.audiences.is_empty() {
        provider["audiences"] = json!(rule.audiences);
    }
    if let Some(header) = &rule.output_payload_to_header {
        check_header_name(header)?;
        provider["forward_payload_header"] = json!(header);
        let header = header.to_ascii_lowercase();
        if !out.payload_headers.contains(&header) {
            out.payload_headers.push(header);
        }
    }
    let keys = match (&rule.jwks_uri, &rule.jwks) {
        (Some(uri), _) => {
            let (cluster, addr, local_uri) = local_jwks_uri(topology, uri)?;
            provider["remote_jwks"] = json!({
                "http_uri": { "uri": local_uri, "cluster": cluster, "timeout": "2s" },
                "cache_duration": format!("{}s", topology.jwks_cache.as_secs().max(1)),
                // Fetched when the listener starts and refreshed
                // before it expires, not on a request's time; a
                // failed refresh keeps the keys it has.
                "async_fetch": { "failed_refetch_duration": "1s" },
            });
            out.jwks_clusters.insert(cluster, addr);
            format!(
                "keys from {uri} (here {local_uri}), cached {} s",
                topology.jwks_cache.as_secs()
            )
        }
        (None, Some(inline)) => {
            provider["local_jwks"] = json!({ "inline_string": inline });
            "keys inline".to_owned()
        }
        (None, None) => return Err("no jwksUri or jwks".into()),
    };
    Ok(Provider {
        json: provider,
        keys,
    })
}

/// The jwt_authn filter over `providers`: a request passes with a token
/// one of them verifies, or with none.
fn filter(providers: serde_json::Map<String, Value>) -> Value {
    let requirements: Vec<Value> = providers
        .keys()
        .map(|name| json!({ "provider_name": name }))
        .chain([json!({ "allow_missing": {} })])
        .collect();
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": providers,
            "rules": [{
                "match": { "prefix": "/" },
                "requires": { "requires_any": { "requirements": requirements } },
            }],
        },
    })
}

/// `http://jwt-factory.default.svc.cluster.local:5555/.well-known/jwks.json`
/// names the Service `jwt-factory`: on the laptop it is the address the
/// topology gives that name. Returns the cluster name, its address and the
/// URI to fetch (with the laptop's address as its host, which the factory
/// accepts as a Host header).
fn local_jwks_uri(topology: &Topology, uri: &str) -> Result<(String, SocketAddr, String), String> {
    let rest = uri.strip_prefix("http://").ok_or_else(|| {
        format!("jwksUri {uri:?}: only http:// URIs of in-mesh Services are translated")
    })?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    // A Service's names: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
    let labels: Vec<&str> = host.split('.').collect();
    let service = labels.first().copied().unwrap_or_default();
    let ns = &topology.namespace;
    let known = match labels.as_slice() {
        [_] => true,
        [_, n] | [_, n, "svc"] | [_, n, "svc", "cluster", "local"] => n == ns,
        _ => false,
    };
    if !known {
        return Err(format!(
            "jwksUri {uri:?}: {host} is not a Service of namespace {ns} \
             (`<service>[.{ns}[.svc[.cluster.local]]]`): the laptop mesh reaches those only"
        ));
    }
    let addr = topology.services.get(service).ok_or_else(|| {
        format!(
            "jwksUri {uri:?}: no address for Service {service:?} (known: {})",
            topology
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let path = if path.is_empty() { "/" } else { path };
    Ok((
        format!("jwks|{service}"),
        *addr,
        format!("http://{addr}{path}"),
    ))
}

/// An HTTP header name a sidecar may set: `x-...`, and not one Envoy or
/// the mesh already gives a meaning (`x-envoy-*`, `x-forwarded-*`).
fn check_header_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let ok = name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && lower.starts_with("x-")
        && lower.len() > 2
        && !lower.starts_with("x-envoy-")
        && !lower.starts_with("x-forwarded-");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "outputPayloadToHeader {name:?}: a header name `x-...` of letters, digits and '-', \
             not x-envoy-* or x-forwarded-*"
        ))
    }
}
