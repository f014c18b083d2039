//! The options of a collaboration, defined once.
//!
//! Three nested types, each a plain struct of `Option`s (`None`: not given, the default applies):
//! - [`GuidanceOptions`]: what a client asks of a server about how its guidance is made (mode,
//!   references, selector, draft aggregation, screening). The body of `POST /v1/colm/guidance`
//!   and of a session flattens it;
//! - [`RoundOptions`]: the client's side of a collaboration (rounds, refinement form) around
//!   its guidance options — what `colm client` and the device runtime run;
//! - [`ColmOptions`]: a whole CoLM strategy (collaborators, top-k selection, the writer pool)
//!   around its round options — the `colm[:…]` text form, `colm ask`, `colm serve`, `colm eval`.
//!
//! Every surface reads these types: serde gives the JSON of the API bodies and the TOML file,
//! the `openapi` feature their JSON Schema (utoipa), the `cli` feature their command-line
//! flags (clap `Args`, the doc comments being the help), and [`text`] the text form
//! `key=value,…` (through serde, so the keys are the JSON field names). A new option is one
//! field here (with its default in `defaults()` and its check in `check()`) and appears on every
//! surface. Defaults are written once, in the `defaults()` of each type.

use serde::{Deserialize, Deserializer, Serialize};

use crate::guidance::{DraftScreen, GuidanceMode};
use crate::named::Named;
use crate::prompts::RefineContext;

/// Most references per query.
pub const MAX_REFS: usize = 8;

/// Most drafts accepted in one guidance request (and most `k` of a session).
pub const MAX_DRAFTS: usize = 16;

/// How the top-k reference writers are chosen.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// No model call: the writers whose descriptions share the most words with the query
    /// ([`crate::colm::references::select_by_keywords`]).
    #[default]
    Keywords,
    /// The server model reads the descriptions ([`crate::prompts::selection`]).
    Model,
    /// No model call: the writers whose descriptions' sentence embeddings are nearest (cosine)
    /// to the query's, by the server's embedding model
    /// ([`crate::colm::selection::select_by_embedding`]).
    Embedding,
}

impl Named for Selector {}

/// The server-side reference writers of a `colm` strategy when none are declared, all on the
/// server model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum WriterPool {
    /// `refs` generalists: the first greedy with the run's sampling (the `server` strategy's
    /// request), the others at temperature `pool_t` (default [`POOL_TEMPERATURE`]) with seeds
    /// 1, 2, ….
    #[default]
    Seeds,
    /// The four specialisations of [`crate::prompts::SPECIALISATIONS`], with the run's sampling.
    Roles,
}

impl Named for WriterPool {}

/// How the server turns several references into guidance (reference modes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The server model synthesises the references (CoLM's aggregation; the default).
    #[default]
    Synthesis,
    /// No model call: the majority of the references' final answers
    /// ([`crate::answer::extract_answer`]; self-consistency, Wang et al. 2022) — the guidance
    /// is the reference of the majority with the highest mean token log-probability (ties: the
    /// first, the greedy one); with no extractable answer, the first reference.
    Vote,
    /// One server call: the server model names the reference most consistent with the
    /// others, by its number (universal self-consistency, Chen et al. 2023, §3; for answers a
    /// vote cannot extract) — the guidance is that reference, unchanged; a reply naming none
    /// falls back to the first reference (recorded).
    Select,
}

impl Named for Aggregate {}

impl Aggregate {
    /// Whether this is the default (left out of records and store keys).
    pub fn is_synthesis(&self) -> bool {
        *self == Aggregate::Synthesis
    }
}

/// Whether a client writes its round-1 draft (`draft`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum DraftPolicy {
    /// Only when it is read: in the modes whose guidance and refinement read no draft
    /// (`reference` with the refinement form `guidance`, drafts not aggregated, no
    /// `keep_draft`), the client asks for the guidance first and refines without drafting when
    /// it arrives within `draft_wait_ms` (a store hit arrives at once); otherwise it drafts, as
    /// the fallback answer, and cancels that draft when the guidance lands. The modes that read
    /// the draft draft as `always`.
    #[default]
    Auto,
    /// Draft at once, alongside the server's work (the paper's round).
    Always,
}

