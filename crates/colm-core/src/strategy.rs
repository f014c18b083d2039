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
//! - `colm[:…]` ([`ColmSpec`]): keys `k` (client collaborators, default 1), `rounds` (default 1),
//!   `top_k` (server selection of the clients, default off), `mode` (`reference` default,
//!   `reference-critique`, `synthesis`, `critique`, `vote`, `auto`), and for the reference modes
//!   `refs` (references per query, default 1), `pool` (the server-side writers when none are
//!   declared: `seeds`, default — writer 1 greedy with the run's sampling, writers 2.. at
//!   temperature [`spec::AGENT_TEMPERATURE`] with seeds 1, 2, …; or `roles` — the four
//!   specialisations of [`crate::prompts::SPECIALISATIONS`], greedy, the top `refs` chosen by
//!   `select`), `select` (`keywords` default, `model`) and `drafts` (`on`: the client's draft is
//!   aggregated with the references; default `off`); for every mode, `refine` (`draft` or
//!   `guidance`; default: the mode's, [`GuidanceMode::default_refine`], named only when another
//!   is asked for);
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

use crate::colm::references::{ReferenceConfig, ReferenceStore, ReferenceWriter, Selector};
use crate::colm::{Collaborator, ColmConfig, ColmModel};
use crate::guidance::{DraftScreen, GuidanceMode};
use crate::horizontal::{spec, HorizontalSpec};
use crate::model::ChatModel;
use crate::prompts::{self, RefineContext};
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
    Colm(ColmSpec),
    /// A horizontal strategy: self-consistency, debate or mixture-of-agents.
    Horizontal(HorizontalSpec),
    /// The device–cloud router's confidence cascade.
    Cascade(CascadeSpec),
}

/// The options of a `colm` strategy; [`Default`] is plain `colm`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColmSpec {
    /// Collaborators (K ≥ 1): in `colm eval`, K collaborators on the `--client` models in
    /// turn; where each collaborator is given as a model of its own (`colm ask --client`,
    /// `colm serve --colm-client`), one per model, and K must be left at 1 or equal their
    /// number ([`ColmSpec::check_clients`]).
    pub k: usize,
    /// Rounds (R ≥ 1).
    pub rounds: u32,
    /// Top-k selection of the clients by the server, when set.
    pub top_k: Option<usize>,
    /// Guidance mode.
    pub mode: GuidanceMode,
    /// References per query and how their writers are selected.
    pub refs: ReferenceConfig,
    /// The server-side writers when none are declared.
    pub pool: WriterPool,
    /// The client's draft is aggregated with the references.
    pub drafts: bool,
    /// What the refinement prompt shows besides the guidance (the mode's default when `None`).
    pub refine: Option<RefineContext>,
    /// Which drafts the guidance model reads.
    pub screen: DraftScreen,
}

impl Default for ColmSpec {
    fn default() -> Self {
        let c = ColmConfig::default();
        Self {
            k: 1,
            rounds: c.rounds,
            top_k: c.top_k,
            mode: c.guidance_mode,
            refs: c.references,
            pool: WriterPool::default(),
            drafts: c.aggregate_drafts,
            refine: c.refine,
            screen: c.screen,
        }
    }
}

/// The options of a `cascade` strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeSpec {
    /// Threshold τ, nats (≤ 0); `None`: only agreement decides.
    pub tau: Option<f64>,
    /// Agreement of sampled drafts, when set.
    pub agreement: Option<AgreementConfig>,
    /// Where escalations go (`remote` or `colm`).
    pub to: Route,
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
}

