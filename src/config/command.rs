//! Checks for `command:` functions (docs/configuration.md): the program must be found, the working directory
//! must exist, and the function's `env:` may not set what the gateway sets for each instance.

use super::file::FunctionFile;
use super::validate::at_span;
use super::value::Text;
use super::{Command, Problem, DEFAULT_START_TIMEOUT};
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};

/// Environment the gateway gives every instance (docs/events.md); `env:` may not override it.
pub const PORT: &str = "PORT";
pub const FUNCTION_NAME: &str = "FNGATE_FUNCTION_NAME";
pub const FUNCTION_TIMEOUT_MS: &str = "FNGATE_FUNCTION_TIMEOUT_MS";
pub const FUNCTION_MEMORY_MB: &str = "FNGATE_FUNCTION_MEMORY_MB";
pub const INSTANCE: &str = "FNGATE_INSTANCE";
const RESERVED: [&str; 5] = [
    PORT,
    FUNCTION_NAME,
    FUNCTION_TIMEOUT_MS,
    FUNCTION_MEMORY_MB,
    INSTANCE,
];

pub(super) fn command(
    name: &str,
    spec: &FunctionFile,
    argv: &Spanned<Vec<Text>>,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Command> {
    let workdir = match &spec.workdir {
        Some(w) => {
            let dir = base_dir.join(&w.value.0);
            if !dir.is_dir() {
                let shown = dir.display();
                problems.push(at_span(
                    w,
                    format!("function {name:?}: workdir {shown} is not a directory"),
                ));
            }
            dir
        }
        None => base_dir.to_path_buf(),
    };
    let env: Vec<(String, String)> = spec.env.as_ref().map_or_else(Vec::new, |env| {
        env.value
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    });
    if let Some(env_span) = &spec.env {
        for (key, _) in env.iter().filter(|(k, _)| RESERVED.contains(&k.as_str())) {
            problems.push(at_span(
                env_span,
                format!("function {name:?}: env {key} is set by the gateway for each instance"),
            ));
        }
    }
    let instances = spec.instances.as_ref().map_or(1, |n| n.value.0);
    if instances == 0 {
        if let Some(n) = &spec.instances {
            problems.push(at_span(
                n,
                format!("function {name:?}: instances must be at least 1"),
            ));
        }
    }
    let Some((program, args)) = argv.value.split_first() else {
        problems.push(at_span(
            argv,
            format!("function {name:?}: `command` is empty"),
        ));
        return None;
    };
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok());
    let program = match resolve_program(&program.0, &workdir, path_var.as_deref()) {
        Ok(p) => p,
        Err(why) => {
            problems.push(at_span(argv, format!("function {name:?}: {why}")));
            PathBuf::from(&program.0)
        }
    };
    Some(Command {
        program,
        args: args.iter().map(|a| a.0.clone()).collect(),
        instances: instances.max(1),
        env,
        workdir,
        start_timeout: spec
            .start_timeout
            .as_ref()
            .map_or(DEFAULT_START_TIMEOUT, |d| d.value.0),
    })
}

/// A program with a slash is a path, relative to the working directory (not to wherever the
/// gateway was started); a bare name must be found in PATH, as exec will look for it.
fn resolve_program(
    program: &str,
    workdir: &Path,
    path_var: Option<&str>,
) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = workdir.join(program);
        return match path.is_file() {
            true => Ok(path),
            false => Err(format!("program {} does not exist", path.display())),
        };
    }
    let found = path_var
        .into_iter()
        .flat_map(|p| p.split(':'))
        .filter(|dir| !dir.is_empty())
        .any(|dir| Path::new(dir).join(program).is_file());
    match found {
        true => Ok(PathBuf::from(program)),
        false => Err(format!("program {program:?} is not found in PATH")),
    }
}

/// `instances`, `env`, `workdir` and `start_timeout` mean nothing without `command`.
pub(super) fn reject_command_keys(name: &str, spec: &FunctionFile, problems: &mut Vec<Problem>) {
    let key = |k: &str| format!("function {name:?}: `{k}` applies only to `command` functions");
    if let Some(s) = &spec.instances {
        problems.push(at_span(s, key("instances")));
    }
    if let Some(s) = &spec.env {
        problems.push(at_span(s, key("env")));
    }
    if let Some(s) = &spec.workdir {
        problems.push(at_span(s, key("workdir")));
    }
    if let Some(s) = &spec.start_timeout {
        problems.push(at_span(s, key("start_timeout")));
    }
}
