//! GGUF files pulled from where the user names them rather than from the catalog:
//! `colm models pull https://host/path/model.gguf` or `hf:OWNER/REPO/FILE.gguf`.
//!
//! The file goes to `<cache>/pulled/<file name>`, written through a `.partial` temporary file
//! as catalog pulls are, with a record beside it (`<file name>.json`: source, size, sha256,
//! time of the first pull). The first pull *records* the sha256 (trust on first use, as there
//! is no catalog hash to check against); every later pull verifies the cached file against
//! the record, and a file fetched again must match it too, so a source that changed under the
//! same name is an error rather than a silent swap. A pulled model is then named by its file
//! stem wherever a model is accepted ([`Cache::resolve`]).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::pull::{bar, first_source, hash_file, io_err, HashingWriter};
use crate::{Cache, ModelRef, PullError, PullOptions};

/// Folder of pulled files inside the cache.
const PULLED: &str = "pulled";

/// Longest wait to connect to a source.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest wait for the next bytes of a download.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Where a pulled file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSource {
    /// An `http://` or `https://` URL.
    Url(String),
    /// `hf:OWNER/REPO/FILE`: a file of a Hugging Face model repository (main revision; the
    /// endpoint can be moved with `HF_ENDPOINT`, as the `huggingface_hub` tools read it).
    HuggingFace {
        /// `OWNER/REPO`.
        repo: String,
        /// Path of the file inside the repository.
        file: String,
    },
}

impl RemoteSource {
    /// `Some` when `spec` names a remote file (an `http(s)://` URL or `hf:…`), parsed;
    /// `None` for anything else (a catalog name, a pulled name, a path).
    ///
    /// # Errors
    /// Inside the `Some`: an `hf:` spec without owner, repository and file, or a file name
    /// that is not a `.gguf` file.
    pub fn parse(spec: &str) -> Option<Result<Self, PullError>> {
        let invalid = |why: &str| PullError::InvalidSource {
            spec: spec.to_owned(),
            reason: why.to_owned(),
        };
        let parsed = if let Some(rest) = spec.strip_prefix("hf:") {
            let mut parts = rest.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(owner), Some(repo), Some(file))
                    if !owner.is_empty() && !repo.is_empty() && !file.is_empty() =>
                {
                    Ok(Self::HuggingFace {
                        repo: format!("{owner}/{repo}"),
                        file: file.to_owned(),
                    })
                }
                _ => Err(invalid("expected hf:OWNER/REPO/FILE")),
            }
        } else if spec.starts_with("http://") || spec.starts_with("https://") {
            Ok(Self::Url(spec.to_owned()))
        } else {
            return None;
        };
        Some(parsed.and_then(|s| {
            if s.file_name().ends_with(".gguf") && s.file_name().len() > ".gguf".len() {
                Ok(s)
            } else {
                Err(invalid("the file must be a .gguf file"))
            }
        }))
    }

    /// The file's name: the last segment of its path (before any `?` or `#`).
    pub fn file_name(&self) -> &str {
        let path = match self {
            Self::Url(url) => url.split(['?', '#']).next().unwrap_or(url),
            Self::HuggingFace { file, .. } => file,
        };
        path.rsplit('/').next().unwrap_or(path)
    }

    /// The name the model is used under afterwards: the file name without `.gguf`.
    pub fn name(&self) -> &str {
        let f = self.file_name();
        f.strip_suffix(".gguf").unwrap_or(f)
    }

    /// The URL fetched.
    fn url(&self) -> Result<String, String> {
        match self {
            Self::Url(url) => Ok(url.clone()),
            Self::HuggingFace { repo, file } => {
                let api = hf_hub::api::sync::ApiBuilder::from_env()
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(api.model(repo.clone()).url(file))
            }
        }
    }
}

impl std::fmt::Display for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(url) => f.write_str(url),
            Self::HuggingFace { repo, file } => write!(f, "hf:{repo}/{file}"),
        }
    }
}