impl StrategySpec {
    /// The strategy over `parts`, named `name` (as served); the one place a spec becomes a
    /// running [`Strategy`] (`colm ask`, `colm serve`'s virtual models, `colm eval`).
    ///
    /// # Errors
    /// `local` and `server` (a single model is served as itself); no client; a horizontal
    /// strategy that cannot be built ([`HorizontalSpec::build`]).
    pub fn build(&self, name: &str, parts: Parts<'_>) -> Result<Arc<dyn Strategy>, String> {
        let first = parts
            .clients
            .first()
            .ok_or_else(|| format!("{self} needs at least one client model"))?;
        Ok(match self {
            StrategySpec::Local | StrategySpec::Server => {
                return Err(format!(
                    "{self} is a single model: serve or call the model itself"
                ))
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
    pub fn parse(text: &str) -> Result<Self, String> {
        let (head, args) = text.split_once(':').unwrap_or((text, ""));
        match head {
            "local" | "server" if !args.is_empty() => {
                Err(format!("strategy `{head}` takes no options (got `{args}`)"))
            }
            "local" => Ok(StrategySpec::Local),
            "server" => Ok(StrategySpec::Server),
            "colm" => ColmSpec::parse_options(text, args).map(StrategySpec::Colm),
            "cascade" => CascadeSpec::parse_options(text, args).map(StrategySpec::Cascade),
            h if spec::NAMES.contains(&h) => HorizontalSpec::parse(text).map(Self::Horizontal),
            other => Err(format!(
                "unknown strategy `{other}` ({})",
                names().join(", ")
            )),
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
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StrategySpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<StrategySpec> for String {
    fn from(s: StrategySpec) -> Self {
        s.name()
    }
}

impl ColmSpec {
    /// Parses the `key=value,…` options of `colm` (`text` is the whole spec, for messages).
    ///
    /// # Errors
    /// A message naming the unknown key or bad value, a reference option given to a mode
    /// without references, or a refinement form the mode cannot use.
    pub fn parse_options(text: &str, args: &str) -> Result<Self, String> {
        let mut c = ColmSpec::default();
        let mut reference_keys = Vec::new();
        for (key, value) in spec::options(text, args)? {
            match key {
                "k" => c.k = spec::count(key, value)?,
                "rounds" => c.rounds = u32::try_from(spec::count(key, value)?).unwrap_or(u32::MAX),
                "top_k" => c.top_k = Some(spec::count(key, value)?),
                "mode" => c.mode = GuidanceMode::parse(value, None)?,
                "refs" => c.refs.k = spec::count(key, value)?,
                "pool" => c.pool = WriterPool::parse(value)?,
                "select" => c.refs.selector = Selector::parse(value)?,
                "drafts" => c.drafts = on_off(key, value)?,
                "refine" => c.refine = Some(RefineContext::parse(value)?),
                "screen" => c.screen = DraftScreen::parse(value)?,
                other => {
                    return Err(format!(
                        "unknown colm option `{other}` (k, rounds, top_k, mode, refs, pool, \
                         select, drafts, refine, screen)"
                    ))
                }
            }
            if ["refs", "pool", "select", "drafts"].contains(&key) {
                reference_keys.push(key);
            }
        }
        c.mode.check_refine(c.refine_context())?;
        if let Some(key) = reference_keys.first().filter(|_| !c.mode.uses_references()) {
            return Err(format!(
                "`{key}` applies to the reference modes, not to mode={}",
                c.mode.name()
            ));
        }
        Ok(c)
    }

    /// This spec with the given `key=value` options (the text form's keys; `None`: not given)
    /// applied over it, later ones winning, and checked as the text form is: how flags such as
    /// `colm ask --mode` override a `--strategy`.
    ///
    /// # Errors
    /// As [`ColmSpec::parse_options`].
    pub fn with_options(&self, extra: &[(&str, Option<String>)]) -> Result<Self, String> {
        let name = self.name();
        let mut args: Vec<String> = name
            .strip_prefix("colm:")
            .map(|a| vec![a.to_owned()])
            .unwrap_or_default();
        args.extend(
            extra
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))),
        );
        let args = args.join(",");
        Self::parse_options(&format!("colm:{args}"), &args)
    }

    /// The server-side reference writers: `declared` when there are any; else, for one
    /// reference from the default pool, none (the server model writes it itself, under its
    /// own name); else the spec's [`WriterPool`] on `server`.
    pub fn writers(
        &self,
        server: &Arc<dyn ChatModel>,
        declared: &[ReferenceWriter],
    ) -> Vec<ReferenceWriter> {
        if !declared.is_empty() {
            declared.to_vec()
        } else if self.refs.k == 1 && self.pool == WriterPool::default() {
            Vec::new()
        } else {
            self.pool.writers(server, self.refs.k)
        }
    }

    /// Checks `k` against `clients` collaborators given one per model (see [`ColmSpec::k`]).
    ///
    /// # Errors
    /// A message naming both numbers when `k` is neither 1 nor `clients`.
    pub fn check_clients(&self, clients: usize) -> Result<(), String> {
        if self.k == 1 || self.k == clients {
            Ok(())
        } else {
            Err(format!(
                "the strategy asks for k={} collaborators, but {clients} client model(s) are \
                 given: give one per collaborator",
                self.k
            ))
        }
    }

    /// The refinement form that runs: `refine`, or the mode's default.
    pub fn refine_context(&self) -> RefineContext {
        self.refine.unwrap_or_else(|| self.mode.default_refine())
    }

    /// The canonical text form (`colm`, then the options that differ from the defaults in the
    /// order k, rounds, top_k, mode, refs, pool, select, drafts, refine).
    pub fn name(&self) -> String {
        let d = ColmSpec::default();
        let mut opts = Vec::new();
        if self.k != d.k {
            opts.push(format!("k={}", self.k));
        }
        if self.rounds != d.rounds {
            opts.push(format!("rounds={}", self.rounds));
        }
        if let Some(t) = self.top_k {
            opts.push(format!("top_k={t}"));
        }
        if self.mode != d.mode {
            opts.push(format!("mode={}", self.mode.name()));
        }
        if self.refs.k != d.refs.k {
            opts.push(format!("refs={}", self.refs.k));
        }
        if self.pool != d.pool {
            opts.push(format!("pool={}", self.pool.name()));
        }
        if self.refs.selector != d.refs.selector {
            opts.push(format!("select={}", self.refs.selector.name()));
        }
        if self.drafts {
            opts.push("drafts=on".into());
        }
        if let Some(r) = self.refine.filter(|r| *r != self.mode.default_refine()) {
            opts.push(format!("refine={}", r.name()));
        }
        if self.screen != d.screen {
            opts.push(format!("screen={}", self.screen.name()));
        }
        if opts.is_empty() {
            "colm".into()
        } else {
            format!("colm:{}", opts.join(","))
        }
    }

    /// The collaboration settings of this spec over `base` (its sampling): rounds, top-k,
    /// mode, references, drafts and the refinement form (resolved, so a record names the form
    /// that ran).
    pub fn config(&self, base: ColmConfig) -> ColmConfig {
        ColmConfig {
            rounds: self.rounds,
            top_k: self.top_k,
            guidance_mode: self.mode,
            references: self.refs,
            aggregate_drafts: self.drafts,
            refine: Some(self.refine_context()),
            screen: self.screen,
            ..base
        }
    }
}

impl CascadeSpec {
    /// Parses the `key=value,…` options of `cascade` (`text` is the whole spec, for messages).
    ///
    /// # Errors
    /// A message naming the unknown key or bad value, or a cascade with neither `tau` nor
    /// `agree`.
    pub fn parse_options(text: &str, args: &str) -> Result<Self, String> {
        let (mut tau, mut to) = (None, Route::Remote);
        let (mut samples, mut share) = (None, None);
        for (key, value) in spec::options(text, args)? {
            match key {
                "tau" => {
                    tau = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|t| t.is_finite() && *t <= 0.0)
                            .ok_or_else(|| format!("`tau` must be a number ≤ 0, got `{value}`"))?,
                    )
                }
                "to" => to = Route::parse(value)?,
                "agree" => {
                    samples =
                        Some(value.parse::<usize>().map_err(|_| {
                            format!("`agree` is a number of samples, got `{value}`")
                        })?)
                }
                "share" => {
                    share = Some(
                        value
                            .parse::<f64>()
                            .map_err(|_| format!("`share` is a number in [0, 1], got `{value}`"))?,
                    )
                }
                other => {
                    return Err(format!(
                        "unknown cascade option `{other}` (tau, agree, share, to)"
                    ))
                }
            }
        }
        let agreement = match (samples, share) {
            (None, None) => None,
            (None, Some(_)) => return Err("`share` needs `agree`".into()),
            (Some(samples), share) => {
                let a = AgreementConfig {
                    samples,
                    min_share: share.unwrap_or(AgreementConfig::default().min_share),
                    ..AgreementConfig::default()
                };
                a.validate()?;
                Some(a)
            }
        };
        if tau.is_none() && agreement.is_none() {
            return Err("cascade needs `tau` or `agree`, e.g. cascade:tau=-0.3".into());
        }
        if to == Route::Local {
            return Err("cascade escalates to `remote` or `colm`, not `local`".into());
        }
        Ok(CascadeSpec { tau, agreement, to })
    }

    /// The canonical text form (`cascade:` then tau, agree, share, to).
    pub fn name(&self) -> String {
        let mut opts = Vec::new();
        if let Some(t) = self.tau {
            opts.push(format!("tau={t}"));
        }
        if let Some(a) = &self.agreement {
            opts.push(format!("agree={}", a.samples));
            if a.min_share != AgreementConfig::default().min_share {
                opts.push(format!("share={}", a.min_share));
            }
        }
        if self.to != Route::Remote {
            opts.push(format!("to={}", self.to.name()));
        }
        format!("cascade:{}", opts.join(","))
    }

    /// The router settings of this cascade over `base` (budgets, residency, refinement form).
    pub fn router_config(&self, base: RouterConfig) -> RouterConfig {
        RouterConfig {
            escalate_to: self.to,
            threshold: self.tau,
            agreement: self.agreement.clone(),
            ..base
        }
    }
}

/// The server-side reference writers of a `colm` strategy when none are declared, all on the
/// server model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriterPool {
    /// `refs` generalists: the first greedy with the run's sampling (the `server` strategy's
    /// request), the others at the agents' temperature ([`spec::AGENT_TEMPERATURE`]) with seeds
    /// 1, 2, ….
    #[default]
    Seeds,
    /// The four specialisations of [`prompts::SPECIALISATIONS`], with the run's sampling.
    Roles,
}

impl WriterPool {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "seeds" => Ok(WriterPool::Seeds),
            "roles" => Ok(WriterPool::Roles),
            other => Err(format!("unknown pool `{other}` (seeds, roles)")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            WriterPool::Seeds => "seeds",
            WriterPool::Roles => "roles",
        }
    }

