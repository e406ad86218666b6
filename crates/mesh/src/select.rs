//! Which resources apply to a workload, as Istio decides it.
//!
//! A resource in the workload's namespace applies when it has no selector
//! or its selector's labels are all on the workload; one in the root
//! namespace ([`ROOT_NAMESPACE`]) applies the same way to every namespace.
//! For mTLS the most specific PeerAuthentication wins (workload, then
//! namespace, then mesh), and `UNSET` falls through to the next; with none,
//! Istio's default is PERMISSIVE. A PeerAuthentication with a selector in
//! the root namespace sets nothing, as in Istio.

use std::collections::BTreeMap;

use crate::istio::{
    AuthorizationPolicySpec, MtlsMode, PeerAuthenticationSpec, ROOT_NAMESPACE,
    RequestAuthenticationSpec, Resource, Selector,
};

/// A resource's spec that names the workloads it is for.
pub trait Selected {
    fn selector(&self) -> Option<&Selector>;
}

macro_rules! selected {
    ($($spec:ty),*) => {$(
        impl Selected for $spec {
            fn selector(&self) -> Option<&Selector> {
                self.selector.as_ref()
            }
        }
    )*};
}
selected!(
    PeerAuthenticationSpec,
    RequestAuthenticationSpec,
    AuthorizationPolicySpec
);

/// The resources that apply to a workload in `workload_ns` with `labels`.
pub fn applying<'a, S: Selected>(
    resources: &'a [Resource<S>],
    workload_ns: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a Resource<S>> {
    resources
        .iter()
        .filter(|r| {
            let ns = &r.metadata.namespace;
            (ns == workload_ns || ns == ROOT_NAMESPACE)
                && r.spec
                    .selector()
                    .is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
        .collect()
}

/// The mTLS mode of a workload's inbound port, and the resource that set it.
pub fn mtls_mode<'a>(
    peer: &'a [Resource<PeerAuthenticationSpec>],
    workload_ns: &str,
    labels: &BTreeMap<String, String>,
) -> (MtlsMode, Option<&'a Resource<PeerAuthenticationSpec>>) {
    // Most specific first: a selector in the namespace, the namespace, the
    // mesh. As istiod composes it, an empty selector is no selector, and one
    // with a selector in the root namespace is none of the three: ignored.
    let selects = |r: &Resource<PeerAuthenticationSpec>| {
        r.spec
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty())
    };
    let rank = |r: &Resource<PeerAuthenticationSpec>| match (
        selects(r),
        r.metadata.namespace == workload_ns,
    ) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    };
    let mut matching = applying(peer, workload_ns, labels);
    matching.retain(|r| !(selects(r) && r.metadata.namespace == ROOT_NAMESPACE));
    matching.sort_by_key(|r| (rank(r), r.metadata.name.clone()));
    matching
        .into_iter()
        .find_map(|r| {
            let mode = r.spec.mtls.as_ref().map(|m| m.mode).unwrap_or_default();
            (mode != MtlsMode::Unset).then_some((mode, Some(r)))
        })
        .unwrap_or((MtlsMode::Permissive, None))
}