impl Named for DraftPolicy {}

/// When a client refines (`refine_when`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum RefineWhen {
    /// Every round.
    #[default]
    Always,
    /// Only when the client's own answer and the guidance give different final answers
    /// ([`crate::answer::extract_for`]); when they agree the client keeps its own answer and
    /// makes no call (for devices where the draft is cheap; implies `draft=always`).
    Disagreement,
}

impl Named for RefineWhen {}

/// A guidance mode by name: how the server makes guidance (the runtime mode, with `auto`'s
/// threshold, is [`GuidanceMode`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The paper's data flow (default): the server's own references, synthesised (one
    /// reference is its own guidance); the drafts are not read.
    #[default]
    Reference,
    /// As `reference`, then the server reviews each client's draft against it.
    ReferenceCritique,
    /// The server model synthesises the clients' drafts.
    Synthesis,
    /// The server model says what is wrong in the drafts.
    Critique,
    /// No model call: the majority of the answers extracted from the drafts.
    Vote,
    /// `vote` when the drafts agree at `auto_threshold`, else `synthesis`.
    Auto,
}

impl Named for Mode {}

impl Mode {
    /// Every mode, in the order of the docs.
    pub const ALL: [Mode; 6] = [
        Mode::Reference,
        Mode::ReferenceCritique,
        Mode::Synthesis,
        Mode::Critique,
        Mode::Vote,
        Mode::Auto,
    ];

    /// The runtime mode; `auto` takes `threshold` (default [`GuidanceMode::AUTO_THRESHOLD`]).
    pub fn with_threshold(self, threshold: Option<f64>) -> GuidanceMode {
        match self {
            Mode::Reference => GuidanceMode::Reference,
            Mode::ReferenceCritique => GuidanceMode::ReferenceCritique,
            Mode::Synthesis => GuidanceMode::Synthesis,
            Mode::Critique => GuidanceMode::Critique,
            Mode::Vote => GuidanceMode::Vote,
            Mode::Auto => GuidanceMode::Auto {
                threshold: threshold.unwrap_or(GuidanceMode::AUTO_THRESHOLD),
            },
        }
    }

    /// Whether the mode aggregates the server's references.
    pub fn uses_references(self) -> bool {
        self.with_threshold(None).uses_references()
    }
}

/// An option that is wrong, or wrong with another: the field it names (as in the JSON body, the
/// text form and, with `-` for `_`, the flag) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    /// The option at fault (`refs`, `mode`, …).
    pub field: &'static str,
    /// What is wrong, naming the value and what is accepted.
    pub message: String,
}

impl From<OptionError> for crate::invalid::Invalid {
    fn from(e: OptionError) -> Self {
        Self(e.to_string())
    }
}

