//! `colm models list|pull|path|rm`.

use anyhow::Context;
use clap::Subcommand;
use colm_models::{embedders, CacheStatus, ModelRef, RemoteSource, CATALOG, EMBEDDERS};

/// Subcommands of `colm models`.
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The catalog: name, role, size, sha256, and whether each model is cached; then the
    /// models pulled by URL, with their sources.
    List,
    /// Fetch models into the cache: catalog models are checked against the catalog's sha256
    /// (a corrupt file is fetched again); a GGUF file named by URL or `hf:OWNER/REPO/FILE`
    /// has its sha256 recorded on the first pull and checked on every later one, and is then
    /// used under its file stem (`--client NAME`).
    Pull {
        /// Catalog names (chat and embedding models), `http(s)://…/FILE.gguf` URLs, or
        /// `hf:OWNER/REPO/FILE.gguf`.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the cached file (an embedding model: folder) of a model (fails if it is not
    /// cached).
    Path {
        /// Catalog name.
        name: String,
    },
    /// Remove models from the cache (a vision model's projector too; a pulled model's record
    /// too); a model that is not cached is said so, not an error.
    Rm {
        /// Catalog names or names of pulled models.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub async fn run(command: ModelsCommand) -> anyhow::Result<()> {
    let cache = crate::load::cache()?;
    match command {
        ModelsCommand::List => {
            println!("cache: {}", cache.dir().display());
            println!(
                "{:<30} {:<7} {:>10}  {:<17} CACHED",
                "NAME", "ROLE", "SIZE", "SHA256"
            );
            for e in CATALOG {
                let cached = match cache.status(e) {
                    CacheStatus::Present => "yes".to_owned(),
                    CacheStatus::Missing => "no".to_owned(),
                    CacheStatus::WrongSize(n) => {
                        format!("no (file of {n} bytes, pull replaces it)")
                    }
                };
                println!(
                    "{:<30} {:<7} {:>7} MB  {}…{}  {cached}",
                    e.name,
                    e.role,
                    e.size_bytes / 1_000_000,
                    &e.sha256[..8],
                    &e.sha256[56..],
                );
            }
            for e in EMBEDDERS {
                let cached = if cache.has(e) { "yes" } else { "no" };
                println!(
                    "{:<30} {:<7} {:>7} MB  {:<17}  {cached}",
                    e.name,
                    "embed",
                    e.size_bytes() / 1_000_000,
                    format!("{} files", e.files.len()),
                );
            }
            for (_, r) in cache.pulled() {
                println!(
                    "{:<30} {:<7} {:>7} MB  {}…{}  yes, from {}",
                    r.name,
                    "pulled",
                    r.size_bytes / 1_000_000,
                    &r.sha256[..8.min(r.sha256.len())],
                    &r.sha256[r.sha256.len().saturating_sub(8)..],
                    r.source
                );
            }
            Ok(())
        }
        ModelsCommand::Rm { names } => {
            for name in &names {
                let removed: anyhow::Result<Option<std::path::PathBuf>> = if let Some(path) =
                    cache.remove_pulled(name)?
                {
                    Ok(Some(path))
                } else if let Some(e) = embedders::find(name) {
                    let dir = cache.dir_of(e);
                    dir.exists()
                        .then(|| std::fs::remove_dir_all(&dir).map(|()| dir))
                        .transpose()
                        .map_err(Into::into)
                } else {
                    match ModelRef::parse(name)? {
                        ModelRef::Catalog(e) => {
                            let mut files = vec![cache.path_of(e)];
                            files.extend(e.projector().map(|p| cache.path_of(p)));
                            let mut gone = None;
                            for f in files.into_iter().filter(|f| f.exists()) {
                                std::fs::remove_file(&f)
                                    .with_context(|| format!("cannot remove {}", f.display()))?;
                                gone.get_or_insert(f);
                            }
                            Ok(gone)
                        }
                        ModelRef::Path(p) => {
                            anyhow::bail!("{} is a file, not a catalog name", p.display())
                        }
                    }
                };
                let removed = removed.with_context(|| format!("cannot remove {name}"))?;
                match removed {
                    Some(path) => println!("removed {name}  {}", path.display()),
                    None => println!("{name} is not cached"),
                }
            }
            Ok(())
        }
        ModelsCommand::Path { name } if embedders::find(&name).is_some() => {
            let e = embedders::find(&name).context("catalog")?;
            anyhow::ensure!(
                cache.has(e),
                "{} is not cached; run `colm models pull {}`",
                e.name,
                e.name
            );
            println!("{}", cache.dir_of(e).display());
            Ok(())
        }
        ModelsCommand::Path { name } => match cache.resolve(&name)? {
            ModelRef::Catalog(e) if cache.status(e) == CacheStatus::Present => {
                println!("{}", cache.path_of(e).display());
                Ok(())
            }
            ModelRef::Catalog(e) => {
                anyhow::bail!(
                    "{} is not cached; run `colm models pull {}`",
                    e.name,
                    e.name
                )
            }
            ModelRef::Path(p) => {
                println!("{}", p.display());
                Ok(())
            }
        },
        ModelsCommand::Pull { names } => {
            let mut entries = Vec::new();
            let mut embedding = Vec::new();
            let mut remote = Vec::new();
            for name in &names {
                if let Some(source) = RemoteSource::parse(name) {
                    remote.push(source?);
                    continue;
                }
                if let Some(e) = embedders::find(name) {
                    embedding.push(e);
                    continue;
                }
                match ModelRef::parse(name)? {
                    ModelRef::Catalog(e) => entries.push(e),
                    ModelRef::Path(p) => {
                        anyhow::bail!("{} is a file, not a catalog name", p.display())
                    }
                }
            }
            for e in entries {
                let cache = cache.clone();
                let path = tokio::task::spawn_blocking(move || {
                    cache.pull(e, &crate::load::pull_options())
                })
                .await
                .context("pull task")??;
                println!("{}  {}", e.name, path.display());
            }
            for e in embedding {
                let cache = cache.clone();
                let path = tokio::task::spawn_blocking(move || {
                    cache.pull_embedder(e, &crate::load::pull_options())
                })
                .await
                .context("pull task")??;
                println!("{}  {}", e.name, path.display());
            }
            for source in remote {
                let cache = cache.clone();
                let (path, record) = tokio::task::spawn_blocking(move || {
                    cache.pull_remote(&source, &crate::load::pull_options())
                })
                .await
                .context("pull task")??;
                println!(
                    "{}  {}  sha256 {}",
                    record.name,
                    path.display(),
                    record.sha256
                );
            }
            Ok(())
        }
    }
}
