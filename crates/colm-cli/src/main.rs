//! `colm`: the command-line entry point (models, ask, serve, client, eval).

mod ask;
mod client;
mod config;
mod eval;
mod live;
mod load;
mod models;
mod print;
mod registry;
mod renamed;
mod route;
mod router;
mod serve;

use clap::{CommandFactory, Parser, Subcommand};

/// Many small models on devices collaborating with a few strong models on servers (CoLM).
#[derive(Parser)]
#[command(name = "colm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `colm_engine=debug`; llama.cpp
    /// logs under the target `llama-cpp-2`.
    #[arg(
        long,
        global = true,
        env = "COLM_LOG",
        default_value = "warn,llama-cpp-2=error"
    )]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// List or fetch models of the built-in catalog.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Run one CoLM collaboration on a query: drafts, guidance, refinements.
    Ask(Box<ask::AskArgs>),
    /// Host models behind an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`).
    Serve(Box<serve::ServeArgs>),
    /// Device runtime: local model + guidance from a colm server, behind a local
    /// OpenAI-compatible endpoint; falls back to the local draft when the server fails.
    Client(Box<client::ClientArgs>),
    /// Benchmarks: run a suite with several strategies (resumable), or report a run.
    Eval {
        #[command(subcommand)]
        command: eval::EvalCommand,
    },
    /// Routing policies learned from `colm eval` runs: train, and report the accuracy–cost
    /// curve on held-back items.
    Router {
        #[command(subcommand)]
        command: router::RouterCommand,
    },
}

fn main() -> anyhow::Result<()> {
    // `--config FILE` of serve and client: the file's settings as flags (config.rs).
    let args = config::expand(&Cli::command(), std::env::args_os().collect())?;
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Models { command } => models::run(command).await,
            Command::Ask(args) => ask::run(*args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Client(args) => client::run(*args).await,
            Command::Eval { command } => eval::run(command).await,
            Command::Router { command } => router::run(command).await,
        }
    })
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every command's flags (duplicate names, bad defaults); they run
    /// only in debug builds, so a release binary would not catch them.
    #[test]
    fn every_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
