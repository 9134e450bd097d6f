//! A faithful simulator of Odoo's external API (JSON-RPC, XML-RPC, JSON-2).

/// Command-line arguments of `planops odoo-sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {}

/// Runs the simulator until interrupted.
pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the Odoo simulator is not built yet")
}
