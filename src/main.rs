use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// PlanOps: demand-planning coordination for Odoo, run as Kubernetes resources.
#[derive(Debug, Parser)]
#[command(name = "planops", version = planops::VERSION, about)]
struct Cli {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        env = "PLANOPS_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(flatten)]
    outbound: planops::cli::outbound::OutboundArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator: reconcile PlanOps resources in the cluster.
    Operator(planops::controllers::OperatorArgs),
    /// Run the webhook gateway alone (its own Deployment): check inbound events and pass them to the operator's leader.
    Gateway(planops::controllers::edge::EdgeArgs),
    /// Write the CustomResourceDefinitions generated from the Rust types.
    Crdgen(planops::cli::crdgen::CrdgenArgs),
    #[cfg(feature = "simulator")]
    /// Run the Odoo simulator (JSON-RPC, XML-RPC and JSON-2) with a seeded data set.
    OdooSim(planops::sim::SimArgs),
    #[cfg(feature = "simulator")]
    /// Run the example rules against the built-in Odoo simulator and show what they find.
    Demo(planops::cli::demo::DemoArgs),
    /// Run one ExceptionRule scan against an Odoo database.
    Scan(planops::cli::scan::ScanArgs),
    /// Check PlanOps manifests offline (schema, CEL rules, semantic checks, references).
    Validate(planops::cli::validate::ValidateArgs),
    /// Show what applying manifests would change: schedules, owned records, actions; --evaluate scans in DryRun.
    Plan(planops::cli::plan::PlanArgs),
    /// Print an ApprovalPolicy's decision history with cycle times, read from Odoo (`namespace/policy`).
    Audit(planops::cli::audit::AuditArgs),
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube_lease_manager=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    cli.outbound.install();
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {}", planops::errors::chain(error.as_ref()));
            planops::cli::exit_code(&error)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Operator(args) => planops::controllers::run(args).await,
        Command::Gateway(args) => planops::controllers::edge::run(args).await,
        Command::Crdgen(args) => planops::cli::crdgen::run(args),
        #[cfg(feature = "simulator")]
        Command::OdooSim(args) => planops::sim::run(args).await,
        #[cfg(feature = "simulator")]
        Command::Demo(args) => planops::cli::demo::run(args).await,
        Command::Scan(args) => planops::cli::scan::run(args).await,
        Command::Validate(args) => planops::cli::validate::run(args),
        Command::Plan(args) => planops::cli::plan::run(args).await,
        Command::Audit(args) => planops::cli::audit::run(args).await,
    }
}
