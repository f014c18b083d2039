//! The settings of one collaboration ([`ColmConfig`]), who takes part ([`Collaborator`]), and
//! how the typed options ([`crate::options`]) set them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::references::ReferenceConfig;
use crate::guidance::{DraftScreen, GuidanceMode};
use crate::model::{ChatModel, SamplingParams};
use crate::options::{DraftPolicy, GuidanceOptions, RefineWhen, RoundOptions, MAX_DRAFTS};
use crate::prompts::RefineContext;

/// A client model taking part in a collaboration.
#[derive(Clone)]
pub struct Collaborator {
    /// Unique id within the collaboration, e.g. `client-1`.
    pub id: String,
    /// Declared specialisation, shown to the server during top-k selection.
    pub description: String,
    /// The collaborator's own model.
    pub model: Arc<dyn ChatModel>,
}

impl Collaborator {
    /// The `i`-th client collaborator (from 0): id `client-{i + 1}`, as every entry point
    /// names them (`colm ask`, `colm serve`'s virtual models, `colm eval`).
    pub fn client(i: usize, model: Arc<dyn ChatModel>, description: impl Into<String>) -> Self {
        Self {
            id: format!("client-{}", i + 1),
            description: description.into(),
            model,
        }
    }
}

/// Settings of one collaboration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColmConfig {
    /// Draft → guidance → refinement rounds, at least 1 (the paper's default is 1).
    pub rounds: u32,
    /// When set and smaller than the number of collaborators, the server first selects this
    /// many collaborators (must be ≥ 1).
    pub top_k: Option<usize>,
    /// Sampling for the collaborators' drafts and refinements.
    pub client_params: SamplingParams,
    /// Sampling for the server's selection and guidance.
    pub server_params: SamplingParams,
    /// How the server makes guidance. Records written before the reference modes existed
    /// read as `Synthesis`, the mode they ran.
    #[serde(default = "legacy_mode")]
    pub guidance_mode: GuidanceMode,
    /// References per query and how their writers are chosen (reference modes).
    #[serde(default)]
    pub references: ReferenceConfig,
    /// Reference modes: also aggregate the clients' round-1 drafts with the references (an
    /// ablation; the guidance then reads client text and is private).
    #[serde(default)]
    pub aggregate_drafts: bool,
    /// What the refinement prompt shows the client besides the guidance: its own draft or, as
    /// the CoLM reference code, the guidance alone ([`prompts::RefineContext`]); `None`: the
    /// mode's default ([`GuidanceMode::default_refine`]; see [`ColmConfig::refine_context`]).
    /// `guidance` needs a mode whose guidance does not comment on the draft. A record holds the
    /// form that ran; records written before the option existed read as `draft`, the form they
    /// ran.
    #[serde(default = "legacy_refine")]
    pub refine: Option<RefineContext>,
    /// Which clients' answers the server model reads when it aggregates them
    /// ([`DraftScreen`]); records written before the option existed read as `all`.
    #[serde(default)]
    pub screen: DraftScreen,
    /// The server reads at most this many of the clients' answers when it aggregates them, the
    /// first ones (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drafts: Option<usize>,
    /// A client keeps its own answer instead of refining when the guidance is a vote whose
    /// share (votes / answers counted) is below this and the client's final answer is among the
    /// answers voted for (`None`: always refine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_draft: Option<f64>,
    /// Whether the clients draft before the guidance arrives ([`DraftPolicy`]); records written
    /// before the option existed read as `always`, what they ran.
    #[serde(default = "legacy_draft")]
    pub draft: DraftPolicy,
    /// `draft=auto`: how long the clients wait for the guidance before drafting a fallback, ms.
    #[serde(default)]
    pub draft_wait_ms: u64,
    /// When the clients refine ([`RefineWhen`]).
    #[serde(default, skip_serializing_if = "is_always")]
    pub refine_when: RefineWhen,
}

fn legacy_draft() -> DraftPolicy {
    DraftPolicy::Always
}

fn is_always(r: &RefineWhen) -> bool {
    *r == RefineWhen::Always
}

fn legacy_mode() -> GuidanceMode {
    GuidanceMode::Synthesis
}

fn legacy_refine() -> Option<RefineContext> {
    Some(RefineContext::Draft)
}

impl ColmConfig {
    /// The refinement form that runs: `refine`, or the mode's default.
    pub fn refine_context(&self) -> RefineContext {
        self.refine
            .unwrap_or_else(|| self.guidance_mode.default_refine())
    }

    /// Whether anything reads the clients' round-1 drafts: a mode whose guidance reads them,
    /// drafts aggregated with the references, a refinement that shows them, `keep_draft` or
    /// `refine_when=disagreement`. When nothing does, `draft=auto` drafts only as a fallback.
    pub fn reads_drafts(&self) -> bool {
        self.guidance_mode != GuidanceMode::Reference
            || self.aggregate_drafts
            || self.refine_context() != RefineContext::Guidance
            || self.keep_draft.is_some()
            || self.refine_when != RefineWhen::Always
    }

    /// Whether the clients draft at once, alongside the server's work (else they ask for the
    /// guidance first: [`DraftPolicy::Auto`] where no draft is read).
    pub fn drafts_at_once(&self) -> bool {
        self.draft == DraftPolicy::Always || self.reads_drafts()
    }
}

impl Default for ColmConfig {
    fn default() -> Self {
        Self {
            rounds: 1,
            top_k: None,
            client_params: SamplingParams::default(),
            server_params: SamplingParams::default(),
            guidance_mode: GuidanceMode::Reference,
            references: ReferenceConfig::default(),
            aggregate_drafts: false,
            refine: None,
            screen: DraftScreen::All,
            max_drafts: None,
            keep_draft: None,
            draft: DraftPolicy::Always,
            draft_wait_ms: 0,
            refine_when: RefineWhen::Always,
        }
    }
}

impl GuidanceOptions {
    /// `base` with the guidance settings of these options (mode, references, drafts
    /// aggregated, screen), resolved.
    pub fn apply(&self, base: ColmConfig) -> ColmConfig {
        ColmConfig {
            guidance_mode: self.mode(),
            references: ReferenceConfig {
                k: self.refs(),
                selector: self.selector(),
                aggregate: self.aggregate(),
                adaptive: self.adaptive,
            },
            aggregate_drafts: self.aggregate_drafts(),
            screen: self.screen(),
            max_drafts: self.max_drafts.filter(|&n| n < MAX_DRAFTS),
            ..base
        }
    }
}

impl RoundOptions {
    /// The collaboration settings of these options over `base` (its sampling, top-k): rounds,
    /// mode, references, drafts, screen and the refinement form (resolved, so a record names
    /// the form that ran).
    pub fn config(&self, base: ColmConfig) -> ColmConfig {
        self.guidance.apply(ColmConfig {
            rounds: self.rounds(),
            refine: Some(self.refine()),
            keep_draft: self.keep_draft,
            draft: self.draft(),
            draft_wait_ms: self
                .draft_wait_ms
                .unwrap_or(Self::defaults().draft_wait_ms.unwrap_or_default()),
            refine_when: self.refine_when.unwrap_or_default(),
            ..base
        })
    }
}
