//! Env files, loaded before clap reads the environment.
//!
//! Precedence is flag > process environment > env file > default: clap gives
//! flags priority over env variables, and dotenvy never overrides a variable
//! the process already has. A file named explicitly (`--env-file`) must
//! exist; the conventional default (`env/<service>.env`) may be absent.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Loads `explicit` (must exist) or else `default` (if present).
/// Returns the file that was loaded, for the start-up log.
pub fn load(explicit: Option<&Path>, default: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        dotenvy::from_path(path)
            .with_context(|| format!("could not load env file {}", path.display()))?;
        return Ok(Some(path.to_path_buf()));
    }
    match default {
        Some(path) if path.is_file() => {
            dotenvy::from_path(path)
                .with_context(|| format!("could not load env file {}", path.display()))?;
            Ok(Some(path.to_path_buf()))
        }
        _ => Ok(None),
    }
}

/// Finds `--env-file PATH` or `--env-file=PATH` in the raw arguments.
///
/// The env file must be loaded *before* clap parses, or its values would not
/// count as the environment; so this one flag is read ahead of the rest.
/// (clap then parses `--env-file` again, so it shows in `--help`.)
pub fn flag_in_args(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--env-file" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--env-file=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_flag_in_both_spellings() {
        let a = |v: &[&str]| {
            v.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            flag_in_args(&a(&["x", "--env-file", "f"])),
            Some("f".into())
        );
        assert_eq!(flag_in_args(&a(&["x", "--env-file=g"])), Some("g".into()));
        assert_eq!(flag_in_args(&a(&["x", "--port", "1"])), None);
        assert_eq!(flag_in_args(&a(&["x", "--", "--env-file", "f"])), None);
    }

    #[test]
    fn an_explicit_file_must_exist() {
        assert!(load(Some(Path::new("/nonexistent/x.env")), None).is_err());
        assert!(matches!(
            load(None, Some(Path::new("/nonexistent/x.env"))),
            Ok(None)
        ));
    }
}
