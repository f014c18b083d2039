//! `--config colm.toml`: one TOML file for `colm serve` and `colm client`
//! (`docs/colm.toml` is the commented example).
//!
//! The file holds no setting of its own: every key of `[serve]` is a flag of `colm serve`,
//! every key of `[client]` a flag of `colm client`, every key of `[eval]` a flag of
//! `colm eval SUITE` (`data_dir`), every key of `[engine]` a flag of all three
//! (`--ctx`, `--threads`, `--parallel`), with `_` for `-` (`max_queue = 64` is
//! `--max-queue 64`; a repeatable flag takes an array; `true` sets a switch). Three table arrays
//! are shorthands of repeatable `colm serve` flags: `[[models]]` (`model` and its `aliases`:
//! `--model MODEL=ALIAS` per alias, the model loaded once), `[[virtual_models]]` (`name`,
//! `strategy`: `--colm-strategy NAME=STRATEGY`) and `[[upstreams]]` (`name`, `base_url` and
//! the options of `--upstream` as keys: `model`, `aliases`, `key_env`, `key_file`,
//! `deadline_ms`, `max_concurrent`, `vision`; one table per replica). So a flag's name, type, default, range and
//! doc are written once, in its clap definition, and flags given on the command line win over
//! the file. Relative paths in the file are relative to the file's directory.
//!
//! Environment variables are read here, in the CLI, never inside the libraries.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use serde::Deserialize;

/// The flag that names the file.
pub const FLAG: &str = "config";

/// `[[models]]`: a hosted model and the ids it is served under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    /// Catalog name or .gguf path.
    model: String,
    /// Ids to serve it under (default: its name).
    #[serde(default)]
    aliases: Vec<String>,
}

/// `[[virtual_models]]`: a strategy served as a model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VirtualModel {
    /// Its model id.
    name: String,
    /// The strategy in its text form (`colm_core::strategy`).
    strategy: String,
}

/// `[[upstreams]]`: a model on an OpenAI-compatible endpoint (`--upstream`); tables with the
/// same `name` are replicas of one model. Each key is an option of `--upstream`
/// (`colm_remote::Upstream::parse`), which checks the values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamEntry {
    /// The id colm serves it under.
    name: String,
    /// `http://host:port/v1`.
    base_url: String,
    /// Its name at the endpoint (default: `name`).
    model: Option<String>,
    /// Further ids it is served under.
    #[serde(default)]
    aliases: Vec<String>,
    /// Environment variable holding its bearer key.
    key_env: Option<String>,
    /// File whose first line is its bearer key (relative to the configuration's directory).
    key_file: Option<PathBuf>,
    /// Time allowed for one chat, ms.
    deadline_ms: Option<u64>,
    /// Chats sent to it at once, at most.
    max_concurrent: Option<u64>,
    /// It reads images.
    #[serde(default)]
    vision: bool,
}

impl UpstreamEntry {
    /// The `--upstream` value it stands for; `dir`: the configuration's directory.
    fn flag(&self, dir: &Path) -> anyhow::Result<String> {
        let mut spec = format!("{}={}", self.name, self.base_url);
        let mut add = |key: &str, value: &str| -> anyhow::Result<()> {
            anyhow::ensure!(
                !value.contains(','),
                "[[upstreams]] {}: {key} may not contain a comma",
                self.name
            );
            spec.push_str(&format!(",{key}={value}"));
            Ok(())
        };
        if let Some(m) = &self.model {
            add("model", m)?;
        }
        for a in &self.aliases {
            add("alias", a)?;
        }
        if let Some(v) = &self.key_env {
            add("key_env", v)?;
        }
        if let Some(f) = &self.key_file {
            add("key_file", &dir.join(f).display().to_string())?;
        }
        if let Some(ms) = self.deadline_ms {
            add("deadline_ms", &ms.to_string())?;
        }
        if let Some(n) = self.max_concurrent {
            add("max_concurrent", &n.to_string())?;
        }
        if self.vision {
            spec.push_str(",vision");
        }
        Ok(spec)
    }
}

/// The file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    models: Vec<ModelEntry>,
    #[serde(default)]
    virtual_models: Vec<VirtualModel>,
    #[serde(default)]
    upstreams: Vec<UpstreamEntry>,
    #[serde(default)]
    engine: toml::Table,
    #[serde(default)]
    serve: toml::Table,
    #[serde(default)]
    client: toml::Table,
    #[serde(default)]
    eval: toml::Table,
}

