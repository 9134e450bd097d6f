use clap::{Parser, Subcommand};

/// PlanOps: demand-planning coordination for Odoo, run as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "planops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Odoo simulator (JSON-RPC, XML-RPC and JSON-2) with a seeded data set.
    OdooSim(planops::sim::SimArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::OdooSim(args) => planops::sim::run(args).await,
    }
}
