#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The translation from Istio's security resources to Envoy's configuration,
//! through the crate's public API only: a [`Topology`] built here, the real
//! YAML under `deploy/istio/` (and inline YAML for the edge cases), and
//! assertions on the JSON each sidecar would load. No Envoy runs.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use mesh::{
    Policies, Sidecar, SidecarConfig, Topology,
    write::{Written, write},
};
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

const WORKLOADS: [&str; 3] = ["servicea", "serviceb", "servicec"];

/// Where the rendered files would live (only paths inside the JSON).
const OUT: &str = "/run/mesh-test";

fn topology() -> Topology {
    let sidecars = WORKLOADS
        .iter()
        .zip(1u16..)
        .map(|(w, i)| {
            let app: SocketAddr = ([127, 0, 0, 1], 3000 + i).into();
            Sidecar::numbered(w, app, 15000, i).unwrap()
        })
        .collect();
    Topology {
        trust_domain: "cluster.local".into(),
        namespace: "default".into(),
        ca: PathBuf::from("/certs/ca.pem"),
        certs: PathBuf::from("/certs"),
        sidecars,
        services: BTreeMap::from([("jwt-factory".to_owned(), ([127, 0, 0, 1], 5555).into())]),
        jwks_cache: Duration::from_secs(300),
    }
}

fn istio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/istio")
}

/// The real base (`deploy/istio/*.yaml`), plus a step file if given
/// (`"2-allow-nothing.yaml"`).
fn policies(step: Option<&str>) -> Policies {
    let mut paths = vec![istio_dir()];
    paths.extend(step.map(|s| istio_dir().join("steps").join(s)));
    Policies::load(&paths).unwrap()
}

fn render(policies: &Policies) -> Vec<SidecarConfig> {
    mesh::render(&topology(), policies, Path::new(OUT)).unwrap()
}

fn rendered(step: Option<&str>) -> Vec<SidecarConfig> {
    render(&policies(step))
}

/// The base plus inline YAML, as if read from `file`.
fn with_yaml(file: &str, yaml: &str) -> Policies {
    let mut p = policies(None);
    p.add_yaml(Path::new(file), yaml).unwrap();
    p
}

/// Only the inline YAML (no PeerAuthentication, no RequestAuthentication).
fn only_yaml(yaml: &str) -> Policies {
    let mut p = Policies::default();
    p.add_yaml(Path::new("inline.yaml"), yaml).unwrap();
    p
}

/// The base plus inline YAML read as `file`, translated: the error, at
/// whichever stage (reading or rendering) refuses it.
fn refusal(file: &str, yaml: &str) -> String {
    let mut p = policies(None);
    let result = p
        .add_yaml(Path::new(file), yaml)
        .and_then(|()| mesh::render(&topology(), &p, Path::new(OUT)));
    let message = result.expect_err("should be refused").to_string();
    assert!(message.contains(file), "{message:?} does not name {file}");
    message
}

fn sidecar<'a>(configs: &'a [SidecarConfig], workload: &str) -> &'a SidecarConfig {
    configs
        .iter()
        .find(|c| c.sidecar.workload == workload)
        .unwrap_or_else(|| panic!("no sidecar {workload}"))
}

fn file<'a>(c: &'a SidecarConfig, name: &str) -> &'a Value {
    c.files
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, content, _)| content)
        .unwrap_or_else(|| panic!("{} has no {name}", c.sidecar.workload))
}

fn versions(c: &SidecarConfig) -> BTreeMap<&'static str, String> {
    c.files.iter().map(|(n, _, v)| (*n, v.clone())).collect()
}

fn resource<'a>(c: &'a SidecarConfig, file_name: &str, name: &str) -> Option<&'a Value> {
    file(c, file_name)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
}

fn listener<'a>(c: &'a SidecarConfig, name: &str) -> &'a Value {
    resource(c, "lds.json", name).unwrap_or_else(|| panic!("no listener {name}"))
}

fn cluster<'a>(c: &'a SidecarConfig, name: &str) -> Option<&'a Value> {
    resource(c, "cds.json", name)
}

fn chains(c: &SidecarConfig) -> &Vec<Value> {
    listener(c, "inbound")["filter_chains"].as_array().unwrap()
}

fn transport_protocols(c: &SidecarConfig) -> Vec<&str> {
    chains(c)
        .iter()
        .map(|ch| {
            ch["filter_chain_match"]["transport_protocol"]
                .as_str()
                .unwrap()
        })
        .collect()
}

/// The inbound HTTP filters, by name, in order.
fn inbound_filters(c: &SidecarConfig) -> &Vec<Value> {
    chains(c)[0]["filters"][0]["typed_config"]["http_filters"]
        .as_array()
        .unwrap()
}

fn filter_names(c: &SidecarConfig) -> Vec<&str> {
    inbound_filters(c)
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

fn inbound_filter<'a>(c: &'a SidecarConfig, name: &str) -> Option<&'a Value> {
    inbound_filters(c).iter().find(|f| f["name"] == name)
}

