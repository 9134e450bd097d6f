//! `odoo-sim`: the Odoo simulator on its own, for tests and local development.
//! `planops odoo-sim` runs the same server from the operator's binary.

use clap::Parser;

/// An Odoo simulator speaking JSON-RPC, XML-RPC and JSON-2 over a seeded data set.
#[derive(Parser)]
#[command(name = "odoo-sim", version, about)]
struct Cli {
    #[command(flatten)]
    sim: odoo_sim::SimArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    odoo_sim::run(Cli::parse().sim).await
}