/// What the first pull of a file recorded (`<cache>/pulled/<file name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledRecord {
    /// The name the model is used under (the file stem).
    pub name: String,
    /// Where it was pulled from, as given (`https://…` or `hf:OWNER/REPO/FILE`).
    pub source: String,
    /// Size, bytes.
    pub size_bytes: u64,
    /// sha256 of the file at its first pull, hex.
    pub sha256: String,
    /// When it was first pulled, seconds since the Unix epoch.
    pub pulled_at: u64,
}

impl Cache {
    /// Folder of pulled files.
    pub fn pulled_dir(&self) -> PathBuf {
        self.dir().join(PULLED)
    }

    fn record_path(&self, file_name: &str) -> PathBuf {
        self.pulled_dir().join(format!("{file_name}.json"))
    }

    /// Every pulled model's record with its file, sorted by name (records whose file is
    /// missing are left out).
    pub fn pulled(&self) -> Vec<(PathBuf, PulledRecord)> {
        let Ok(dir) = fs::read_dir(self.pulled_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, PulledRecord)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".gguf.json"))
            .filter_map(|e| {
                let record: PulledRecord =
                    serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
                let file = self.pulled_dir().join(format!("{}.gguf", record.name));
                file.is_file().then_some((file, record))
            })
            .collect();
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        out
    }

    /// The pulled model named `name` (its file stem), if any.
    pub fn find_pulled(&self, name: &str) -> Option<(PathBuf, PulledRecord)> {
        self.pulled().into_iter().find(|(_, r)| r.name == name)
    }

    /// A model given on the command line: a catalog name, a pulled model's name, or a path
    /// to a GGUF file. A pulled file whose size differs from its record is refused (pull it
    /// again: the pull verifies its sha256).
    ///
    /// # Errors
    /// As [`ModelRef::parse`], and [`PullError::Changed`] for a pulled file of another size.
    pub fn resolve(&self, spec: &str) -> Result<ModelRef, PullError> {
        if crate::catalog::find(spec).is_none() {
            if let Some((path, record)) = self.find_pulled(spec) {
                let size = fs::metadata(&path).map_err(io_err(&path))?.len();
                if size != record.size_bytes {
                    return Err(PullError::Changed {
                        path,
                        reason: format!(
                            "{size} bytes where its first pull recorded {}; run `colm models \
                             pull {}` to fetch it again",
                            record.size_bytes, record.source
                        ),
                    });
                }
                return Ok(ModelRef::Path(path));
            }
        }
        ModelRef::parse(spec)
    }

    /// Pulls `source` into `<cache>/pulled/` (see the module docs) and returns the file and
    /// its record. A cached file that matches its record is verified and kept; otherwise the
    /// file is fetched (with a progress bar) and must match the record when there is one.
    ///
    /// Blocking: runs the download and hashing on the calling thread.
    ///
    /// # Errors
    /// [`PullError::InvalidSource`] when the file's stem is a catalog model's name;
    /// [`PullError::NameTaken`] when a file of that name was pulled from another source;
    /// [`PullError::AllSourcesFailed`] when the download fails or the fetched file differs
    /// from the record; [`PullError::Io`] for local file-system errors.
    pub fn pull_remote(
        &self,
        source: &RemoteSource,
        opts: &PullOptions,
    ) -> Result<(PathBuf, PulledRecord), PullError> {
        if crate::catalog::find(source.name()).is_some()
            || crate::embedders::find(source.name()).is_some()
        {
            return Err(PullError::InvalidSource {
                spec: source.to_string(),
                reason: format!(
                    "{} is the name of a catalog model, which it would hide",
                    source.name()
                ),
            });
        }
        let dir = self.pulled_dir();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dest = dir.join(source.file_name());
        let record_path = self.record_path(source.file_name());
        let recorded: Option<PulledRecord> = fs::read(&record_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(r) = &recorded {
            if r.source != source.to_string() {
                return Err(PullError::NameTaken {
                    name: r.name.clone(),
                    from: r.source.clone(),
                });
            }
            if dest.is_file() {
                let (size, sha256) =
                    hash_file(&dest, opts, r.size_bytes, &r.name).map_err(io_err(&dest))?;
                if size == r.size_bytes && sha256 == r.sha256 {
                    return Ok((dest, r.clone()));
                }
                tracing::warn!(path = %dest.display(), "pulled file differs from its record; fetching again");
            }
        }
        let name = source.name().to_owned();
        let (tmp, size_bytes, sha256) = first_source(&name, std::slice::from_ref(source), |s| {
            Ok(self.fetch(s, recorded.as_ref(), opts))
        })?;
        tmp.persist(&dest).map_err(|e| PullError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        let record = match recorded {
            Some(r) => r,
            None => {
                let record = PulledRecord {
                    name,
                    source: source.to_string(),
                    size_bytes,
                    sha256,
                    pulled_at: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                let text = serde_json::to_vec_pretty(&record).map_err(|e| PullError::Io {
                    path: record_path.clone(),
                    source: io::Error::other(e),
                })?;
                fs::write(&record_path, text).map_err(io_err(&record_path))?;
                record
            }
        };
        Ok((dest, record))
    }

    /// Downloads `source` into a temporary file of the pulled folder; with a `record`, the
    /// bytes must match it. Returns the file, its size and sha256.
    fn fetch(
        &self,
        source: &RemoteSource,
        record: Option<&PulledRecord>,
        opts: &PullOptions,
    ) -> Result<(tempfile::NamedTempFile, u64, String), String> {
        let url = source.url()?;
        // A server that stops sending fails the pull instead of hanging it.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .build();
        let response = agent.get(&url).call().map_err(|e| e.to_string())?;
        let length = response
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        let dir = self.pulled_dir();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", source.file_name()))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
        let file = tmp.reopen().map_err(|e| e.to_string())?;
        let progress = bar(opts, length.unwrap_or(0), format!("pull {}", source.name()));
        let mut out = HashingWriter::new(BufWriter::new(file), progress);
        io::copy(&mut response.into_reader(), &mut out).map_err(|e| e.to_string())?;
        out.inner.flush().map_err(|e| e.to_string())?;
        out.bar.finish_and_clear();
        if let Some(n) = length.filter(|&n| n != out.written) {
            return Err(format!(
                "the connection ended after {} of {n} bytes",
                out.written
            ));
        }
        let sha256 = out.hex();
        if let Some(r) = record {
            if (out.written, sha256.as_str()) != (r.size_bytes, r.sha256.as_str()) {
                return Err(format!(
                    "the file changed since its first pull: {} bytes with sha256 {sha256}, \
                     recorded {} bytes with sha256 {} (`colm models rm {}` to accept the new one)",
                    out.written, r.size_bytes, r.sha256, r.name
                ));
            }
        }
        Ok((tmp, out.written, sha256))
    }

    /// Removes the pulled model `name` (file and record) and returns its file; `None` when
    /// there is none.
    ///
    /// # Errors
    /// [`PullError::Io`] when a file cannot be removed.
    pub fn remove_pulled(&self, name: &str) -> Result<Option<PathBuf>, PullError> {
        let Some((path, record)) = self.find_pulled(name) else {
            return Ok(None);
        };
        fs::remove_file(&path).map_err(io_err(&path))?;
        let record_path = self.record_path(&format!("{}.gguf", record.name));
        fs::remove_file(&record_path).map_err(io_err(&record_path))?;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_sources_are_told_from_names_and_paths() {
        let hf = RemoteSource::parse("hf:unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf")
            .unwrap()
            .unwrap();
        assert_eq!(hf.name(), "gemma-3-270m-it-Q8_0");
        assert_eq!(
            hf.to_string(),
            "hf:unsloth/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q8_0.gguf"
        );
        let url = RemoteSource::parse("http://127.0.0.1:9/m/tiny.gguf?download=true")
            .unwrap()
            .unwrap();
        assert_eq!(url.file_name(), "tiny.gguf");
        for bad in [
            "hf:owner/repo",
            "hf:/r/f.gguf",
            "http://h/model.bin",
            "https://h/.gguf",
        ] {
            assert!(
                matches!(
                    RemoteSource::parse(bad),
                    Some(Err(PullError::InvalidSource { .. }))
                ),
                "{bad}"
            );
        }
        for other in ["gemma-3-270m", "./m.gguf", "/tmp/x.gguf"] {
            assert!(RemoteSource::parse(other).is_none(), "{other}");
        }
    }
}
