//! Every `colm` command the README and the pages of `docs/` show parses: each line of their
//! `sh` blocks that runs `colm` (continuation lines joined, the comment after `#` left out) is
//! split into words by the shell (without running it) and given to the real binary with
//! `--help` appended, which exits 0 only when every flag and value before it is accepted
//! (an unknown flag, a bad value such as `--mode loud`, a renamed flag's typo all fail).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `colm …` command lines of the `sh` blocks of `markdown`.
fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            in_sh = !in_sh && (t == "```sh" || t == "```bash");
            pending.clear();
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = match t.find(" #") {
            Some(i) => &t[..i],
            None => t,
        };
        pending.push_str(code.trim_end_matches('\\').trim_end());
        pending.push(' ');
        if code.trim_end().ends_with('\\') {
            continue;
        }
        let cmd = std::mem::take(&mut pending);
        let cmd = cmd.trim();
        for prefix in ["colm ", "./colm "] {
            if let Some(rest) = cmd.strip_prefix(prefix) {
                // One command: up to a pipe, a redirection or a following command.
                let rest = rest
                    .split(['|', '>', '&', ';'])
                    .next()
                    .unwrap_or_default()
                    .trim();
                out.push(rest.to_owned());
            }
        }
    }
    out
}

/// `line` split into words by bash, without running anything.
fn words(line: &str) -> Vec<String> {
    let out = Command::new("bash")
        .args(["-c", &format!("set -- {line}; printf '%s\\0' \"$@\"")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_the_docs_show_parses() {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            pages.push(p);
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in &pages {
        for cmd in commands(&std::fs::read_to_string(page).unwrap()) {
            let mut args = words(&cmd);
            args.push("--help".into());
            let out = Command::new(env!("CARGO_BIN_EXE_colm"))
                .args(&args)
                .current_dir(root())
                .output()
                .unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}: colm {cmd}\n{}",
                    page.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The README and docs show the commands of every subcommand.
    assert!(checked >= 20, "only {checked} commands found");
}

#[test]
fn a_command_with_a_bad_value_does_not_parse() {
    let cmds = commands("```sh\ncolm ask --mode loud \"q\"   # no such mode\n```\n");
    assert_eq!(cmds, vec!["ask --mode loud \"q\""]);
    let mut args = words(&cmds[0]);
    args.push("--help".into());
    let out = Command::new(env!("CARGO_BIN_EXE_colm"))
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