impl OptionError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// How the server makes guidance: the options a client sends with its query (module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct GuidanceOptions {
    /// How the server makes guidance (default `reference`): `reference` (the paper's data
    /// flow: the server's own references, written while the clients draft, synthesised; one
    /// reference is its own guidance), `reference-critique` (then the server reviews each draft
    /// against it), `synthesis` (the drafts only), `critique`, `vote` (no server call: majority
    /// of the drafts' answers) or `auto` (vote when the drafts agree, else synthesis).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub mode: Option<Mode>,
    /// Agreement threshold of `auto`, in (0, 1] (default 0.6).
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    #[cfg_attr(feature = "cli", arg(long))]
    pub auto_threshold: Option<f64>,
    /// Reference modes: references per query, top-k among the server's writers, 1 to 8
    /// (default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8))]
    #[cfg_attr(feature = "cli", arg(long))]
    pub refs: Option<usize>,
    /// Reference modes: how the writers are chosen when there are more than `refs`:
    /// `keywords` (default; no model call), `model` (the server model reads their
    /// descriptions) or `embedding` (no model call: nearest descriptions by the server's
    /// embedding model).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub selector: Option<Selector>,
    /// Reference modes: how several references become guidance: `synthesis` (default; the
    /// server model synthesises them), `vote` (no model call: the reference of the majority
    /// final answer) or `select` (the server model names the most consistent reference).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub aggregate: Option<Aggregate>,
    /// Reference modes with `aggregate=vote`: draw the references adaptively — the first
    /// ones together, then one at a time — until the leading answer is settled with this
    /// confidence, in (0.5, 1) (Adaptive-Consistency's Beta stopping rule, Aggarwal et al.
    /// 2023), `refs` being the most drawn. Default: off (all `refs` drawn).
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0.5, exclusive_maximum = 1)
    )]
    #[cfg_attr(feature = "cli", arg(long))]
    pub adaptive: Option<f64>,
    /// Reference modes: aggregate the clients' drafts with the references in round 1 too (the
    /// guidance then reads client text and is private; default false).
    #[serde(deserialize_with = "switch")]
    #[cfg_attr(
        feature = "cli",
        arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")
    )]
    pub aggregate_drafts: Option<bool>,
    /// Which drafts the server model reads when it aggregates them: `all` (default) or
    /// `agreeing` (only drafts whose final answer another draft also gives; when no two agree,
    /// all). Not for `vote` and `reference-critique`.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub screen: Option<DraftScreen>,
    /// The server reads at most this many of the clients' answers when it aggregates them (the
    /// first ones, in the order they came), 1 to 16; default: all. Bounds the prompt of a
    /// session with many clients.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 16))]
    #[cfg_attr(feature = "cli", arg(long))]
    pub max_drafts: Option<usize>,
}

/// An `Option<bool>` written as a JSON boolean or, in the text form, `on`/`off`,
/// `true`/`false`, `1`/`0`.
fn switch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Bool(b)) => Some(b),
        Some(Raw::Number(0)) => Some(false),
        Some(Raw::Number(1)) => Some(true),
        Some(Raw::Text(t)) if ["on", "true", "1"].contains(&t.as_str()) => Some(true),
        Some(Raw::Text(t)) if ["off", "false", "0"].contains(&t.as_str()) => Some(false),
        Some(_) => {
            return Err(serde::de::Error::custom(
                "expected a boolean (true or false; on or off in the text form)",
            ))
        }
    })
}

impl GuidanceOptions {
    const REFS: usize = 1;

    /// The options that apply to the reference modes only (a draft-only mode refuses them; the
    /// served contract states the same from this list).
    pub const REFERENCE_ONLY: [&'static str; 5] = [
        "refs",
        "selector",
        "aggregate",
        "adaptive",
        "aggregate_drafts",
    ];

    /// Every option at its default (each enum's is its `#[default]` variant).
    pub fn defaults() -> Self {
        Self {
            mode: Some(Mode::default()),
            auto_threshold: Some(GuidanceMode::AUTO_THRESHOLD),
            refs: Some(Self::REFS),
            selector: Some(Selector::default()),
            aggregate: Some(Aggregate::default()),
            adaptive: None,
            aggregate_drafts: Some(false),
            screen: Some(DraftScreen::default()),
            max_drafts: Some(MAX_DRAFTS),
        }
    }

    /// The mode (default `reference`), with `auto`'s threshold.
    pub fn mode(&self) -> GuidanceMode {
        self.mode
            .unwrap_or_default()
            .with_threshold(self.auto_threshold)
    }

    /// References per query (default 1).
    pub fn refs(&self) -> usize {
        self.refs.unwrap_or(Self::REFS)
    }

    /// How the writers are chosen (default `keywords`).
    pub fn selector(&self) -> Selector {
        self.selector.unwrap_or_default()
    }

