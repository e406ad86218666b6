//! `cargo xtask validate-deploy` (what `scripts/validate-deploy.sh` runs):
//! deploy/ checked offline, without a cluster:
//!
//! 1. deploy/k8s/configmaps.yaml is what `scripts/deploy-configmaps.sh`
//!    writes from env/, and holds each file verbatim;
//! 2. every deploy/k8s/*.yaml and deploy/openbao/*.yaml (the factory with
//!    its keys in OpenBao) against the Kubernetes schemas
//!    (kubernetes-validate --strict: unknown fields fail);
//! 3. every document under deploy/istio/ against the JSON schema of its
//!    kind, from ISTIO_SCHEMAS_DIR (default ../shared/schemas/istio,
//!    relative to the repository root; referenced there, never copied in).
//!
//! Runs every check, then fails if any failed. K8S_DIR and ISTIO_DIR
//! (default deploy/k8s, deploy/istio) point it at other copies, e.g. to
//! see a broken manifest fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use crate::{install, paths, say};

const ISTIO_SCHEMAS: [&str; 3] = [
    "peerauthentication_v1.json",
    "requestauthentication_v1.json",
    "authorizationpolicy_v1.json",
];

fn dir_setting(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Runs the three checks.
pub fn run() -> Result<()> {
    let k8s = dir_setting("K8S_DIR", "deploy/k8s");
    let openbao = dir_setting("OPENBAO_DIR", "deploy/openbao");
    let istio = dir_setting("ISTIO_DIR", "deploy/istio");
    let schemas = dir_setting("ISTIO_SCHEMAS_DIR", "../shared/schemas/istio");
    check_settings(
        &schemas,
        &[
            ("K8S_DIR", &k8s),
            ("OPENBAO_DIR", &openbao),
            ("ISTIO_DIR", &istio),
        ],
    )?;
    install::ensure(install::Tool::Venv)?;
    let python = paths::venv().join("bin/python");
    let mut failed = Vec::new();

    say::step("1/3 ConfigMaps: deploy/k8s/configmaps.yaml from env/");
    if !succeeds(Command::new(&python).args(["scripts/deploy_configmaps.py", "--check"])) {
        failed.push("configmaps.yaml is stale");
    } else if !succeeds(Command::new(&python).args(["scripts/deploy_configmaps.py", "--verbatim"]))
    {
        // The generator's own promise: each data value is its file, byte for byte.
        failed.push("configmaps.yaml does not hold env/ verbatim");
    }

    let mut resources = 0;
    for dir in [&k8s, &openbao] {
        say::step(&format!(
            "2/3 Kubernetes manifests: kubernetes-validate --strict {}/*.yaml",
            dir.display()
        ));
        let (ok, out) = output(
            Command::new(&python)
                .arg("scripts/validate_k8s.py")
                .arg(dir),
        );
        if !ok {
            failed.push("Kubernetes manifests");
        }
        resources += count(&out, "kubernetes: ", " resources valid")
            .parse::<u32>()
            .unwrap_or(0);
    }

    say::step(&format!(
        "3/3 Istio policies: {} against {}",
        istio.display(),
        schemas.display()
    ));
    let (ok, out) = output(
        Command::new(&python)
            .args(["scripts/validate_istio.py", "--schemas"])
            .arg(&schemas)
            .arg(&istio),
    );
    if !ok {
        failed.push("Istio policies");
    }
    let documents = count(&out, "istio: ", " documents valid");

    if !failed.is_empty() {
        bail!("{} failed: {}", failed.len(), failed.join("; "));
    }
    say::step(&format!(
        "deploy/ is valid: ConfigMaps current, {resources} Kubernetes resources, {documents} Istio \
         documents (offline; the image is not built here)"
    ));
    Ok(())
}

/// Settings first: a missing folder is a set-up mistake, not a failed check.
fn check_settings(schemas: &Path, dirs: &[(&str, &PathBuf)]) -> Result<()> {
    let see = "set ISTIO_SCHEMAS_DIR to the Istio JSON schemas (shared/schemas/istio beside the \
               project; see ../shared/schemas/README.md)";
    if !schemas.is_dir() {
        bail!(
            "ISTIO_SCHEMAS_DIR={} is not a folder: {see}",
            schemas.display()
        );
    }
    if let Some(missing) = ISTIO_SCHEMAS.iter().find(|s| !schemas.join(s).is_file()) {
        bail!(
            "ISTIO_SCHEMAS_DIR={} has no {missing}: {see}",
            schemas.display()
        );
    }
    for (name, dir) in dirs {
        if !dir.is_dir() {
            bail!("{name}={} is not a folder", dir.display());
        }
    }
    Ok(())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.status().is_ok_and(|s| s.success())
}

/// Runs `cmd`, prints what it printed; whether it succeeded, and its output.
fn output(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            print!("{text}");
            (out.status.success(), text)
        }
        Err(e) => {
            println!("cannot run {cmd:?}: {e}");
            (false, String::new())
        }
    }
}

/// The number in a line `{prefix}N{suffix}...` of `out`, or 0.
fn count(out: &str, prefix: &str, suffix: &str) -> String {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .find_map(|rest| rest.split_once(suffix).map(|(n, _)| n.to_owned()))
        .unwrap_or_else(|| "0".to_owned())
}
