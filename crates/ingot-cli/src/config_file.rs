//! `--config`: a JSON or YAML file of `dev`/`start` flags, as `inngest`
//! reads it (keys are flag names: `port: 9000`, `sdk-url: [..]`,
//! `no-discovery: true`). A flag or an environment variable wins over the
//! file. Without `--config` (or `INNGEST_CONFIG`) the first `inngest.json`,
//! `inngest.yaml` or `inngest.yml` found in the working directory or above
//! it, then in `~/.config/inngest`, is read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use serde_json::Value;

const NAMES: [&str; 3] = ["inngest.json", "inngest.yaml", "inngest.yml"];

/// The command line with the file's settings appended as flags (those not
/// already given on the command line or in the environment), and one notice
/// per key that is not a flag of the command. `argv` is returned unchanged
/// for commands other than `dev` and `start`, or when there is no file.
pub fn apply(cli: &Command, matches: &ArgMatches, mut argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
    let Some((name, sub)) = matches.subcommand().filter(|(name, _)| matches!(*name, "dev" | "start")) else {
        return Ok((argv, Vec::new()));
    };
    let path = match sub.get_one::<PathBuf>("config") {
        Some(path) => path.clone(),
        None => match search() {
            Some(path) => path,
            None => return Ok((argv, Vec::new())),
        },
    };
    let settings = read(&path)?;
    let command = cli.find_subcommand(name).expect("the subcommand just matched");
    let mut notices = vec![format!("using config {}", path.display())];
    for (key, value) in settings {
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(key.as_str())) else {
            notices.push(format!("{}: key {key:?} is not a flag of `ingot {name}`; ignored", path.display()));
            continue;
        };
        if matches!(sub.value_source(arg.get_id().as_str()), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let flag = OsString::from(format!("--{key}"));
        match value {
            Value::Bool(true) => argv.push(flag),
            Value::Bool(false) | Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    argv.push(flag.clone());
                    argv.push(scalar(&path, &key, &item)?.into());
                }
            }
            other => {
                argv.push(flag);
                argv.push(scalar(&path, &key, &other)?.into());
            }
        }
    }
    Ok((argv, notices))
}

fn scalar(path: &Path, key: &str, v: &Value) -> anyhow::Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => bail!("{}: {key} must be a string, a number or a list of them, not {v}", path.display()),
    }
}

/// The file's top-level object: JSON for `.json`, YAML otherwise (YAML also
/// reads JSON).
fn read(path: &Path) -> anyhow::Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("config {} is not valid JSON", path.display()))?
    } else {
        serde_yaml_ng::from_str(&text).with_context(|| format!("config {} is not valid YAML or JSON", path.display()))?
    };
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        other => bail!("config {} must be a map of flag names to values, not {other}", path.display()),
    }
}

/// The first config file in the working directory or above, then in
/// `~/.config/inngest`.
fn search() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok();
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("inngest"));
    let dirs = cwd.iter().flat_map(|d| d.ancestors().map(Path::to_path_buf).collect::<Vec<_>>()).chain(home);
    for dir in dirs {
        for name in NAMES {
            let path = dir.join(name);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    None
}
