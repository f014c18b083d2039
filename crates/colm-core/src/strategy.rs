//! Strategies: one description, one text form.
//!
//! A [`StrategySpec`] names what answers a query — a single model, a CoLM collaboration, a
//! horizontal multi-agent strategy or the device–cloud cascade — with its options. It has one
//! short text form, parsed by [`StrategySpec::parse`] (also `FromStr`, and serde from a string)
//! and printed by [`StrategySpec::name`] (also `Display`, and serde to a string), with the
//! defaults written once here; `colm ask --strategy`, `colm serve --colm-strategy` and
//! `colm eval --strategy` all read it, and a configuration file can hold it as a string.
//!
//! Syntax: `name[:key=value,…]`:
//! - `local`: the client model alone; `server`: the server model alone (prompt
//!   [`crate::prompts::draft`]);
//! - `colm[:…]`: the options of [`ColmOptions`] as `key=value` ([`crate::options::text`]; the
//!   keys are their JSON names, so `colm:refs=3,selector=model,aggregate_drafts=true`; `select`
//!   and `drafts=on` are read too): `k`, `rounds`, `mode`, `auto_threshold`, `refs`,
//!   `selector`, `aggregate_drafts`, `screen`, `refine`, `top_k`, `pool` — each documented on
//!   its field, with its default;
//! - `self-consistency[:n,t,on]`, `debate[:agents,rounds,topology,t,on]`,
//!   `moa[:proposers,layers,t]`: [`HorizontalSpec`] (options in [`crate::horizontal::spec`]);
//! - `cascade:[tau=T,][agree=N,share=S,][to=remote|colm]` ([`CascadeSpec`]): the router's
//!   confidence cascade alone — a draft with mean token log-probability below T (nats, ≤ 0), or
//!   whose N samples at temperature 0.7 reach its final answer in less than a share S (default
//!   0.75), escalates to the server model (`remote`, default) or to a CoLM round (`colm`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::colm::references::{ReferenceStore, ReferenceWriter};
use crate::colm::{Collaborator, ColmConfig, ColmModel};
use crate::horizontal::{spec, HorizontalSpec};
use crate::invalid::Invalid;
use crate::model::{ChatModel, EmbeddingModel};
use crate::options::text;
pub use crate::options::ColmOptions;
use crate::prompts;
use crate::run::Strategy;
use crate::vertical::{AgreementConfig, Route, Router, RouterConfig, TokenLedger};

/// A strategy and its options (module docs for the text form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StrategySpec {
    /// The client model alone.
    Local,
    /// The server model alone.
    Server,
    /// CoLM.
    Colm(ColmOptions),
    /// A horizontal strategy: self-consistency, debate or mixture-of-agents.
    Horizontal(HorizontalSpec),
    /// The device–cloud router's confidence cascade.
    Cascade(CascadeSpec),
}

/// Which of a run's models a strategy calls, so that a command loads only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    /// The client model(s).
    pub clients: bool,
    /// The server model (and declared reference writers).
    pub server: bool,
    /// An embedding model: CoLM's `embedding` selector of reference writers.
    pub embedder: bool,
}

impl StrategySpec {
    /// The models it calls: `local` the client alone, `server` the server alone, the others
    /// both (CoLM's drafts and references, the horizontal strategies' client and server
    /// agents, the cascade's device model and escalation target); CoLM with
    /// `selector=embedding` an embedding model too.
    pub fn calls(&self) -> Calls {
        match self {
            StrategySpec::Local => Calls {
                clients: true,
                server: false,
                embedder: false,
            },
            StrategySpec::Server => Calls {
                clients: false,
                server: true,
                embedder: false,
            },
            StrategySpec::Colm(c) => Calls {
                clients: true,
                server: true,
                embedder: c.guidance().selector() == crate::options::Selector::Embedding,
            },
            StrategySpec::Horizontal(_) | StrategySpec::Cascade(_) => Calls {
                clients: true,
                server: true,
                embedder: false,
            },
        }
    }
}

