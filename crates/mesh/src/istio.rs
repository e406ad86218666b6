//! Istio's three security resources, as far as the workshop uses them,
//! read from the YAML a user would `kubectl apply`.
//!
//! Every struct refuses fields it does not know (`deny_unknown_fields`).
//! A translator that skipped a field it did not understand would enforce a
//! different policy from the one the cluster enforces: a `notPrincipals` or
//! a `when` dropped silently lets in callers the YAML keeps out. So what is
//! not translated is an error naming the file, the resource and the field.
//! `metadata` is the exception: its labels and annotations change nothing
//! here.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use serde_json::Value;

use crate::MeshError;

/// Istio's root namespace: a resource there without a selector applies to
/// every workload of the mesh.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The API group and version the translator reads.
pub const API_VERSION: &str = "security.istio.io/v1";

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    "default".into()
}

/// `spec.selector`: the workloads (by label) a resource applies to.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

// ------------------------------------------------------------ PeerAuthentication

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum MtlsMode {
    /// Inherit from the namespace, then the mesh.
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// mTLS or plain text: a plain caller has no identity.
    Permissive,
    /// mTLS only: every caller has a verified identity.
    Strict,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mtls {
    #[serde(default)]
    pub mode: MtlsMode,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    pub selector: Option<Selector>,
    pub mtls: Option<Mtls>,
}

// ---------------------------------------------------------- RequestAuthentication

/// One `jwtRules` entry: a token issuer the sidecar accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtRule {
    pub issuer: String,
    /// Where the issuer publishes its keys. Required here: the translator
    /// does not look up OpenID discovery.
    pub jwks_uri: Option<String>,
    /// Keys given inline (a JWK Set as a string), as istiod does after it
    /// fetched `jwksUri`.
    pub jwks: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub forward_original_token: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestAuthenticationSpec {
    pub selector: Option<Selector>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

// ------------------------------------------------------------ AuthorizationPolicy

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

/// `rules[].from[].source`: who calls. Fields are ANDed, values ORed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// mTLS identities, `<trust domain>/ns/<namespace>/sa/<account>`.
    #[serde(default)]
    pub principals: Vec<String>,
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// Token identities, `<iss>/<sub>`.
    #[serde(default)]
    pub request_principals: Vec<String>,
    #[serde(default)]
    pub not_request_principals: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromSource {
    pub source: Source,
}

/// `rules[].to[].operation`: what is called.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operation {
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToOperation {
    pub operation: Operation,
}

/// A rule matches when one of its `from` and one of its `to` match (an
/// empty list matches anything).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub from: Vec<FromSource>,
    #[serde(default)]
    pub to: Vec<ToOperation>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    pub selector: Option<Selector>,
    #[serde(default)]
    pub action: Action,
    /// No rules: matches nothing (an ALLOW policy then allows nothing).
    #[serde(default)]
    pub rules: Vec<Rule>,
}

// ------------------------------------------------------------------- resources

/// One resource, with where it came from (for messages).
#[derive(Clone, Debug)]
pub struct Resource<S> {
    pub metadata: Metadata,
    pub spec: S,
    pub file: PathBuf,
}

impl<S> Resource<S> {
    /// `namespace/name`, as kubectl names it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }
}

/// Every resource read, by kind.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub peer: Vec<Resource<PeerAuthenticationSpec>>,
    pub request: Vec<Resource<RequestAuthenticationSpec>>,
    pub authz: Vec<Resource<AuthorizationPolicySpec>>,
}

impl Policies {
    /// Reads each path: a file, or a folder's `*.yaml`/`*.yml` files (not
    /// its subfolders), in name order. A later resource with the same kind,
    /// namespace and name replaces an earlier one, as `kubectl apply` does.
    pub fn load(paths: &[PathBuf]) -> Result<Self, MeshError> {
        let mut policies = Self::default();
        for path in paths {
            for file in yaml_files(path)? {
                let text = fs::read_to_string(&file).map_err(|source| MeshError::Read {
                    path: file.clone(),
                    source,
                })?;
                policies.add_yaml(&file, &text)?;
            }
        }
        Ok(policies)
    }

