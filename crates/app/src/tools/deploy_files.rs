//! `app deploy-files [--check]`: the files of `deploy/` that name ports,
//! rendered from `deploy/templates/` with the topology's values, so a port
//! is written once (in the `topology` crate). serviceb's and servicec's
//! manifests come from one template. A test compares the committed files
//! with what this renders, so they cannot drift.
//!
//! A template names a value as `{{name}}`, `{{port}}`, `{{https_port}}`
//! (of the process the file is for), `{{PROCESS.port}}`,
//! `{{PROCESS.https_port}}` (of any process, by name) or
//! `{{service_ports}}` (every port of the services and the factory),
//! `{{openbao_port}}`, or `{{policy.NAME}}` (an OpenBao policy as
//! `openbao::setup` writes it, indented for a YAML block). An
//! unknown name is an error, never left in the output.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args as ClapArgs;
use topology::{FACTORY, Process, SERVICEA, SERVICEB, SERVICEC};

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Compare the files in deploy/ with what would be written; fail if
    /// any differs (CI).
    #[arg(long)]
    pub check: bool,

    /// The folder that holds deploy/.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// Each template, and the processes it is rendered for (`None`: once,
/// with no process of its own), with the output's path.
fn outputs() -> Vec<(&'static str, Option<&'static Process>, String)> {
    let mut out = vec![
        (
            "k8s/servicea.yaml",
            Some(&SERVICEA),
            "k8s/servicea.yaml".to_owned(),
        ),
        (
            "k8s/jwt-factory.yaml",
            Some(&FACTORY),
            "k8s/jwt-factory.yaml".to_owned(),
        ),
        (
            "istio/request-authentication.yaml",
            None,
            "istio/request-authentication.yaml".to_owned(),
        ),
        ("Dockerfile", None, "Dockerfile".to_owned()),
        (
            "openbao/jwt-factory.yaml",
            Some(&FACTORY),
            "openbao/jwt-factory.yaml".to_owned(),
        ),
    ];
    for receiver in [&SERVICEB, &SERVICEC] {
        out.push((
            "k8s/receiver.yaml",
            Some(receiver),
            format!("k8s/{}.yaml", receiver.name),
        ));
    }
    out
}

/// Every rendered file: its path under `deploy/`, and its text.
pub fn render_all(root: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let deploy = root.join("deploy");
    outputs()
        .into_iter()
        .map(|(template, process, output)| {
            let path = deploy.join("templates").join(template);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let rendered =
                render(&text, process).with_context(|| format!("in {}", path.display()))?;
            let header = header(template);
            // A Dockerfile's `# syntax=` directive must stay its first line.
            let text = match rendered.split_once('\n') {
                Some((first, rest)) if first.starts_with("# syntax=") => {
                    format!("{first}\n{header}{rest}")
                }
                _ => format!("{header}{rendered}"),
            };
            Ok((deploy.join(&output), text))
        })
        .collect()
}

/// The first lines of a generated file: where it comes from.
fn header(template: &str) -> String {
    format!("# Generated from deploy/templates/{template} by `app deploy-files`: do not edit.\n")
}

/// `text` with every `{{...}}` replaced.
fn render(text: &str, process: Option<&Process>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("an unclosed {{{{");
        };
        out.push_str(&value(after[..end].trim(), process)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value a placeholder names.
fn value(name: &str, process: Option<&Process>) -> anyhow::Result<String> {
    let of = |p: &Process, field: &str| -> anyhow::Result<String> {
        match field {
            "name" => Ok(p.name.to_owned()),
            "port" => Ok(p.port.to_string()),
            "https_port" => p
                .https_port
                .map(|port| port.to_string())
                .with_context(|| format!("{} has no https port", p.name)),
            other => bail!("no value {other:?} of a process"),
        }
    };
    if name == "openbao_port" {
        return Ok(topology::OPENBAO_PORT.to_string());
    }
    // An OpenBao policy, as the setup writes it, indented for a YAML block.
    if let Some(who) = name.strip_prefix("policy.") {
        let policy = match who {
            "jwt-factory" => {
                openbao::setup::factory_policy(openbao::setup::FACTORY_TRANSIT_MOUNT, "secret")
            }
            "cert-agent" => openbao::pki::agent_policy(),
            service if topology::by_name(service).is_some() => {
                openbao::setup::service_policy(openbao::setup::SERVICES_TRANSIT_MOUNT, service)
            }
            other => bail!("no policy {other:?}"),
        };
        let indented: Vec<String> = policy
            .trim_end()
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("    {l}")
                }
            })
            .collect();
        return Ok(indented.join("\n"));
    }
    if name == "service_ports" {
        let ports: Vec<String> = [&SERVICEA, &SERVICEB, &SERVICEC, &FACTORY]
            .iter()
            .flat_map(|p| p.ports())
            .map(|p| p.to_string())
            .collect();
        return Ok(ports.join(" "));
    }
    match name.split_once('.') {
        Some((who, field)) => {
            let p = topology::by_name(who)
                .with_context(|| format!("no process {who:?} in the topology"))?;
            of(p, field)
        }
        None => of(
            process.with_context(|| format!("{{{{{name}}}}} in a template of no process"))?,
            name,
        ),
    }
}

/// Writes every file, or with `--check` says which differ.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for (path, text) in render_all(&args.root)? {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            continue;
        }
        if args.check {
            stale.push(path.display().to_string());
        } else {
            s2s_auth::files::write_atomic(&path, text.as_bytes(), 0o644)
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "{} differ from deploy/templates: run `cargo run --bin app -- deploy-files`",
            stale.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_topology_s_values() {
        let text = "{{name}} {{port}} {{https_port}} {{jwt-factory.port}} {{serviceb.https_port}}";
        assert_eq!(
            render(text, Some(&SERVICEC)).unwrap(),
            "servicec 3002 9443 5555 8443"
        );
        assert_eq!(
            render("{{service_ports}}", None).unwrap(),
            "3000 3001 8443 3002 9443 5555 5556"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_an_error() {
        for bad in [
            "{{nope}}",
            "{{serviceb.nope}}",
            "{{nobody.port}}",
            "{{servicea.https_port}}",
            "{{port}}",
            "{{open",
        ] {
            assert!(render(bad, None).is_err(), "{bad}");
        }
    }
}