/// The options of a `cascade` strategy (text keys `tau`, `agree`, `share`, `to`; at least one
/// of `tau` and `agree`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CascadeSpec {
    /// Threshold τ, nats (≤ 0): a draft whose mean token log-probability reaches it stays
    /// local; `None`: only agreement decides.
    pub tau: Option<f64>,
    /// Agreement of sampled drafts: drafts sampled beside the greedy one, at least 1
    /// ([`AgreementConfig::samples`]); `None`: no agreement check.
    pub agree: Option<usize>,
    /// Least share of them that must agree with the draft, in [0, 1] (default
    /// [`AgreementConfig`]'s); needs `agree`.
    pub share: Option<f64>,
    /// Where escalations go: `remote` (default) or `colm`.
    pub to: Option<Route>,
}

/// The names [`StrategySpec::parse`] accepts before the `:`.
pub fn names() -> Vec<&'static str> {
    let mut n = vec!["local", "server", "colm", "cascade"];
    n.extend(spec::NAMES);
    n
}

/// The models a strategy is built over ([`StrategySpec::build`]).
pub struct Parts<'a> {
    /// The client collaborators, in order: CoLM's collaborators; the horizontal agents take
    /// their models in turn; the first is the cascade's device model.
    pub clients: &'a [Collaborator],
    /// The server model: CoLM's aggregator (and, without declared writers, its reference
    /// writers), the server-side agents, the cascade's escalation target.
    pub server: Arc<dyn ChatModel>,
    /// Declared reference writers of CoLM (empty: the spec's [`WriterPool`] on `server`).
    pub writers: &'a [ReferenceWriter],
    /// Where CoLM shares round 1's references between requests (`None`: per request).
    pub store: Option<Arc<dyn ReferenceStore>>,
    /// The router settings a cascade's options apply to (budgets, residency, refine form).
    pub router: RouterConfig,
    /// Where a cascade keeps its server-token budget's spending (`None`: in its memory).
    pub ledger: Option<Arc<dyn TokenLedger>>,
    /// The embedding model of CoLM's `embedding` selector of writers (`None`: not loaded).
    pub embedder: Option<Arc<dyn EmbeddingModel>>,
}

impl StrategySpec {
    /// The strategy over `parts`, named `name` (as served); the one place a spec becomes a
    /// running [`Strategy`] (`colm ask`, `colm serve`'s virtual models, `colm eval`).
    ///
    /// # Errors
    /// `local` and `server` (a single model is served as itself); no client; a horizontal
    /// strategy that cannot be built ([`HorizontalSpec::build`]).
    pub fn build(&self, name: &str, parts: Parts<'_>) -> Result<Arc<dyn Strategy>, Invalid> {
        let first = parts
            .clients
            .first()
            .ok_or_else(|| format!("{self} needs at least one client model"))?;
        Ok(match self {
            StrategySpec::Local | StrategySpec::Server => {
                return Err(Invalid(format!(
                    "{self} is a single model: serve or call the model itself"
                )))
            }
            StrategySpec::Colm(c) => {
                let mut m = ColmModel::new(
                    name,
                    parts.clients.to_vec(),
                    parts.server.clone(),
                    c.config(ColmConfig::default()),
                )
                .with_writers(c.writers(&parts.server, parts.writers));
                if let Some(store) = parts.store {
                    m = m.with_store(store);
                }
                if let Some(embedder) = parts.embedder {
                    m = m.with_embedder(embedder);
                }
                Arc::new(m)
            }
            StrategySpec::Horizontal(h) => {
                let models: Vec<Arc<dyn ChatModel>> =
                    parts.clients.iter().map(|c| c.model.clone()).collect();
                Arc::new(h.build(&models, parts.server)?)
            }
            StrategySpec::Cascade(c) => {
                let router = Router::new(
                    first.model.clone(),
                    parts.server,
                    c.router_config(parts.router),
                );
                Arc::new(match parts.ledger {
                    Some(ledger) => router.with_ledger(ledger),
                    None => router,
                })
            }
        })
    }