    /// The writers on `server` for `refs` references.
    pub fn writers(self, server: &Arc<dyn ChatModel>, refs: usize) -> Vec<ReferenceWriter> {
        match self {
            WriterPool::Seeds => (0..refs)
                .map(|i| {
                    let mut w = ReferenceWriter::generalist(server.clone());
                    w.id = format!("server-{}", i + 1);
                    if i > 0 {
                        w.temperature = Some(spec::AGENT_TEMPERATURE);
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

fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        other => Err(format!("`{key}` is on or off, got `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "colm:rounds=2,refs=3,pool=roles,select=model,drafts=on"
        );
        assert_eq!(name("colm:mode=critique,k=1"), "colm:mode=critique");
        assert_eq!(
            name("colm:mode=vote,top_k=2,k=3,rounds=2"),
            "colm:k=3,rounds=2,top_k=2,mode=vote"
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

    #[test]
    fn a_colm_spec_resolves_its_refinement_form_in_the_config() {
        let StrategySpec::Colm(c) = StrategySpec::parse("colm:mode=critique,rounds=2").unwrap()
        else {
            panic!("not colm")
        };
        let config = c.config(ColmConfig::default());
        assert_eq!(config.rounds, 2);
        assert_eq!(config.guidance_mode, GuidanceMode::Critique);
        assert_eq!(config.refine, Some(GuidanceMode::Critique.default_refine()));
    }

    #[test]
    fn k_matches_the_clients_given_one_per_model() {
        let three = ColmSpec::default()
            .with_options(&[("k", Some("3".into()))])
            .unwrap();
        assert!(three.check_clients(3).is_ok());
        let e = three.check_clients(2).unwrap_err();
        assert!(e.contains("k=3") && e.contains('2'), "{e}");
        assert!(ColmSpec::default().check_clients(2).is_ok());
    }

    #[test]
    fn options_override_a_spec_and_are_checked_like_the_text_form() {
        let StrategySpec::Colm(c) = StrategySpec::parse("colm:refs=3,rounds=2").unwrap() else {
            panic!("not colm")
        };
        let o = c
            .with_options(&[
                ("rounds", Some("1".into())),
                ("select", Some("model".into())),
            ])
            .unwrap();
        assert_eq!(o.name(), "colm:refs=3,select=model");
        assert!(c
            .with_options(&[("mode", Some("synthesis".into()))])
            .is_err());
        assert_eq!(
            ColmSpec::default()
                .with_options(&[("mode", Some("critique".into()))])
                .unwrap()
                .name(),
            "colm:mode=critique"
        );
    }
}