/// `args` (the whole command line) with the settings of the `--config` file of `colm serve`
/// or `colm client` appended as flags, leaving out every flag the command line gives; `args`
/// unchanged without `--config` (or when the line does not parse: clap then reports it).
///
/// # Errors
/// The file cannot be read or is not TOML; a key is not a flag of the command (named with its
/// table); a value is a table, or an array for a flag that is not repeatable.
pub fn expand(cmd: &Command, args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Ok(matches) = cmd.clone().ignore_errors(true).try_get_matches_from(&args) else {
        return Ok(args);
    };
    let Some((name, mut sub)) = matches.subcommand() else {
        return Ok(args);
    };
    let mut sub_cmd = cmd
        .find_subcommand(name)
        .with_context(|| format!("no subcommand {name}"))?;
    // `colm eval gsm8k --config FILE`: the flags are the suite's, the table `[eval]`.
    while let Some((inner, m)) = sub.subcommand() {
        sub_cmd = sub_cmd
            .find_subcommand(inner)
            .with_context(|| format!("no subcommand {name} {inner}"))?;
        sub = m;
    }
    let Some(path) = sub.get_one::<PathBuf>(FLAG).cloned() else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let extra = settings(
        &text,
        name,
        sub_cmd,
        sub,
        path.parent().unwrap_or(Path::new("")),
    )
    .with_context(|| format!("configuration {}", path.display()))?;
    let mut args = args;
    args.extend(extra);
    Ok(args)
}