    /// Parses the text form (module docs).
    ///
    /// # Errors
    /// A message naming the unknown strategy, key or value, or the options that do not go
    /// together.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let (head, args) = text.split_once(':').unwrap_or((text, ""));
        match head {
            "local" | "server" if !args.is_empty() => Err(Invalid(format!(
                "strategy `{head}` takes no options (got `{args}`)"
            ))),
            "local" => Ok(StrategySpec::Local),
            "server" => Ok(StrategySpec::Server),
            "colm" => ColmOptions::parse_options(args)
                .map_err(|e| Invalid(format!("`{text}`: {e}")))
                .map(StrategySpec::Colm),
            "cascade" => CascadeSpec::parse_options(args).map(StrategySpec::Cascade),
            h if spec::NAMES.contains(&h) => HorizontalSpec::parse(text).map(Self::Horizontal),
            other => Err(Invalid(format!(
                "unknown strategy `{other}` ({})",
                names().join(", ")
            ))),
        }
    }

    /// The canonical text form: the name, and the options that differ from the defaults in a
    /// fixed order (`colm`, `colm:mode=critique`, `colm:refs=3,pool=roles`).
    pub fn name(&self) -> String {
        match self {
            StrategySpec::Local => "local".into(),
            StrategySpec::Server => "server".into(),
            StrategySpec::Colm(c) => c.name(),
            StrategySpec::Horizontal(h) => h.name(),
            StrategySpec::Cascade(c) => c.name(),
        }
    }
}

impl fmt::Display for StrategySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for StrategySpec {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StrategySpec {
    type Error = Invalid;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<StrategySpec> for String {
    fn from(s: StrategySpec) -> Self {
        s.name()
    }
}

impl ColmOptions {
    /// Parses the `key=value,…` options of `colm` ([`crate::options::text`]) and checks them.
    ///
    /// # Errors
    /// A message naming the unknown key or bad value, a reference option given to a mode
    /// without references, or a refinement form the mode cannot use.
    pub fn parse_options(args: &str) -> Result<Self, Invalid> {
        let o: ColmOptions = text::parse("colm option", args)?;
        o.check().map_err(|e| e.to_string())?;
        Ok(o)
    }

    /// The server-side reference writers: `declared` when there are any; else, for one
    /// reference from the default pool, none (the server model writes it itself, under its
    /// own name); else the spec's [`WriterPool`] on `server`.
    pub fn writers(
        &self,
        server: &Arc<dyn ChatModel>,
        declared: &[ReferenceWriter],
    ) -> Vec<ReferenceWriter> {
        let refs = self.guidance().refs();
        if !declared.is_empty() {
            declared.to_vec()
        } else if refs == 1 && self.pool() == WriterPool::default() {
            Vec::new()
        } else {
            self.pool().writers(server, refs, self.pool_t())
        }
    }

    /// Checks `k` against `clients` collaborators given one per model (see
    /// [`ColmOptions::k`]).
    ///
    /// # Errors
    /// A message naming both numbers when `k` is neither 1 nor `clients`.
    pub fn check_clients(&self, clients: usize) -> Result<(), Invalid> {
        let k = self.k();
        if k == 1 || k == clients {
            Ok(())
        } else {
            Err(Invalid(format!(
                "the strategy asks for k={k} collaborators, but {clients} client model(s) are \
                 given: give one per collaborator"
            )))
        }
    }

    /// The canonical text form: `colm`, then the options that differ from the defaults in
    /// field order ([`ColmOptions::canonical`]).
    pub fn name(&self) -> String {
        let opts = text::format(&self.canonical());
        if opts.is_empty() {
            "colm".into()
        } else {
            format!("colm:{opts}")
        }
    }

    /// The collaboration settings of these options over `base` (its sampling): top-k and
    /// the round's settings ([`crate::options::RoundOptions::config`]).
    pub fn config(&self, base: ColmConfig) -> ColmConfig {
        self.round.config(ColmConfig {
            top_k: self.top_k,
            ..base
        })
    }
}

impl CascadeSpec {
    const TO: Route = Route::Remote;

    /// Every option at its default (no threshold and no agreement: not a valid cascade alone).
    pub fn defaults() -> Self {
        Self {
            tau: None,
            agree: None,
            share: Some(AgreementConfig::default().min_share),
            to: Some(Self::TO),
        }
    }

