//! HumanEval (Chen et al. 2021): complete a Python function; pass@1 with greedy decoding.
//!
//! Prompt: "Complete the following Python function…" with the published `prompt` (signature and
//! docstring) in a code block. Extraction ([`extract_code`]): the first fenced code block of
//! the answer (the whole answer when it has none). The program run is: when the code defines
//! the entry point itself, the prompt's import lines then the code; otherwise the prompt
//! followed by the code (a body completion); then the published `test` and
//! `check(<entry point>)`. It runs in a `python3 -I` subprocess in an empty temporary folder,
//! with an empty environment, sockets disabled, and a timeout of [`TIMEOUT_S`] seconds; it
//! passes when it exits with status 0.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{json_lines, Item, LoadError, Reference, Score};

/// Seconds a program may run before it is killed and counted as failed.
pub const TIMEOUT_S: u64 = 10;

#[derive(Deserialize)]
struct Line {
    task_id: String,
    prompt: String,
    test: String,
    entry_point: String,
}

/// The prompt of a HumanEval task.
pub fn prompt(code_prompt: &str) -> String {
    format!(
        "Complete the following Python function. Reply with the complete function in one \
         ```python code block.\n\n```python\n{}```",
        code_prompt
    )
}

/// Loads `HumanEval.jsonl.gz` (gzipped JSON lines). Ids are `humaneval:<task_id>`.
///
/// # Errors
/// [`LoadError`] for an unreadable or non-gzip file or a malformed line.
pub fn load(path: &Path) -> Result<Vec<Item>, LoadError> {
    let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| LoadError::io(path, e))?;
    let lines: Vec<Line> = json_lines(path, &text)?;
    Ok(lines
        .into_iter()
        .map(|l| Item {
            id: format!("humaneval:{}", l.task_id),
            turns: vec![prompt(&l.prompt)],
            category: None,
            reference: Reference::Code {
                prompt: l.prompt,
                test: l.test,
                entry_point: l.entry_point,
            },
        })
        .collect())
}

/// The code of an answer: the first fenced block (```` ```python ```` or ```` ``` ````), else the
/// whole text.
pub fn extract_code(answer: &str) -> String {
    if let Some(start) = answer.find("```") {
        let after = &answer[start + 3..];
        let body = after.split_once('\n').map_or("", |(_, b)| b);
        let end = body.find("```").unwrap_or(body.len());
        return body[..end].to_owned();
    }
    answer.to_owned()
}

/// The program that tests `code` (see the module docs).
pub fn program(code_prompt: &str, code: &str, test: &str, entry_point: &str) -> String {
    let head = if code.contains(&format!("def {entry_point}(")) {
        code_prompt
            .lines()
            .filter(|l| l.starts_with("import ") || l.starts_with("from "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + code
    } else {
        format!("{code_prompt}{code}")
    };
    format!("{GUARD}\n{head}\n\n{test}\n\ncheck({entry_point})\n")
}

/// Disables network access from the program under test.
const GUARD: &str = "import socket as _colm_socket\n\
def _colm_no_network(*args, **kwargs):\n    raise OSError('network access is disabled during evaluation')\n\
_colm_socket.socket.connect = _colm_no_network\n\
_colm_socket.socket.connect_ex = _colm_no_network\n\
_colm_socket.create_connection = _colm_no_network\n\
del _colm_socket\n";

/// Runs the tests of a task on `answer` and scores pass (1) / fail (0).
///
/// # Errors
/// A message when `python3` cannot be started or the temporary folder cannot be made.
pub async fn score(
    code_prompt: &str,
    answer: &str,
    test: &str,
    entry_point: &str,
) -> Result<Score, String> {
    let code = extract_code(answer);
    let program = program(code_prompt, &code, test, entry_point);
    let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let file = dir.path().join("program.py");
    std::fs::write(&file, &program).map_err(|e| format!("writing the program: {e}"))?;
    let child = tokio::process::Command::new("python3")
        .arg("-I")
        .arg("-B")
        .arg(&file)
        .current_dir(dir.path())
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start python3: {e}"))?;
    let (passed, status, stderr, timed_out) = match tokio::time::timeout(
        Duration::from_secs(TIMEOUT_S),
        child.wait_with_output(),
    )
    .await
    {
        Ok(Ok(out)) => (
            out.status.success(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            false,
        ),
        Ok(Err(e)) => return Err(format!("python3 failed to run: {e}")),
        Err(_) => (false, None, String::new(), true),
    };
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    };
    let mut s = Score::binary(passed, Some(code));
    s.detail = serde_json::json!({
        "exit_status": status,
        "timed_out": timed_out,
        "stderr_tail": tail,
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_the_published_tests() {
        let items = load(&crate::suite::test_data("humaneval/HumanEval.jsonl.gz")).unwrap();
        assert_eq!(items.len(), 164);
        let Reference::Code {
            prompt,
            test,
            entry_point,
        } = &items[0].reference
        else {
            panic!("code reference expected")
        };
        assert_eq!(entry_point, "has_close_elements");
        // The published canonical solution passes, as a body completion and as a full function.
        let body = "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n            if i != j and abs(a - b) < threshold:\n                return True\n    return False\n";
        assert_eq!(
            score(prompt, body, test, entry_point)
                .await
                .unwrap()
                .correct,
            Some(true)
        );
        let full = format!("Here it is:\n```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n{body}```\n");
        assert_eq!(
            score(prompt, &full, test, entry_point)
                .await
                .unwrap()
                .correct,
            Some(true)
        );
        // A wrong body, an endless loop and a network call fail.
        let wrong = "    return False\n";
        assert_eq!(
            score(prompt, wrong, test, entry_point)
                .await
                .unwrap()
                .correct,
            Some(false)
        );
        let net = "    import urllib.request\n    urllib.request.urlopen('http://192.0.2.1/')\n    return True\n";
        let s = score(prompt, net, test, entry_point).await.unwrap();
        assert_eq!(s.correct, Some(false));
        assert!(
            s.detail["stderr_tail"]
                .as_str()
                .unwrap()
                .contains("network access is disabled"),
            "{s:?}"
        );
    }

    #[tokio::test]
    async fn a_program_that_never_ends_is_killed() {
        let s = score(
            "def f():\n",
            "    while True:\n        pass\n",
            "def check(f):\n    f()\n",
            "f",
        )
        .await
        .unwrap();
        assert_eq!(s.correct, Some(false));
        assert_eq!(s.detail["timed_out"], true);
    }
}
