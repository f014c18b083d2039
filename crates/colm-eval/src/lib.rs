//! colm-eval: the benchmark harness of colm (DESIGN.md §3, "eval").
//!
//! - [`suite`]: loaders for GSM8K, ARC-Challenge, MMLU, HumanEval and MT-Bench as published,
//!   their prompts and scoring;
//! - [`strategy`]: what answers an item — `local` (client alone), `server` (server model
//!   alone), `colm` (CoLM with K collaborators, R rounds, top-k, guidance mode) — through the
//!   same code as `colm ask` and the server's virtual model;
//! - [`cache`]: greedy model calls answered once per run and replayed for other strategies
//!   ([`replay`]: what was replayed for one item);
//! - [`runner`]: the resumable runner (one JSON line per item and strategy, full transcript);
//! - [`metrics`]: accuracy with Wilson intervals, recovery and regressions against `local`,
//!   tokens by role, server calls, latency percentiles;
//! - [`anatomy`]: CoLM's draft, guidance and final answer scored apart;
//! - [`report`]: Markdown, JSON and PNG plots of a run;
//! - [`adversary`]: a poisoned collaborator for robustness runs;
//! - [`learned`]: a routing policy learned from a run's logged outcomes, and its
//!   accuracy–cost curve.

pub mod adversary;
pub mod agreement;
pub mod anatomy;
pub mod cache;
pub mod learned;
pub mod metrics;
pub mod replay;
pub mod report;
pub mod runner;
pub mod strategy;
pub mod suite;