    /// Parses the `key=value,…` options of `cascade` ([`crate::options::text`]).
    ///
    /// # Errors
    /// A message naming the unknown key or bad value, or a cascade with neither `tau` nor
    /// `agree`.
    pub fn parse_options(args: &str) -> Result<Self, Invalid> {
        let c: CascadeSpec = text::parse("cascade option", args)?;
        if let Some(t) = c.tau.filter(|t| !(t.is_finite() && *t <= 0.0)) {
            return Err(Invalid(format!("`tau` must be a number ≤ 0, got `{t}`")));
        }
        if c.share.is_some() && c.agree.is_none() {
            return Err("`share` needs `agree`".into());
        }
        if let Some(a) = c.agreement() {
            a.validate()?;
        }
        if c.tau.is_none() && c.agree.is_none() {
            return Err("cascade needs `tau` or `agree`, e.g. cascade:tau=-0.3".into());
        }
        if c.to() == Route::Local {
            return Err("cascade escalates to `remote` or `colm`, not `local`".into());
        }
        Ok(c)
    }

    /// Where escalations go (default `remote`).
    pub fn to(&self) -> Route {
        self.to.unwrap_or(Self::TO)
    }

    /// The agreement check of `agree` and `share`, when `agree` is given.
    pub fn agreement(&self) -> Option<AgreementConfig> {
        let default = AgreementConfig::default();
        self.agree.map(|samples| AgreementConfig {
            samples,
            min_share: self.share.unwrap_or(default.min_share),
            ..default
        })
    }

    /// The canonical text form (`cascade:` then tau, agree, share, to).
    pub fn name(&self) -> String {
        text::named("cascade", self, &Self::defaults())
    }