/// The flags the file `text` sets for subcommand `name` (`serve` or `client`), other than
/// those given on its command line (`given`).
fn settings(
    text: &str,
    name: &str,
    cmd: &Command,
    given: &ArgMatches,
    dir: &Path,
) -> anyhow::Result<Vec<OsString>> {
    let file: ConfigFile = toml::from_str(text)?;
    let mut entries: Vec<(String, String, toml::Value)> = Vec::new();
    let table = |t: &toml::Table, label: &str| {
        t.iter()
            .map(|(k, v)| (format!("[{label}] {k}"), k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    entries.extend(table(&file.engine, "engine"));
    match name {
        "serve" => {
            entries.extend(table(&file.serve, "serve"));
            let models: Vec<toml::Value> = file
                .models
                .iter()
                .flat_map(|m| {
                    if m.aliases.is_empty() {
                        vec![m.model.clone()]
                    } else {
                        m.aliases
                            .iter()
                            .map(|a| format!("{}={a}", m.model))
                            .collect()
                    }
                })
                .map(toml::Value::String)
                .collect();
            if !models.is_empty() {
                entries.push(("[[models]]".into(), "model".into(), models.into()));
            }
            let strategies: Vec<toml::Value> = file
                .virtual_models
                .iter()
                .map(|v| toml::Value::String(format!("{}={}", v.name, v.strategy)))
                .collect();
            if !strategies.is_empty() {
                entries.push((
                    "[[virtual_models]]".into(),
                    "colm_strategy".into(),
                    strategies.into(),
                ));
            }
            let upstreams: Vec<toml::Value> = file
                .upstreams
                .iter()
                .map(|u| u.flag(dir).map(toml::Value::String))
                .collect::<anyhow::Result<_>>()?;
            if !upstreams.is_empty() {
                entries.push(("[[upstreams]]".into(), "upstream".into(), upstreams.into()));
            }
        }
        "client" => entries.extend(table(&file.client, "client")),
        "eval" => entries.extend(table(&file.eval, "eval")),
        other => anyhow::bail!("colm {other} takes no configuration file"),
    }
    let mut flags = Vec::new();
    for (label, key, value) in entries {
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && a.get_id() != FLAG)
            .with_context(|| format!("{label}: colm {name} has no flag --{long}"))?;
        if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        let takes_values = arg.get_action().takes_values();
        let is_path = matches!(
            arg.get_value_hint(),
            clap::ValueHint::AnyPath | clap::ValueHint::FilePath | clap::ValueHint::DirPath
        );
        let values = match value {
            toml::Value::Array(items) => {
                let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
                anyhow::ensure!(
                    repeatable,
                    "{label}: --{long} takes one value, not an array"
                );
                items
            }
            v => vec![v],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) if is_path && Path::new(&s).is_relative() => {
                    dir.join(s).display().to_string()
                }
                toml::Value::String(s) => s,
                toml::Value::Boolean(b) if !takes_values => {
                    if b {
                        flags.push(OsString::from(format!("--{long}")));
                    }
                    continue;
                }
                toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Datetime(_) => v.to_string(),
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    anyhow::bail!("{label}: --{long} takes plain values")
                }
            };
            flags.push(OsString::from(format!("--{long}={text}")));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn cli() -> Command {
        crate::Cli::command()
    }

    fn argv(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn expanded(file: &str, line: &str) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("colm.toml");
        std::fs::write(&path, file)?;
        let line = line.replace("FILE", &path.display().to_string());
        let args = expand(&cli(), argv(&line))?;
        let n = argv(&line).len();
        Ok(args[n..]
            .iter()
            .map(|a| {
                a.to_string_lossy()
                    .replace(&dir.path().display().to_string(), "DIR")
            })
            .collect())
    }

    /// The commented example in `docs/` is read by both commands, and every key in it is
    /// preceded by its comment.
    #[test]
    fn the_documented_example_configures_serve_and_client() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/colm.toml");
        for sub in ["serve", "client"] {
            let args = expand(&cli(), argv(&format!("colm {sub} --config {path}"))).unwrap();
            assert!(args.len() > 4, "{sub}: {args:?}");
            let parsed = cli().try_get_matches_from(&args);
            assert!(parsed.is_ok(), "{sub}: {}", parsed.unwrap_err());
        }
        // Each key has a comment in its paragraph (the lines since the last blank one).
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with('#') || line.starts_with('[') || !line.contains(" = ") {
                continue;
            }
            let documented = lines[..i]
                .iter()
                .rev()
                .take_while(|l| !l.trim().is_empty())
                .any(|l| l.starts_with('#'));
            assert!(documented, "line {}: `{line}` has no comment", i + 1);
        }
    }

    #[test]
    fn file_settings_become_flags_and_the_command_line_wins() {
        let file = r#"
            [[models]]
            model = "gemma-3-270m"
            aliases = ["tiny", "small-test"]
            [[models]]
            model = "qwen2.5-coder-0.5b-instruct"
            [[virtual_models]]
            name = "debate"
            strategy = "debate:agents=3"
            [[upstreams]]
            name = "big"
            base_url = "http://10.0.0.5:8000/v1"
            model = "Qwen/Qwen2.5-7B-Instruct"
            aliases = ["strong"]
            key_file = "vllm.key"
            max_concurrent = 16
            [[upstreams]]
            name = "big"
            base_url = "http://10.0.0.6:8000/v1"
            deadline_ms = 30000
            vision = true
            [engine]
            ctx = 2048
            [serve]
            max_queue = 8
            api_key_file = "keys.txt"
            writer = ["gemma-3-270m:role=math", "gemma-3-270m:role=code"]
            [client]
            server = "http://127.0.0.1:8080"
        "#;
        let flags = expanded(file, "colm serve --config FILE --max-queue 2").unwrap();
        assert_eq!(
            flags,
            [
                "--ctx=2048",
                "--api-key-file=DIR/keys.txt",
                "--writer=gemma-3-270m:role=math",
                "--writer=gemma-3-270m:role=code",
                "--model=gemma-3-270m=tiny",
                "--model=gemma-3-270m=small-test",
                "--model=qwen2.5-coder-0.5b-instruct",
                "--colm-strategy=debate=debate:agents=3",
                "--upstream=big=http://10.0.0.5:8000/v1,model=Qwen/Qwen2.5-7B-Instruct,\
                 alias=strong,key_file=DIR/vllm.key,max_concurrent=16",
                "--upstream=big=http://10.0.0.6:8000/v1,deadline_ms=30000,vision",
            ]
        );
        // Each parses as --upstream does.
        for f in flags.iter().filter_map(|f| f.strip_prefix("--upstream=")) {
            assert!(colm_remote::Upstream::parse(f).is_ok(), "{f}");
        }
        // The command line's --model replaces the file's models.
        let flags = expanded(file, "colm serve --config FILE --model gemma-3-270m").unwrap();
        assert!(!flags.iter().any(|f| f.starts_with("--model")), "{flags:?}");
        let flags = expanded(file, "colm client --config FILE").unwrap();
        assert_eq!(flags, ["--ctx=2048", "--server=http://127.0.0.1:8080"]);
    }

    #[test]
    fn unknown_keys_and_misplaced_arrays_are_named() {
        for (file, wanted) in [
            (
                "[serve]\nmax_qeue = 8\n",
                "[serve] max_qeue: colm serve has no flag --max-qeue",
            ),
            (
                "[serve]\nbind = [\"a\", \"b\"]\n",
                "takes one value, not an array",
            ),
            ("[servr]\nbind = \"x\"\n", "unknown field `servr`"),
            ("[[models]]\nname = \"x\"\n", "unknown field `name`"),
            (
                "[[upstreams]]\nname = \"x\"\nbase_url = \"http://h/v1\"\nkey = \"k\"\n",
                "unknown field `key`",
            ),
            (
                "[[upstreams]]\nname = \"x\"\nbase_url = \"http://h/v1\"\nmodel = \"a,b\"\n",
                "model may not contain a comma",
            ),
        ] {
            let e = expanded(file, "colm serve --config FILE").unwrap_err();
            assert!(format!("{e:#}").contains(wanted), "{file}: {e:#}");
        }
    }
}