    /// How several references become guidance (default `synthesis`).
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate.unwrap_or_default()
    }

    /// Whether the drafts are aggregated with the references in round 1 (default no).
    pub fn aggregate_drafts(&self) -> bool {
        self.aggregate_drafts.unwrap_or_default()
    }

    /// Which drafts the server model reads (default all).
    pub fn screen(&self) -> DraftScreen {
        self.screen.unwrap_or_default()
    }

    /// Every option, the ones not given at their defaults: two requests with equal resolved
    /// options ask for the same guidance (a key, not for [`GuidanceOptions::check`]).
    pub fn resolved(&self) -> Self {
        text::overlay(&Self::defaults(), self).unwrap_or_else(|_| self.clone())
    }

    /// Checks the options alone and together.
    ///
    /// # Errors
    /// The first wrong option: a value out of range, `auto_threshold` without mode `auto`, a
    /// reference option with a mode that writes no references, a screen where no model reads
    /// a pool of drafts.
    pub fn check(&self) -> Result<(), OptionError> {
        let mode = self.mode.unwrap_or_default();
        if let Some(t) = self.auto_threshold {
            GuidanceMode::check_threshold(t)
                .map_err(|m| OptionError::new("auto_threshold", m.0))?;
            if mode != Mode::Auto {
                return Err(OptionError::new(
                    "auto_threshold",
                    format!(
                        "`auto_threshold` applies to mode auto, not to {}",
                        mode.name()
                    ),
                ));
            }
        }
        if let Some(k) = self.refs {
            if k == 0 || k > MAX_REFS {
                return Err(OptionError::new(
                    "refs",
                    format!("`refs` takes 1 to {MAX_REFS}, got {k}"),
                ));
            }
        }
        if !mode.uses_references() {
            let given = serde_json::to_value(self).unwrap_or_default();
            let field = Self::REFERENCE_ONLY
                .into_iter()
                .find(|f| given.get(f).is_some_and(|v| !v.is_null()));
            if let Some(field) = field {
                return Err(OptionError::new(
                    field,
                    format!(
                        "`{field}` applies to the reference modes, not to {}",
                        mode.name()
                    ),
                ));
            }
        }
        if let Some(c) = self.adaptive {
            if !(c > 0.5 && c < 1.0) {
                return Err(OptionError::new(
                    "adaptive",
                    format!("`adaptive` takes a confidence in (0.5, 1), got {c}"),
                ));
            }
            if self.aggregate() != Aggregate::Vote {
                return Err(OptionError::new(
                    "adaptive",
                    format!(
                        "`adaptive` stops drawing references when their vote is settled: it needs \
                         `aggregate=vote`, not {}",
                        self.aggregate().name()
                    ),
                ));
            }
        }
        if let Some(n) = self.max_drafts {
            if n == 0 || n > MAX_DRAFTS {
                return Err(OptionError::new(
                    "max_drafts",
                    format!("`max_drafts` takes 1 to {MAX_DRAFTS}, got {n}"),
                ));
            }
        }
        if self.screen.is_some() && matches!(mode, Mode::Vote | Mode::ReferenceCritique) {
            return Err(OptionError::new(
                "screen",
                format!(
                    "`screen` applies where a model reads a pool of drafts, not to mode {}",
                    mode.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The client's side of a collaboration around its guidance options (module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct RoundOptions {
    /// Draft → guidance → refinement rounds, at least 1 (default 1): in round r ≥ 2 the
    /// server aggregates the clients' round r − 1 refinements.
    #[cfg_attr(feature = "cli", arg(long))]
    pub rounds: Option<u32>,
    /// How the server makes guidance.
    #[serde(flatten)]
    #[cfg_attr(feature = "cli", command(flatten))]
    pub guidance: GuidanceOptions,
    /// What the client's refinement prompt shows besides the guidance: `draft` (its own
    /// previous answer, as its previous turn) or `guidance` (only the guidance, in the system
    /// prompt, as the CoLM reference code; not with the critique modes); default: the mode's.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub refine: Option<RefineContext>,
    /// Keep the client's own answer, without refining, when the guidance is a vote (of the
    /// references, `aggregate=vote`, or of the drafts) whose share — votes over answers counted —
    /// is below this, in (0, 1], and the client's own final answer is among the answers voted
    /// for. Default: always refine.
    #[cfg_attr(feature = "cli", arg(long))]
    pub keep_draft: Option<f64>,
    /// Whether the client drafts before the guidance arrives: `auto` (default: only where the
    /// draft is read, else as a fallback when the guidance is late) or `always`.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub draft: Option<DraftPolicy>,
    /// With `draft=auto` where no draft is read: how long the client waits for the guidance
    /// before it drafts a fallback answer, ms (default 3000).
    #[cfg_attr(feature = "cli", arg(long))]
    pub draft_wait_ms: Option<u64>,
    /// `always` (default) or `disagreement`: refine only when the client's own answer and the
    /// guidance disagree on the final answer, else keep the own answer (implies `draft=always`).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub refine_when: Option<RefineWhen>,
}

impl RoundOptions {
    const ROUNDS: u32 = 1;
    const DRAFT_WAIT_MS: u64 = 3000;

    /// Every option at its default (the refinement form's is the mode's).
    pub fn defaults() -> Self {
        Self {
            rounds: Some(Self::ROUNDS),
            guidance: GuidanceOptions::defaults(),
            refine: None,
            keep_draft: None,
            draft: Some(DraftPolicy::Auto),
            draft_wait_ms: Some(Self::DRAFT_WAIT_MS),
            refine_when: Some(RefineWhen::Always),
        }
    }

    /// The draft policy that runs: `draft`, else `always` with `refine_when=disagreement`
    /// (which reads the draft), else `auto`.
    pub fn draft(&self) -> DraftPolicy {
        match (self.draft, self.refine_when) {
            (Some(d), _) => d,
            (None, Some(RefineWhen::Disagreement)) => DraftPolicy::Always,
            (None, _) => DraftPolicy::Auto,
        }
    }

    /// Rounds (default 1).
    pub fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(Self::ROUNDS)
    }

    /// The refinement form that runs: `refine`, or the mode's default.
    pub fn refine(&self) -> RefineContext {
        self.refine
            .unwrap_or_else(|| self.guidance.mode().default_refine())
    }

    /// Checks the options alone and together ([`GuidanceOptions::check`] too).
    ///
    /// # Errors
    /// The first wrong option: zero rounds, a refinement form that hides the draft a
    /// critique comments on, or a wrong guidance option.
    pub fn check(&self) -> Result<(), OptionError> {
        self.guidance.check()?;
        if self.rounds == Some(0) {
            return Err(OptionError::new("rounds", "`rounds` must be at least 1"));
        }
        if let Some(t) = self.keep_draft.filter(|t| !(*t > 0.0 && *t <= 1.0)) {
            return Err(OptionError::new(
                "keep_draft",
                format!("`keep_draft` takes a vote share in (0, 1], got {t}"),
            ));
        }
        if self.refine_when == Some(RefineWhen::Disagreement) && self.draft() == DraftPolicy::Auto {
            return Err(OptionError::new(
                "refine_when",
                "`refine_when=disagreement` compares the draft with the guidance: it needs \
                 `draft=always`",
            ));
        }
        self.guidance
            .mode()
            .check_refine(self.refine())
            .map_err(|m| OptionError::new("refine", m.0))
    }
}

/// A whole CoLM strategy around its round options (module docs); the `colm[:…]` text form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ColmOptions {
    /// Client collaborators K ≥ 1 (default 1): in `colm eval`, K collaborators on the
    /// `--client` models in turn; where each collaborator is a model of its own (`colm ask
    /// --client`, `colm serve --colm-client`), one per model, and K is left at 1 or equals their
    /// number.
    #[cfg_attr(feature = "cli", arg(long))]
    pub k: Option<usize>,
    /// The client's side of each round.
    #[serde(flatten)]
    #[cfg_attr(feature = "cli", command(flatten))]
    pub round: RoundOptions,
    /// Let the server pick this many of the client collaborators first (default: all take
    /// part).
    #[cfg_attr(feature = "cli", arg(long))]
    pub top_k: Option<usize>,
    /// Reference modes: the server-side writers when none are declared (`--writer`): `seeds`
    /// (default; writer 1 greedy, writers 2.. sampled at temperature `pool_t` with seeds 1, 2, …) or
    /// `roles` (the four specialisations — math, code, conversation, creative — the top `refs`
    /// chosen by the selector).
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub pool: Option<WriterPool>,
    /// Reference modes, pool `seeds`: the sampling temperature of writers 2, 3, …, above 0
    /// (default [`POOL_TEMPERATURE`], 0.3).
    #[cfg_attr(feature = "cli", arg(long))]
    pub pool_t: Option<f64>,
}

/// The default temperature of the sampled reference writers of pool `seeds` (`pool_t`): 0.3,
/// below the 0.5–0.7 of the self-consistency papers (Wang et al. 2022), because the default
/// server model derails when sampled hotter. Measured on GSM8K dev 1–8 (docs/results/README.md):
/// samples of qwen2.5-coder-1.5b-instruct at 0.7 were right on 3 of 32 (they write Python and
/// invent its output), at 0.3 on 13 of 32, where its greedy answer was right on 4 of 8.
pub const POOL_TEMPERATURE: f64 = 0.3;

impl ColmOptions {
    const K: usize = 1;

    /// Every option at its default (top-k selection is off).
    pub fn defaults() -> Self {
        Self {
            k: Some(Self::K),
            round: RoundOptions::defaults(),
            top_k: None,
            pool: Some(WriterPool::default()),
            pool_t: Some(POOL_TEMPERATURE),
        }
    }

    /// Collaborators (default 1).
    pub fn k(&self) -> usize {
        self.k.unwrap_or(Self::K)
    }

    /// The guidance options.
    pub fn guidance(&self) -> &GuidanceOptions {
        &self.round.guidance
    }

    /// The writer pool (default `seeds`).
    pub fn pool(&self) -> WriterPool {
        self.pool.unwrap_or_default()
    }

    /// The temperature of the sampled writers of pool `seeds` (default [`POOL_TEMPERATURE`]).
    pub fn pool_t(&self) -> f64 {
        self.pool_t.unwrap_or(POOL_TEMPERATURE)
    }

    /// Checks the options alone and together ([`RoundOptions::check`] too).
    ///
    /// # Errors
    /// The first wrong option.
    pub fn check(&self) -> Result<(), OptionError> {
        if self.k == Some(0) {
            return Err(OptionError::new("k", "`k` must be at least 1"));
        }
        if self.top_k == Some(0) {
            return Err(OptionError::new("top_k", "`top_k` must be at least 1"));
        }
        self.round.check()?;
        if let Some(t) = self.pool_t.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(OptionError::new(
                "pool_t",
                format!("`pool_t` takes a temperature above 0, got {t}"),
            ));
        }
        if self.pool_t.is_some() && self.pool == Some(WriterPool::Roles) {
            return Err(OptionError::new(
                "pool_t",
                "`pool_t` is the temperature of pool seeds' sampled writers, not of pool roles",
            ));
        }
        let mode = self.guidance().mode.unwrap_or_default();
        let given = [
            ("pool", self.pool.is_some()),
            ("pool_t", self.pool_t.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(_, g)| *g) {
            if !mode.uses_references() {
                return Err(OptionError::new(
                    field,
                    format!(
                        "`{field}` applies to the reference modes, not to {}",
                        mode.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `over` with the options given here winning (how flags override a `--strategy`).
    ///
    /// # Errors
    /// The result's [`ColmOptions::check`].
    pub fn over(&self, base: &Self) -> Result<Self, OptionError> {
        let merged = text::overlay(base, self)
            .map_err(|e| OptionError::new("options", format!("cannot merge options: {e}")))?;
        merged.check()?;
        Ok(merged)
    }

    /// The canonical form: options equal to their default left out (the refinement form when
    /// it is the mode's).
    pub fn canonical(&self) -> Self {
        let mut c =
            text::without_defaults(self, &Self::defaults()).unwrap_or_else(|_| self.clone());
        if c.round.refine.is_some()
            && self.round.refine() == self.guidance().mode().default_refine()
        {
            c.round.refine = None;
        }
        c
    }

    /// Whether any option is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

pub mod text;

#[cfg(test)]
mod tests;