/// The RBAC rules a route gives the filter `name` (`rbac-allow`, `rbac-deny`).
fn route_rbac<'a>(c: &'a SidecarConfig, name: &str) -> Option<&'a Value> {
    let route = &file(c, "rds.json")["resources"][0]["virtual_hosts"][0]["routes"][0];
    route["typed_per_filter_config"]
        .get(name)
        .map(|per_route| &per_route["rbac"]["rules"])
}

fn policy_count(rules: &Value) -> usize {
    rules["policies"].as_object().unwrap().len()
}

fn mtls_principal(id: &str) -> Value {
    json!({ "authenticated": { "principal_name": { "exact": id } } })
}

fn jwt_claim(claim: &str, exact: &str) -> Value {
    json!({ "sourced_metadata": { "metadata_matcher": {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{ "key": "jwt_payload" }, { "key": claim }],
        "value": { "string_match": { "exact": exact } },
    }}})
}

fn authz(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
         metadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

fn peer_auth(name: &str, namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

fn request_auth(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n\
         metadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
    )
}

// ------------------------------------------------------ 1. the real base

#[test]
fn base_every_inbound_is_strict_mtls_from_the_mesh() {
    let configs = rendered(None);
    assert_eq!(configs.len(), 3);
    for c in &configs {
        let w = &c.sidecar.workload;
        assert_eq!(transport_protocols(c), ["tls"], "{w}");
        let tls = &chains(c)[0]["transport_socket"];
        assert_eq!(tls["name"], "envoy.transport_sockets.tls", "{w}");
        let ctx = &tls["typed_config"];
        assert_eq!(
            ctx["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
        );
        assert_eq!(ctx["require_client_certificate"], true, "{w}");
        let common = &ctx["common_tls_context"];
        assert_eq!(
            common["validation_context"]["match_typed_subject_alt_names"],
            json!([{ "san_type": "URI", "matcher": { "prefix": "spiffe://cluster.local/" } }]),
            "{w}"
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"]["filename"],
            "/certs/ca.pem"
        );
        assert_eq!(
            common["tls_certificates"][0]["certificate_chain"]["filename"],
            format!("/certs/{w}.pem")
        );
        assert_eq!(
            listener(c, "inbound")["address"]["socket_address"]["port_value"],
            c.sidecar.inbound
        );
    }
}

#[test]
fn base_serviceb_verifies_jwt_factory_tokens_for_its_audience() {
    let configs = rendered(None);
    let b = sidecar(&configs, "serviceb");
    let jwt = inbound_filter(b, "envoy.filters.http.jwt_authn").expect("serviceb has jwt_authn");
    let providers = jwt["typed_config"]["providers"].as_object().unwrap();
    assert_eq!(
        providers.len(),
        1,
        "only serviceb's RequestAuthentication: {providers:?}"
    );
    let provider = &providers["default/serviceb-jwt[0]"];
    assert_eq!(provider["issuer"], "https://jwt-factory/");
    assert_eq!(provider["audiences"], json!(["serviceb"]));
    assert_eq!(provider["forward"], false);
    assert_eq!(provider["forward_payload_header"], "x-mesh-jwt-payload");
    assert_eq!(provider["payload_in_metadata"], "jwt_payload");
    let http_uri = &provider["remote_jwks"]["http_uri"];
    assert_eq!(
        http_uri["uri"],
        "http://127.0.0.1:5555/.well-known/jwks.json"
    );
    assert_eq!(http_uri["cluster"], "jwks|jwt-factory");
    assert_eq!(provider["remote_jwks"]["cache_duration"], "300s");

    // A request without a token passes jwt_authn (the policy decides).
    let requirements = &jwt["typed_config"]["rules"][0]["requires"]["requires_any"]["requirements"];
    assert_eq!(
        requirements,
        &json!([{ "provider_name": "default/serviceb-jwt[0]" }, { "allow_missing": {} }])
    );

    let jwks = cluster(b, "jwks|jwt-factory").expect("a cluster for the JWKS");
    assert_eq!(
        jwks["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
        json!({ "socket_address": { "address": "127.0.0.1", "port_value": 5555 } })
    );
    assert!(
        jwks.get("transport_socket").is_none(),
        "plain http to the factory"
    );
}

#[test]
fn base_forged_payload_headers_are_stripped_before_jwt_authn() {
    let configs = rendered(None);
    for w in ["serviceb", "servicec"] {
        let c = sidecar(&configs, w);
        assert_eq!(
            filter_names(c),
            [
                "strip-forged-headers",
                "envoy.filters.http.jwt_authn",
                "rbac-deny",
                "rbac-allow",
                "envoy.filters.http.router"
            ],
            "{w}"
        );
        let strip = inbound_filter(c, "strip-forged-headers").unwrap();
        assert_eq!(
            strip["typed_config"]["mutations"]["request_mutations"],
            json!([{ "remove": "x-mesh-jwt-payload" }])
        );
    }
    // servicec's own audience.
    let c = sidecar(&configs, "servicec");
    let jwt = inbound_filter(c, "envoy.filters.http.jwt_authn").unwrap();
    assert_eq!(
        jwt["typed_config"]["providers"]["default/servicec-jwt[0]"]["audiences"],
        json!(["servicec"])
    );
}

#[test]
fn base_has_no_authorization_and_servicea_no_jwt() {
    let configs = rendered(None);
    for c in &configs {
        assert_eq!(route_rbac(c, "rbac-allow"), None, "{}", c.sidecar.workload);
        assert_eq!(route_rbac(c, "rbac-deny"), None, "{}", c.sidecar.workload);
        // The filters are there, with no rules (off until a route gives some).
        assert_eq!(
            inbound_filter(c, "rbac-allow").unwrap()["typed_config"].get("rules"),
            None
        );
    }
    let a = sidecar(&configs, "servicea");
    // No RequestAuthentication for servicea, and still the header its app
    // would trust is stripped (a forged one never reaches it).
    assert_eq!(
        filter_names(a),
        [
            "strip-forged-headers",
            "rbac-deny",
            "rbac-allow",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        inbound_filter(a, "strip-forged-headers").unwrap()["typed_config"]["mutations"]["request_mutations"],
        serde_json::json!([{ "remove": "x-mesh-jwt-payload" }])
    );
    assert!(cluster(a, "jwks|jwt-factory").is_none());
    assert_eq!(
        cluster(a, "inbound|app").unwrap()["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["address"]["socket_address"]["port_value"],
        3001
    );
}

// ------------------------------------------------------ 2. the steps

#[test]
fn step_1_no_policy_is_the_base() {
    let base = rendered(None);
    let step = rendered(Some("1-no-policy.yaml"));
    for (b, s) in base.iter().zip(&step) {
        assert_eq!(versions(b), versions(s), "{}", b.sidecar.workload);
    }
}

#[test]
fn step_2_allows_nothing() {
    let configs = rendered(Some("2-allow-nothing.yaml"));
    for c in &configs {
        let w = &c.sidecar.workload;
        let allow = route_rbac(c, "rbac-allow").unwrap_or_else(|| panic!("{w}: no rbac-allow"));
        assert_eq!(allow, &json!({ "action": "ALLOW", "policies": {} }), "{w}");
        assert_eq!(route_rbac(c, "rbac-deny"), None, "{w}");
    }
    let rds = file(sidecar(&configs, "serviceb"), "rds.json");
    assert_eq!(
        rds["resources"][0]["virtual_hosts"][0]["routes"][0]["typed_per_filter_config"]["rbac-allow"]
            ["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
    );
}

#[test]
fn step_3_serviceb_allows_servicea_by_mtls_identity_only() {
    let configs = rendered(Some("3-allow-servicea.yaml"));
    let b = route_rbac(sidecar(&configs, "serviceb"), "rbac-allow").unwrap();
    assert_eq!(b["action"], "ALLOW");
    assert_eq!(policy_count(b), 1, "{b}");
    let policy = &b["policies"]["default/serviceb-allow-servicea[0]"];
    assert_eq!(
        policy["principals"],
        json!([{ "and_ids": { "ids": [mtls_principal("spiffe://cluster.local/ns/default/sa/servicea")] } }])
    );
    assert_eq!(policy["permissions"], json!([{ "any": true }]));

    let c = route_rbac(sidecar(&configs, "servicec"), "rbac-allow").unwrap();
    assert_eq!(
        c,
        &json!({ "action": "ALLOW", "policies": {} }),
        "servicec allows nothing"
    );
}

#[test]
fn step_4_serviceb_also_requires_servicea_token() {
    let configs = rendered(Some("4-require-jwt.yaml"));
    let b = route_rbac(sidecar(&configs, "serviceb"), "rbac-allow").unwrap();
    assert_eq!(policy_count(b), 1, "{b}");
    let principals = &b["policies"]["default/serviceb-allow-servicea[0]"]["principals"];
    assert_eq!(
        principals,
        &json!([{ "and_ids": { "ids": [
            mtls_principal("spiffe://cluster.local/ns/default/sa/servicea"),
            { "and_ids": { "ids": [
                jwt_claim("iss", "https://jwt-factory/"),
                jwt_claim("sub", "servicea"),
            ] } },
        ] } }])
    );
    let c = route_rbac(sidecar(&configs, "servicec"), "rbac-allow").unwrap();
    assert_eq!(policy_count(c), 0);
}

// ------------------------------------------------------ 3. outbound

#[test]
fn outbound_to_serviceb_pins_its_identity() {
    let configs = rendered(None);
    let a = sidecar(&configs, "servicea");
    let to_b = cluster(a, "outbound|serviceb").expect("servicea has a cluster to serviceb");
    assert_eq!(
        to_b["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            ["port_value"],
        sidecar(&configs, "serviceb").sidecar.inbound
    );
    let tls = &to_b["transport_socket"]["typed_config"];
    assert_eq!(
        tls["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_eq!(tls["sni"], "serviceb");
    let common = &tls["common_tls_context"];
    assert_eq!(
        common["validation_context"]["match_typed_subject_alt_names"],
        json!([{ "san_type": "URI", "matcher": { "exact": "spiffe://cluster.local/ns/default/sa/serviceb" } }])
    );
    assert_eq!(
        common["tls_certificates"][0]["certificate_chain"]["filename"],
        "/certs/servicea.pem"
    );
    assert_eq!(
        common["tls_certificates"][0]["private_key"]["filename"],
        "/certs/servicea-key.pem"
    );
    assert!(
        cluster(a, "outbound|servicea").is_none(),
        "no cluster to itself"
    );

    let outbound = listener(a, "outbound");
    assert_eq!(
        outbound["address"]["socket_address"]["port_value"],
        a.sidecar.outbound
    );
    let hosts =
        outbound["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
            .as_array()
            .unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["serviceb", "servicec"]);
    let b = &hosts[0];
    let domains: Vec<&str> = b["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for d in [
        "serviceb",
        "serviceb:*",
        "serviceb.default.svc.cluster.local",
    ] {
        assert!(domains.contains(&d), "{d} not in {domains:?}");
    }
    assert!(
        !domains.iter().any(|d| d.starts_with("servicec")),
        "{domains:?}"
    );
    assert_eq!(b["routes"][0]["route"]["cluster"], "outbound|serviceb");
}

// ------------------------------------------------------ 4. refusals

#[test]
fn refuses_fields_it_does_not_translate() {
    // (file, resource, what the message must name)
    let cases = [
        (
            "when.yaml",
            authz(
                "with-when",
                "  rules:\n    - when:\n        - key: request.headers[x]\n          values: [\"y\"]\n",
            ),
            vec!["`when`", "default/with-when"],
        ),
        (
            "namespaces.yaml",
            authz(
                "from-ns",
                "  rules:\n    - from:\n        - source:\n            namespaces: [default]\n",
            ),
            vec!["`namespaces`"],
        ),
        (
            "wildcard.yaml",
            authz(
                "wild",
                "  rules:\n    - from:\n        - source:\n            requestPrincipals: [\"https://jwt*/x\"]\n",
            ),
            vec!["requestPrincipals", "https://jwt*/x"],
        ),
        (
            "port.yaml",
            peer_auth(
                "ports",
                "default",
                "  mtls:\n    mode: STRICT\n  portLevelMtls:\n    8080:\n      mode: DISABLE\n",
            ),
            vec!["`portLevelMtls`"],
        ),
    ];
    for (file, yaml, names) in cases {
        let m = refusal(file, &yaml);
        for name in names {
            assert!(m.contains(name), "{file}: {m} does not name {name}");
        }
    }
}

#[test]
fn refuses_custom_and_audit_actions() {
    for action in ["CUSTOM", "AUDIT"] {
        let m = refusal(
            "action.yaml",
            &authz("odd-action", &format!("  action: {action}\n")),
        );
        assert!(m.contains(action), "{m}");
    }
}

#[test]
fn refuses_jwt_rules_without_exactly_one_key_source() {
    let both = request_auth(
        "both",
        "  jwtRules:\n    - issuer: https://jwt-factory/\n      \
         jwksUri: http://jwt-factory/.well-known/jwks.json\n      jwks: '{\"keys\": []}'\n",
    );
    let m = refusal("both.yaml", &both);
    assert!(m.contains("jwksUri") && m.contains("jwks"), "{m}");
    let neither = request_auth(
        "neither",
        "  jwtRules:\n    - issuer: https://jwt-factory/\n",
    );
    let m = refusal("neither.yaml", &neither);
    assert!(m.contains("jwksUri"), "{m}");
}

#[test]
fn refuses_jwks_uri_outside_the_laptop_mesh() {
    for (file, uri, says) in [
        (
            "unknown.yaml",
            "http://keycloak:8080/jwks.json",
            "no address for Service \"keycloak\"",
        ),
        (
            "external.yaml",
            "http://auth0.example/.well-known/jwks.json",
            "auth0.example",
        ),
        (
            "other-ns.yaml",
            "http://jwt-factory.other.svc.cluster.local:5555/jwks.json",
            "jwt-factory.other.svc.cluster.local is not a Service of namespace default",
        ),
        (
            "look-alike.yaml",
            "http://jwt-factory.default.evil.example/.well-known/jwks.json",
            "jwt-factory.default.evil.example is not a Service of namespace default",
        ),
        (
            "https.yaml",
            "https://jwt-factory/.well-known/jwks.json",
            "http://",
        ),
    ] {
        let yaml = request_auth(
            "remote",
            &format!("  jwtRules:\n    - issuer: https://jwt-factory/\n      jwksUri: {uri}\n"),
        );
        let m = refusal(file, &yaml);
        assert!(m.contains("jwksUri"), "{m}");
        assert!(m.contains(says), "{m}");
    }
}

#[test]
fn refuses_path_templates_and_inner_wildcards() {
    // Translated as exact text, a DENY on a template would deny nothing
    // here while Istio denies: refused instead.
    for path in ["/a/{*}/b", "/a/*/b", "*/admin*"] {
        let m = refusal(
            "paths.yaml",
            &authz(
                "paths",
                &format!(
                    "  action: DENY\n  rules:\n    - to:\n        - operation:\n            paths: [\"{path}\"]\n"
                ),
            ),
        );
        assert!(
            m.contains("no path templates or inner wildcards"),
            "{path}: {m}"
        );
    }
}

#[test]
fn refuses_other_kinds_versions_names_and_bad_yaml() {
    let m = refusal(
        "vs.yaml",
        "apiVersion: security.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec: {}\n",
    );
    assert!(m.contains("VirtualService"), "{m}");
    let m = refusal(
        "vs-networking.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec: {}\n",
    );
    assert!(m.contains("VirtualService"), "{m}");

    let m = refusal(
        "beta.yaml",
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata:\n  name: old\nspec: {}\n",
    );
    assert!(m.contains("apiVersion") && m.contains("v1beta1"), "{m}");

    let m = refusal("name.yaml", &authz("Allow-Nothing", "  {}\n"));
    assert!(
        m.contains("metadata.name") && m.contains("Allow-Nothing"),
        "{m}"
    );

    let m = refusal("broken.yaml", "kind: [AuthorizationPolicy\n  metadata: {");
    assert!(m.contains("not valid YAML"), "{m}");
}

#[test]
fn refuses_authorization_as_payload_header() {
    let yaml = request_auth(
        "auth-header",
        "  jwtRules:\n    - issuer: https://jwt-factory/\n      \
         jwksUri: http://jwt-factory/.well-known/jwks.json\n      outputPayloadToHeader: Authorization\n",
    );
    let m = refusal("auth-header.yaml", &yaml);
    assert!(m.contains("outputPayloadToHeader"), "{m}");
    assert!(m.contains("Authorization"), "{m}");
}

#[test]
fn load_names_the_file_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, authz("with-when", "  rules:\n    - when: []\n")).unwrap();
    let m = Policies::load(&[istio_dir(), bad.clone()])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains(&bad.display().to_string()) && m.contains("`when`"),
        "{m}"
    );
}

// ------------------------------------------------------ 5. semantics

#[test]
fn workload_peer_authentication_beats_the_mesh_default() {
    let p = with_yaml(
        "permissive.yaml",
        &peer_auth(
            "serviceb-permissive",
            "default",
            "  selector:\n    matchLabels:\n      app: serviceb\n  mtls:\n    mode: PERMISSIVE\n",
        ),
    );
    let configs = render(&p);
    assert_eq!(
        transport_protocols(sidecar(&configs, "serviceb")),
        ["tls", "raw_buffer"]
    );
    assert_eq!(transport_protocols(sidecar(&configs, "servicea")), ["tls"]);
    assert_eq!(transport_protocols(sidecar(&configs, "servicec")), ["tls"]);
    // Both chains serve the same HTTP filters.
    let b = sidecar(&configs, "serviceb");
    assert_eq!(chains(b)[0]["filters"], chains(b)[1]["filters"]);
    assert!(chains(b)[1].get("transport_socket").is_none());
}

#[test]
fn unset_falls_through_to_the_mesh() {
    let p = with_yaml(
        "unset.yaml",
        &[
            peer_auth(
                "serviceb-unset",
                "default",
                "  selector:\n    matchLabels:\n      app: serviceb\n  mtls:\n    mode: UNSET\n",
            ),
            peer_auth("namespace-no-mtls", "default", "  {}\n"),
        ]
        .join("---\n"),
    );
    let configs = render(&p);
    for c in &configs {
        assert_eq!(transport_protocols(c), ["tls"], "{}", c.sidecar.workload);
    }
}

/// Every sidecar's inbound takes TLS and plain text (PERMISSIVE).
#[track_caller]
fn assert_all_permissive(configs: &[SidecarConfig]) {
    for c in configs {
        assert_eq!(
            transport_protocols(c),
            ["tls", "raw_buffer"],
            "{}",
            c.sidecar.workload
        );
    }
}

#[test]
fn no_peer_authentication_is_permissive() {
    assert_all_permissive(&render(&Policies::default()));
}

#[test]
fn namespace_peer_authentication_beats_the_mesh() {
    let p = with_yaml(
        "ns.yaml",
        &peer_auth("default", "default", "  mtls:\n    mode: PERMISSIVE\n"),
    );
    assert_all_permissive(&render(&p));
}

#[test]
fn disable_is_plain_text_both_ways() {
    let p = with_yaml(
        "disable.yaml",
        &peer_auth(
            "serviceb-plain",
            "default",
            "  selector:\n    matchLabels:\n      app: serviceb\n  mtls:\n    mode: DISABLE\n",
        ),
    );
    let configs = render(&p);
    let b = sidecar(&configs, "serviceb");
    assert_eq!(transport_protocols(b), ["raw_buffer"]);
    assert!(chains(b)[0].get("transport_socket").is_none());
    for w in ["servicea", "servicec"] {
        let c = sidecar(&configs, w);
        let to_b = cluster(c, "outbound|serviceb").unwrap();
        assert!(
            to_b.get("transport_socket").is_none(),
            "{w} -> serviceb: {to_b}"
        );
        // Still mTLS to the strict one.
        let other = if w == "servicea" {
            "outbound|servicec"
        } else {
            "outbound|servicea"
        };
        assert!(
            cluster(c, other).unwrap().get("transport_socket").is_some(),
            "{w} -> {other}"
        );
    }
    // serviceb's own calls still use mTLS.
    assert!(
        cluster(b, "outbound|servicea")
            .unwrap()
            .get("transport_socket")
            .is_some()
    );
}

#[test]
fn deny_policy_goes_to_rbac_deny() {
    let p = with_yaml(
        "deny.yaml",
        &authz(
            "deny-servicec",
            "  selector:\n    matchLabels:\n      app: serviceb\n  action: DENY\n  rules:\n    \
             - from:\n        - source:\n            principals: [cluster.local/ns/default/sa/servicec]\n",
        ),
    );
    let configs = render(&p);
    let b = sidecar(&configs, "serviceb");
    let deny = route_rbac(b, "rbac-deny").expect("rbac-deny on serviceb's route");
    assert_eq!(deny["action"], "DENY");
    assert_eq!(
        deny["policies"]["default/deny-servicec[0]"]["principals"],
        json!([{ "and_ids": { "ids": [mtls_principal("spiffe://cluster.local/ns/default/sa/servicec")] } }])
    );
    assert_eq!(
        route_rbac(b, "rbac-allow"),
        None,
        "no ALLOW policy: allow the rest"
    );
    assert_eq!(route_rbac(sidecar(&configs, "servicea"), "rbac-deny"), None);
}

#[test]
fn a_later_resource_with_the_same_name_replaces_the_earlier() {
    let mut p = only_yaml(&authz("allow-nothing", "  {}\n"));
    p.add_yaml(
        Path::new("second.yaml"),
        &authz("allow-nothing", "  rules:\n    - {}\n"),
    )
    .unwrap();
    assert_eq!(p.authz.len(), 1);
    assert_eq!(p.authz[0].file, Path::new("second.yaml"));
    let configs = render(&p);
    let allow = route_rbac(sidecar(&configs, "serviceb"), "rbac-allow").unwrap();
    assert_eq!(
        allow["policies"],
        json!({ "default/allow-nothing[0]": { "permissions": [{ "any": true }], "principals": [{ "any": true }] } })
    );

    // Another namespace is another resource.
    p.add_yaml(
        Path::new("root.yaml"),
        &authz("allow-nothing", "  {}\n").replace("namespace: default", "namespace: istio-system"),
    )
    .unwrap();
    assert_eq!(p.authz.len(), 2);
}

#[test]
fn steps_replace_allow_nothing_when_loaded_in_sequence() {
    // Applying step 2, then step 3, then step 4 leaves step 4's policies.
    let steps = istio_dir().join("steps");
    let p = Policies::load(&[
        istio_dir(),
        steps.join("2-allow-nothing.yaml"),
        steps.join("3-allow-servicea.yaml"),
        steps.join("4-require-jwt.yaml"),
    ])
    .unwrap();
    // The base's jwt-factory policy, allow-nothing, serviceb's.
    let names: Vec<_> = p.authz.iter().map(|r| r.id()).collect();
    assert_eq!(
        names,
        [
            "default/jwt-factory-endpoints",
            "default/allow-nothing",
            "default/serviceb-allow-servicea"
        ]
    );
    let together = render(&p);
    let step4 = rendered(Some("4-require-jwt.yaml"));
    for (a, b) in together.iter().zip(&step4) {
        assert_eq!(versions(a), versions(b), "{}", a.sidecar.workload);
    }
}

#[test]
fn an_empty_rule_allows_everything() {
    let configs = render(&only_yaml(&authz("allow-all", "  rules:\n    - {}\n")));
    for c in &configs {
        let allow = route_rbac(c, "rbac-allow").unwrap();
        assert_eq!(allow["action"], "ALLOW");
        assert_eq!(
            allow["policies"]["default/allow-all[0]"],
            json!({ "permissions": [{ "any": true }], "principals": [{ "any": true }] })
        );
    }
}

#[test]
fn operations_match_path_prefix_and_method() {
    let p = only_yaml(&authz(
        "scenario10",
        "  selector:\n    matchLabels:\n      app: serviceb\n  rules:\n    - to:\n        \
         - operation:\n            paths: [\"/scenario10*\"]\n            methods: [GET]\n",
    ));
    let configs = render(&p);
    let allow = route_rbac(sidecar(&configs, "serviceb"), "rbac-allow").unwrap();
    let policy = &allow["policies"]["default/scenario10[0]"];
    assert_eq!(
        policy["permissions"],
        json!([{ "and_rules": { "rules": [
            { "header": { "name": ":method", "string_match": { "exact": "GET" } } },
            { "url_path": { "path": { "prefix": "/scenario10" } } },
        ] } }])
    );
    assert_eq!(policy["principals"], json!([{ "any": true }]));
    // The selector keeps it to serviceb.
    assert_eq!(
        route_rbac(sidecar(&configs, "servicea"), "rbac-allow"),
        None
    );
}

// ------------------------------------------------------ 6. determinism

#[test]
fn rendering_is_deterministic() {
    let first = rendered(Some("4-require-jwt.yaml"));
    let second = rendered(Some("4-require-jwt.yaml"));
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(versions(a), versions(b));
        for (name, content, version) in &a.files {
            assert_eq!(content, file(b, name));
            assert_eq!(content["version_info"], version.as_str());
            assert_eq!(version.len(), 12, "{version}");
        }
    }
}

#[test]
fn an_authorization_change_changes_only_the_routes() {
    let before = rendered(Some("2-allow-nothing.yaml"));
    let after = rendered(Some("3-allow-servicea.yaml"));
    for (b, a) in before.iter().zip(&after) {
        let w = &b.sidecar.workload;
        assert_eq!(b.version("cds.json"), a.version("cds.json"), "{w}");
        assert_eq!(b.version("lds.json"), a.version("lds.json"), "{w}");
        assert_eq!(b.bootstrap, a.bootstrap, "{w}");
        if w == "serviceb" {
            assert_ne!(b.version("rds.json"), a.version("rds.json"), "{w}");
        } else {
            // Step 3 changes nothing for the others.
            assert_eq!(b.version("rds.json"), a.version("rds.json"), "{w}");
        }
    }
    // And from no policy to allow-nothing, every sidecar's routes change.
    for (b, a) in rendered(None).iter().zip(&before) {
        assert_ne!(b.version("rds.json"), a.version("rds.json"));
        assert_eq!(b.version("lds.json"), a.version("lds.json"));
    }
}

// ------------------------------------------------------ 7. writing

#[test]
fn write_creates_then_leaves_then_replaces_only_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let topology = topology();
    let configs = mesh::render(&topology, &policies(None), dir.path()).unwrap();
    let b = sidecar(&configs, "serviceb");
    let out = dir.path().join("serviceb");

    assert_eq!(
        write(b, &out).unwrap(),
        [
            ("envoy.json", Written::Created),
            ("cds.json", Written::Created),
            ("rds.json", Written::Created),
            ("lds.json", Written::Created),
        ]
    );
    for (name, _, version) in &b.files {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["version_info"], version.as_str(), "{name}");
        assert_eq!(&parsed, file(b, name), "{name}");
    }
    let bootstrap: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("envoy.json")).unwrap()).unwrap();
    assert_eq!(
        bootstrap["dynamic_resources"]["lds_config"]["path_config_source"]["path"],
        out.join("lds.json").display().to_string()
    );

    let again = write(b, &out).unwrap();
    assert!(
        again.iter().all(|(_, w)| *w == Written::Unchanged),
        "{again:?}"
    );

    let changed = mesh::render(
        &topology,
        &policies(Some("3-allow-servicea.yaml")),
        dir.path(),
    )
    .unwrap();
    let done = write(sidecar(&changed, "serviceb"), &out).unwrap();
    assert_eq!(
        done,
        [
            ("envoy.json", Written::Unchanged),
            ("cds.json", Written::Unchanged),
            ("rds.json", Written::Replaced),
            ("lds.json", Written::Unchanged),
        ]
    );
    let rds: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("rds.json")).unwrap()).unwrap();
    assert_eq!(
        rds["version_info"],
        sidecar(&changed, "serviceb").version("rds.json").unwrap()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

// ------------------------------------------------------ 8. admin

#[test]
fn reported_reads_envoy_stats_text() {
    let stats = "cluster_manager.cds.version_text: \"1a2b3c4d5e6f\"\n\
                 http.inbound.rds.inbound.version_text: \"abcdefabcdef\"\n\
                 listener_manager.lds.version_text: \"82969d626d16\"\n\
                 listener_manager.lds.version_text_extra: \"nope\"\n";
    use mesh::admin::reported;
    assert_eq!(
        reported(stats, "listener_manager.lds.version_text").as_deref(),
        Some("82969d626d16")
    );
    assert_eq!(
        reported(stats, "cluster_manager.cds.version_text").as_deref(),
        Some("1a2b3c4d5e6f")
    );
    assert_eq!(
        reported(stats, "http.inbound.rds.inbound.version_text").as_deref(),
        Some("abcdefabcdef")
    );
    assert_eq!(
        reported(stats, "http.outbound.rds.outbound.version_text"),
        None
    );
    assert_eq!(reported("", "listener_manager.lds.version_text"), None);
}

#[test]
fn a_selector_in_the_root_namespace_does_not_set_mtls() {
    // Istio composes PeerAuthentication from the mesh policy (root namespace,
    // no selector), the namespace policy and the workload policy (a selector,
    // not in the root namespace); one with a selector in the root namespace
    // is none of them and is ignored.
    let p = with_yaml(
        "root-selector.yaml",
        &peer_auth(
            "serviceb-plain",
            "istio-system",
            "  selector:\n    matchLabels:\n      app: serviceb\n  mtls:\n    mode: DISABLE\n",
        ),
    );
    let configs = render(&p);
    for c in &configs {
        assert_eq!(transport_protocols(c), ["tls"], "{}", c.sidecar.workload);
    }
    let to_b = cluster(sidecar(&configs, "servicea"), "outbound|serviceb").unwrap();
    assert!(to_b.get("transport_socket").is_some());
}

#[test]
fn an_empty_selector_is_namespace_wide() {
    // `matchLabels: {}` selects the whole namespace: a workload's own
    // policy still beats it, whatever the names.
    let p = with_yaml(
        "empty-selector.yaml",
        &[
            peer_auth(
                "a-all",
                "default",
                "  selector:\n    matchLabels: {}\n  mtls:\n    mode: DISABLE\n",
            ),
            peer_auth(
                "serviceb-strict",
                "default",
                "  selector:\n    matchLabels:\n      app: serviceb\n  mtls:\n    mode: STRICT\n",
            ),
        ]
        .join("---\n"),
    );
    let configs = render(&p);
    assert_eq!(transport_protocols(sidecar(&configs, "serviceb")), ["tls"]);
    assert_eq!(
        transport_protocols(sidecar(&configs, "servicea")),
        ["raw_buffer"]
    );
    assert_eq!(
        transport_protocols(sidecar(&configs, "servicec")),
        ["raw_buffer"]
    );

    // In the root namespace, an empty selector is the mesh policy.
    let p = only_yaml(&peer_auth(
        "mesh",
        "istio-system",
        "  selector: {}\n  mtls:\n    mode: DISABLE\n",
    ));
    for c in &render(&p) {
        assert_eq!(
            transport_protocols(c),
            ["raw_buffer"],
            "{}",
            c.sidecar.workload
        );
    }
}

#[test]
fn refuses_what_istio_refuses_or_this_translator_would_weaken() {
    let rule = |body: &str| authz("weak", &format!("  rules:\n    - {body}\n"));
    let cases = [
        // Read as "anyone", an empty source would open an ALLOW policy.
        (rule("from:\n        - source: {}"), "an empty `source`"),
        (rule("to:\n        - operation: {}"), "an empty `operation`"),
        (
            rule("from:\n        - source:\n            principals: [\"\"]"),
            "an empty value in `source`",
        ),
        // Istio reads `*` in methods as a pattern; literal, a DENY would deny nothing.
        (
            rule("to:\n        - operation:\n            methods: [\"P*\"]"),
            "no wildcard",
        ),
    ];
    for (yaml, says) in cases {
        let m = refusal("weak.yaml", &yaml);
        assert!(m.contains(says), "{m}");
    }
    for (spec, says) in [
        (
            "  jwtRules:\n    - issuer: \"\"\n      jwks: \"{}\"\n",
            "an empty issuer",
        ),
        (
            "  jwtRules:\n    - issuer: i\n      jwks: \"{}\"\n      audiences: [\"\"]\n",
            "an empty audience",
        ),
        (
            "  jwtRules:\n    - issuer: i\n      jwks: \"{}\"\n      outputPayloadToHeader: x-forwarded-for\n",
            "not x-envoy-* or x-forwarded-*",
        ),
        (
            "  jwtRules:\n    - issuer: i\n      jwks: \"{}\"\n      outputPayloadToHeader: cookie\n",
            "not x-envoy-* or x-forwarded-*",
        ),
    ] {
        let m = refusal("jwt.yaml", &request_auth("jwt", spec));
        assert!(m.contains(says), "{m}");
    }
}

#[test]
fn wildcard_paths_and_suffix_principals_translate_as_istio_reads_them() {
    let p = with_yaml(
        "wild.yaml",
        &authz(
            "wild",
            "  selector:\n    matchLabels:\n      app: serviceb\n  action: DENY\n  rules:\n    - from:\n        - source:\n            principals: [\"*/sa/servicec\"]\n      to:\n        - operation:\n            paths: [\"*\"]\n",
        ),
    );
    let configs = render(&p);
    let rules = route_rbac(sidecar(&configs, "serviceb"), "rbac-deny").unwrap();
    let policy = &rules["policies"]["default/wild[0]"];
    // `*` is every path (Envoy refuses an empty prefix).
    let text = policy.to_string();
    assert!(text.contains(r#""path":{"prefix":"/"}"#), "{text}");
    // `*suffix` is anchored on the SPIFFE ID, with the suffix escaped.
    assert!(
        text.contains(r#""safe_regex":{"regex":"^spiffe://.*/sa/servicec$"}"#),
        "{text}"
    );
}