    /// Adds the resources of one YAML text (any number of documents).
    pub fn add_yaml(&mut self, file: &Path, text: &str) -> Result<(), MeshError> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| MeshError::Yaml {
                path: file.to_path_buf(),
                message: e.to_string(),
            })?;
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            self.add_document(file, document)?;
        }
        Ok(())
    }

    fn add_document(&mut self, file: &Path, document: Value) -> Result<(), MeshError> {
        let bad = |what: String| MeshError::Resource {
            path: file.to_path_buf(),
            what,
        };
        let Document {
            kind,
            metadata,
            spec,
        } = Document::read(document).map_err(bad)?;
        let unknown = |e: serde_json::Error| {
            bad(format!(
                "{kind} {}/{}: {e}. This translator reads the subset of {kind} the workshop \
                 uses and refuses the rest: a field it ignored could let in a caller the policy \
                 keeps out",
                metadata.namespace, metadata.name
            ))
        };
        let file = file.to_path_buf();
        match kind.as_str() {
            "PeerAuthentication" => upsert(
                &mut self.peer,
                Resource {
                    spec: serde_json::from_value(spec).map_err(unknown)?,
                    metadata,
                    file,
                },
            ),
            "RequestAuthentication" => {
                let spec: RequestAuthenticationSpec =
                    serde_json::from_value(spec).map_err(unknown)?;
                check_key_sources(&metadata, &spec).map_err(bad)?;
                upsert(
                    &mut self.request,
                    Resource {
                        spec,
                        metadata,
                        file,
                    },
                )
            }
            "AuthorizationPolicy" => upsert(
                &mut self.authz,
                Resource {
                    spec: serde_json::from_value(spec).map_err(unknown)?,
                    metadata,
                    file,
                },
            ),
            other => {
                return Err(bad(format!(
                    "kind {other}: this translator reads PeerAuthentication, \
                     RequestAuthentication and AuthorizationPolicy"
                )));
            }
        }
        Ok(())
    }
}

/// One YAML document's envelope, checked, with its spec not read yet.
struct Document {
    kind: String,
    metadata: Metadata,
    spec: Value,
}

impl Document {
    /// `kind`, `apiVersion` (must be [`API_VERSION`]), `metadata` (valid
    /// names) and no other top-level field than `spec`; a missing or null
    /// spec is an empty one. The error is the message, without the file.
    fn read(mut document: Value) -> Result<Self, String> {
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| "a document without `kind`".to_owned())?
            .to_owned();
        let api = document.get("apiVersion").and_then(Value::as_str);
        if api != Some(API_VERSION) {
            return Err(format!(
                "{kind}: apiVersion {}: this translator reads {API_VERSION}",
                api.unwrap_or("(none)")
            ));
        }
        let metadata: Metadata = serde_json::from_value(document["metadata"].take())
            .map_err(|e| format!("{kind}: metadata: {e}"))?;
        check_name(&metadata.name).map_err(|e| format!("{kind}: metadata.name {e}"))?;
        check_name(&metadata.namespace).map_err(|e| format!("{kind}: metadata.namespace {e}"))?;
        let spec = match document.get_mut("spec") {
            Some(spec) if !spec.is_null() => spec.take(),
            _ => Value::Object(Default::default()),
        };
        for key in document.as_object().map(|o| o.keys()).into_iter().flatten() {
            if !["apiVersion", "kind", "metadata", "spec"].contains(&key.as_str()) {
                return Err(format!("{kind}: unexpected top-level field `{key}`"));
            }
        }
        Ok(Self {
            kind,
            metadata,
            spec,
        })
    }
}

/// Each jwtRule of a RequestAuthentication names exactly one key source.
fn check_key_sources(metadata: &Metadata, spec: &RequestAuthenticationSpec) -> Result<(), String> {
    for rule in &spec.jwt_rules {
        if rule.jwks_uri.is_some() == rule.jwks.is_some() {
            return Err(format!(
                "RequestAuthentication {}/{}: issuer {}: give exactly one of jwksUri \
                 and jwks",
                metadata.namespace, metadata.name, rule.issuer
            ));
        }
    }
    Ok(())
}

/// Replaces the resource with the same namespace and name, or adds it.
fn upsert<S>(list: &mut Vec<Resource<S>>, resource: Resource<S>) {
    match list.iter_mut().find(|r| {
        r.metadata.name == resource.metadata.name
            && r.metadata.namespace == resource.metadata.namespace
    }) {
        Some(slot) => *slot = resource,
        None => list.push(resource),
    }
}

/// A Kubernetes name: lowercase letters, digits, `-` and `.`, at most 253.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Kubernetes name (lowercase letters, digits, '-', '.')"
        ))
    }
}

/// `path` itself, or the YAML files directly in it, sorted.
fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, MeshError> {
    let read = |source| MeshError::Read {
        path: path.to_path_buf(),
        source,
    };
    if !fs::metadata(path).map_err(read)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(read)? {
        let entry = entry.map_err(read)?;
        let p = entry.path();
        let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && entry.file_type().map_err(read)?.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}