    /// The router settings of this cascade over `base` (budgets, residency, refinement form).
    pub fn router_config(&self, base: RouterConfig) -> RouterConfig {
        RouterConfig {
            escalate_to: self.to(),
            threshold: self.tau,
            agreement: self.agreement(),
            ..base
        }
    }
}

pub use crate::options::WriterPool;

impl WriterPool {
    /// The writers on `server` for `refs` references; `t`: the temperature of the sampled
    /// writers of [`WriterPool::Seeds`].
    pub fn writers(self, server: &Arc<dyn ChatModel>, refs: usize, t: f64) -> Vec<ReferenceWriter> {
        match self {
            WriterPool::Seeds => (0..refs)
                .map(|i| {
                    let mut w = ReferenceWriter::generalist(server.clone());
                    w.id = format!("server-{}", i + 1);
                    if i > 0 {
                        w.temperature = Some(t as f32);
                        w.seed = u32::try_from(i).ok();
                    }
                    w
                })
                .collect(),
            WriterPool::Roles => prompts::SPECIALISATIONS
                .iter()
                .map(|s| ReferenceWriter::specialised(s, server.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guidance::GuidanceMode;
    use crate::prompts::RefineContext;

    fn name(text: &str) -> String {
        StrategySpec::parse(text).unwrap().name()
    }

    #[test]
    fn specs_parse_and_name_canonically() {
        assert_eq!(StrategySpec::parse("local").unwrap(), StrategySpec::Local);
        assert_eq!(name("colm"), "colm");
        assert_eq!(
            name("colm:mode=reference,refs=1,pool=seeds,drafts=off"),
            "colm"
        );
        assert_eq!(
            name("colm:drafts=on,select=model,pool=roles,refs=3,rounds=2"),
            "colm:rounds=2,refs=3,selector=model,aggregate_drafts=true,pool=roles"
        );
        assert_eq!(name("colm:mode=critique,k=1"), "colm:mode=critique");
        assert_eq!(
            name("colm:mode=vote,top_k=2,k=3,rounds=2"),
            "colm:k=3,rounds=2,mode=vote,top_k=2"
        );
        assert_eq!(
            name("colm:mode=reference-critique"),
            "colm:mode=reference-critique"
        );
        // The refinement form is named only when it is not the mode's default.
        let (default, other) = match RefineContext::REFERENCE_DEFAULT {
            RefineContext::Draft => ("draft", "guidance"),
            RefineContext::Guidance => ("guidance", "draft"),
        };
        assert_eq!(
            name(&format!("colm:refine={other},refs=3")),
            format!("colm:refs=3,refine={other}")
        );
        assert_eq!(name(&format!("colm:refine={default}")), "colm");
        assert_eq!(
            name("colm:mode=synthesis,refine=draft"),
            "colm:mode=synthesis"
        );
        assert_eq!(
            name("debate:agents=3,topology=ring"),
            "debate:topology=ring"
        );
        assert_eq!(
            name("cascade:to=colm,tau=-0.25"),
            "cascade:tau=-0.25,to=colm"
        );
        assert_eq!(name("cascade:agree=4,tau=-0.1"), "cascade:tau=-0.1,agree=4");
        assert_eq!(
            name("cascade:agree=3,share=0.5"),
            "cascade:agree=3,share=0.5"
        );
        for bad in [
            "colm:k=0",
            "colm:mode=loud",
            "colm:x=1",
            "colm:refs=0",
            "colm:pool=many",
            "colm:drafts=maybe",
            "colm:refine=nothing",
            "colm:mode=critique,refine=guidance",
            "colm:mode=reference-critique,refine=guidance",
            "colm:mode=synthesis,refs=3",
            "colm:k",
            "remote",
            "local:k=2",
            "debate:topology=mesh",
            "cascade",
            "cascade:tau=0.5",
            "cascade:tau=-1,to=local",
            "cascade:share=0.5",
            "cascade:agree=0",
            "cascade:agree=2,share=1.5",
            "cascade:agree=two",
        ] {
            assert!(StrategySpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_text_form_is_the_serde_form() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct File {
            strategy: StrategySpec,
        }
        let f: File = serde_json::from_str(r#"{"strategy": "colm:pool=roles,refs=3"}"#).unwrap();
        assert_eq!(f.strategy.name(), "colm:refs=3,pool=roles");
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"strategy":"colm:refs=3,pool=roles"}"#
        );
        let bad = serde_json::from_str::<File>(r#"{"strategy": "colm:mode=loud"}"#);
        assert!(bad.unwrap_err().to_string().contains("loud"));
    }

    fn colm(text: &str) -> ColmOptions {
        match StrategySpec::parse(text).unwrap() {
            StrategySpec::Colm(c) => c,
            other => panic!("not colm: {other}"),
        }
    }

    #[test]
    fn a_colm_spec_resolves_its_refinement_form_in_the_config() {
        let config = colm("colm:mode=critique,rounds=2").config(ColmConfig::default());
        assert_eq!(config.rounds, 2);
        assert_eq!(config.guidance_mode, GuidanceMode::Critique);
        assert_eq!(config.refine, Some(GuidanceMode::Critique.default_refine()));
        // Plain colm resolves to the collaboration's defaults.
        let plain = colm("colm").config(ColmConfig::default());
        assert_eq!(
            plain,
            ColmConfig {
                refine: Some(ColmConfig::default().refine_context()),
                draft: crate::options::DraftPolicy::Auto,
                draft_wait_ms: 3000,
                ..ColmConfig::default()
            }
        );
    }

    #[test]
    fn k_matches_the_clients_given_one_per_model() {
        let three = colm("colm:k=3");
        assert!(three.check_clients(3).is_ok());
        let e = three.check_clients(2).unwrap_err();
        assert!(e.0.contains("k=3") && e.0.contains('2'), "{e}");
        assert!(ColmOptions::default().check_clients(2).is_ok());
    }

    #[test]
    fn options_override_a_spec_and_are_checked_like_the_text_form() {
        let c = colm("colm:refs=3,rounds=2");
        let o = colm("colm:rounds=1,selector=model").over(&c).unwrap();
        assert_eq!(StrategySpec::Colm(o).name(), "colm:refs=3,selector=model");
        assert!(colm("colm:mode=synthesis").over(&c).is_err());
        assert_eq!(
            colm("colm:mode=critique")
                .over(&ColmOptions::default())
                .map(|o| o.name()),
            Ok("colm:mode=critique".to_owned())
        );
    }
}
