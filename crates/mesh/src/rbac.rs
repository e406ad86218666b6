//! AuthorizationPolicy → Envoy's RBAC filter (`envoy.filters.http.rbac`).
//!
//! Istio's rule of combination, kept exactly: a request is refused if any
//! DENY policy matches it; otherwise, if any ALLOW policy applies to the
//! workload, it must match one of them; with no ALLOW policy it is allowed.
//! So there are two RBAC filters, deny then allow, each with one Envoy
//! policy per Istio rule. An ALLOW policy without rules matches nothing:
//! `allow-nothing` is an ALLOW filter with no policies, which refuses all.
//!
//! Identities:
//! - `principals` are mTLS identities: `cluster.local/ns/default/sa/servicea`
//!   is the peer certificate's URI SAN `spiffe://cluster.local/ns/default/sa/servicea`.
//! - `requestPrincipals` are token identities, `<iss>/<sub>` of a token the
//!   jwt_authn filter verified. Envoy has no such string, so it is matched
//!   as two claims of the verified payload, which jwt_authn leaves in the
//!   request's metadata ([`crate::jwt::PAYLOAD_METADATA`]).
//!
//! Values may be exact, `*` (any, but present), `prefix*` or `*suffix`.

use serde_json::{Value, json};

use crate::{
    MeshError,
    istio::{Action, AuthorizationPolicySpec, Operation, Resource, Rule, Source},
    jwt::PAYLOAD_METADATA,
};

/// The RBAC rules (`config.rbac.v3.RBAC`) for one action, or `None` when no
/// policy of that action applies (the filter is then off for the route).
pub fn rules(
    policies: &[&Resource<AuthorizationPolicySpec>],
    action: Action,
) -> Result<Option<Value>, MeshError> {
    let mut envoy_policies = serde_json::Map::new();
    let mut any = false;
    for policy in policies.iter().filter(|p| p.spec.action == action) {
        any = true;
        for (i, rule) in policy.spec.rules.iter().enumerate() {
            let name = format!("{}[{i}]", policy.id());
            let translated = translate_rule(rule).map_err(|what| MeshError::Resource {
                path: policy.file.clone(),
                what: format!("AuthorizationPolicy {}: rules[{i}]: {what}", policy.id()),
            })?;
            envoy_policies.insert(name, translated);
        }
    }
    Ok(any.then(|| {
        let action = match action {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
        };
        json!({ "action": action, "policies": envoy_policies })
    }))
}

/// One Istio rule: (any of its `from`) and (any of its `to`).
fn translate_rule(rule: &Rule) -> Result<Value, String> {
    let principals = if rule.from.is_empty() {
        vec![json!({ "any": true })]
    } else {
        rule.from
            .iter()
            .map(|f| source(&f.source))
            .collect::<Result<_, _>>()?
    };
    let permissions = if rule.to.is_empty() {
        vec![json!({ "any": true })]
    } else {
        rule.to
            .iter()
            .map(|t| operation(&t.operation))
            .collect::<Result<_, _>>()?
    };
    Ok(json!({ "permissions": permissions, "principals": principals }))
}

/// A source: all its fields (each one of its values).
fn source(s: &Source) -> Result<Value, String> {
    let fields = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
    ];
    // Istio refuses an empty source: read as "anyone", it would open an
    // ALLOW policy to every caller.
    if fields.iter().all(|f| f.is_empty()) {
        return Err("an empty `source`: name principals or requestPrincipals".into());
    }
    if fields.iter().any(|f| f.iter().any(String::is_empty)) {
        return Err("an empty value in `source`".into());
    }
    let mut ids = Vec::new();
    if !s.principals.is_empty() {
        ids.push(or_ids(s.principals.iter().map(|p| peer(p)).collect()));
    }
    if !s.not_principals.is_empty() {
        ids.push(json!({ "not_id": or_ids(s.not_principals.iter().map(|p| peer(p)).collect()) }));
    }
    if !s.request_principals.is_empty() {
        let each = s
            .request_principals
            .iter()
            .map(|p| request_principal(p))
            .collect::<Result<_, _>>()?;
        ids.push(or_ids(each));
    }
    if !s.not_request_principals.is_empty() {
        let each = s
            .not_request_principals
            .iter()
            .map(|p| request_principal(p))
            .collect::<Result<_, _>>()?;
        ids.push(json!({ "not_id": or_ids(each) }));
    }
    Ok(json!({ "and_ids": { "ids": ids } }))
}

/// An operation: all its fields.
fn operation(o: &Operation) -> Result<Value, String> {
    let fields = [&o.methods, &o.not_methods, &o.paths, &o.not_paths];
    if fields.iter().all(|f| f.is_empty()) {
        return Err("an empty `operation`: name methods or paths".into());
    }
    if fields.iter().any(|f| f.iter().any(String::is_empty)) {
        return Err("an empty value in `operation`".into());
    }
    for m in o.methods.iter().chain(&o.not_methods) {
        if m.contains('*') {
            return Err(format!(
                "method {m:?}: this translator reads exact methods (no wildcard)"
            ));
        }
    }
    for p in o.paths.iter().chain(&o.not_paths) {
        let inner = p.strip_prefix('*').unwrap_or(p);
        let inner = inner.strip_suffix('*').unwrap_or(inner);
        let both_ends = p.len() > 1 && p.starts_with('*') && p.ends_with('*');
        if inner.contains('*') || p.contains('{') || both_ends {
            return Err(format!(
                "path {p:?}: this translator reads exact paths, `prefix*`, `*suffix` and `*` \
                 (no path templates or inner wildcards)"
            ));
        }
    }
    let method =
        |m: &String| json!({ "header": { "name": ":method", "string_match": { "exact": m } } });
    let path = |p: &String| json!({ "url_path": { "path": string_match(p) } });
    let mut rules = Vec::new();
    if !o.methods.is_empty() {
        rules.push(or_rules(o.methods.iter().map(method).collect()));
    }
    if !o.not_methods.is_empty() {
        rules.push(json!({ "not_rule": or_rules(o.not_methods.iter().map(method).collect()) }));
    }
    if !o.paths.is_empty() {
        rules.push(or_rules(o.paths.iter().map(path).collect()));
    }
    if !o.not_paths.is_empty() {
        rules.push(json!({ "not_rule": or_rules(o.not_paths.iter().map(path).collect()) }));
    }
    Ok(json!({ "and_rules": { "rules": rules } }))
}

/// An mTLS identity: the peer certificate's SPIFFE ID.
fn peer(principal: &str) -> Value {
    let matcher = if principal == "*" {
        // Istio's `*`: any authenticated peer.
        json!({ "prefix": "spiffe://" })
    } else if let Some(prefix) = principal.strip_suffix('*') {
        json!({ "prefix": format!("spiffe://{prefix}") })
    } else if let Some(suffix) = principal.strip_prefix('*') {
        // Anchored on the SPIFFE ID, as Istio does: Envoy would otherwise
        // also try the certificate's DNS names and subject.
        json!({ "safe_regex": { "regex": format!("^spiffe://.*{}$", regex_escape(suffix)) } })
    } else {
        json!({ "exact": format!("spiffe://{principal}") })
    };
    json!({ "authenticated": { "principal_name": matcher } })
}

/// A token identity `<iss>/<sub>`, split at its last `/` (an issuer such
/// as `https://jwt-factory/` has slashes of its own; a subject has none
/// here). `*` is any verified token; `<iss>/*` any subject of that issuer.
fn request_principal(p: &str) -> Result<Value, String> {
    let claim = |name: &str, value: Value| {
        json!({ "sourced_metadata": { "metadata_matcher": {
            "filter": "envoy.filters.http.jwt_authn",
            "path": [{ "key": PAYLOAD_METADATA }, { "key": name }],
            "value": value,
        }}})
    };
    let present = json!({ "present_match": true });
    if p == "*" {
        return Ok(claim("iss", present));
    }
    let Some((iss, sub)) = p.rsplit_once('/') else {
        return Err(format!(
            "requestPrincipals {p:?}: expected `<iss>/<sub>` or `*`"
        ));
    };
    if iss.is_empty() || iss.contains('*') || sub.is_empty() || (sub.contains('*') && sub != "*") {
        return Err(format!(
            "requestPrincipals {p:?}: this translator reads `*`, `<iss>/*` and `<iss>/<sub>` \
             (no other wildcard)"
        ));
    }
    let iss = claim("iss", json!({ "string_match": { "exact": iss } }));
    Ok(if sub == "*" {
        iss
    } else {
        let sub = claim("sub", json!({ "string_match": { "exact": sub } }));
        json!({ "and_ids": { "ids": [iss, sub] } })
    })
}

/// A literal inside a regular expression.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Istio's path patterns as Envoy's string matcher.
fn string_match(v: &str) -> Value {
    if v == "*" {
        // Every path (Envoy refuses an empty prefix).
        json!({ "prefix": "/" })
    } else if let Some(prefix) = v.strip_suffix('*') {
        json!({ "prefix": prefix })
    } else if let Some(suffix) = v.strip_prefix('*') {
        json!({ "suffix": suffix })
    } else {
        json!({ "exact": v })
    }
}

fn or_ids(ids: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(ids) {
        Ok([one]) => one,
        Err(ids) => json!({ "or_ids": { "ids": ids } }),
    }
}

fn or_rules(rules: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(rules) {
        Ok([one]) => one,
        Err(rules) => json!({ "or_rules": { "rules": rules } }),
    }
}
