//! A faithful simulator of Odoo's external API (JSON-RPC, XML-RPC, JSON-2).
//!
//! `db` and the ORM modules hold the in-memory database; `server` and `rpc`
//! put it on the wire; `faults`, `stats` and `webhooks` are the test harness
//! around it. `planops odoo-sim` runs it as a process.

pub mod db;
pub mod faults;
pub mod rpc;
pub mod server;
pub mod stats;
pub mod webhooks;

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::{Map, Value, json};

pub use db::{Database, DatasetParams, Edition, OdooVersion, SimConfig};
pub use faults::{FaultConfig, FaultStatus};
pub use server::{SimError, SimOptions, SimServer};
pub use stats::StatsSnapshot;
pub use webhooks::DeliveryLogSnapshot;

/// Command-line arguments of `planops odoo-sim`.
#[derive(Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8069")]
    pub listen: SocketAddr,
    /// Seed of the generated data set.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Name of the simulated database.
    #[arg(long, default_value = "planops")]
    pub database: String,
    /// Odoo major version to imitate: 16, 17, 18 or 19.
    #[arg(long, default_value = "17", value_parser = parse_version)]
    pub odoo_version: OdooVersion,
    /// community or enterprise (enterprise adds the Approvals app).
    #[arg(long, default_value = "community", value_parser = parse_edition)]
    pub edition: Edition,
    /// Password of the `admin` user.
    #[arg(
        long,
        env = "PLANOPS_SIM_ADMIN_PASSWORD",
        default_value = "admin",
        hide_env_values = true
    )]
    pub admin_password: String,
    /// Number of products in the data set.
    #[arg(long)]
    pub products: Option<usize>,
    /// Number of warehouses.
    #[arg(long)]
    pub warehouses: Option<usize>,
    /// Days of sales history.
    #[arg(long)]
    pub history_days: Option<u32>,
    /// Number of suppliers.
    #[arg(long)]
    pub suppliers: Option<usize>,
    /// Number of customers.
    #[arg(long)]
    pub customers: Option<usize>,
    /// Number of confirmed sale orders still to deliver.
    #[arg(long)]
    pub open_sale_orders: Option<usize>,
    /// Number of confirmed purchase orders still to receive (some late).
    #[arg(long)]
    pub open_purchase_orders: Option<usize>,
    /// The simulated "today" (YYYY-MM-DD); defaults to the real date.
    #[arg(long)]
    pub today: Option<jiff::civil::Date>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 503 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of ORM calls failing with a serialization failure (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub serialization_failure_rate: f64,
    /// Share of ORM calls executed whose reply is then dropped (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub drop_reply_rate: f64,
    /// Seed of the fault generator.
    #[arg(long)]
    pub fault_seed: Option<u64>,
    /// Bearer token of the /planops-sim/ admin endpoints (random when omitted).
    #[arg(long, env = "PLANOPS_SIM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for SimArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimArgs")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .field("database", &self.database)
            .field("odoo_version", &self.odoo_version)
            .field("edition", &self.edition)
            .field("admin_password", &"<redacted>")
            .field("products", &self.products)
            .field("warehouses", &self.warehouses)
            .field("history_days", &self.history_days)
            .field("suppliers", &self.suppliers)
            .field("customers", &self.customers)
            .field("open_sale_orders", &self.open_sale_orders)
            .field("open_purchase_orders", &self.open_purchase_orders)
            .field("today", &self.today)
            .field("faults", &self.fault_config())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn parse_version(text: &str) -> Result<OdooVersion, String> {
    OdooVersion::parse(text).map_err(|error| error.to_string())
}

fn parse_edition(text: &str) -> Result<Edition, String> {
    match text.to_ascii_lowercase().as_str() {
        "community" | "ce" => Ok(Edition::Community),
        "enterprise" | "ee" => Ok(Edition::Enterprise),
        other => Err(format!(
            "unknown edition {other:?} (expected community or enterprise)"
        )),
    }
}

impl SimArgs {
    fn sim_config(&self) -> SimConfig {
        let mut dataset = DatasetParams {
            seed: self.seed,
            ..DatasetParams::default()
        };
        if let Some(products) = self.products {
            dataset.products = products;
        }
        if let Some(warehouses) = self.warehouses {
            dataset.warehouses = warehouses;
        }
        if let Some(days) = self.history_days {
            dataset.history_days = days;
        }
        if let Some(suppliers) = self.suppliers {
            dataset.suppliers = suppliers;
        }
        if let Some(customers) = self.customers {
            dataset.customers = customers;
        }
        if let Some(orders) = self.open_sale_orders {
            dataset.open_sale_orders = orders;
        }
        if let Some(orders) = self.open_purchase_orders {
            dataset.open_purchase_orders = orders;
        }
        SimConfig {
            database: self.database.clone(),
            version: self.odoo_version,
            edition: self.edition,
            admin_password: self.admin_password.clone(),
            dataset,
            today: self.today.unwrap_or_else(|| jiff::Zoned::now().date()),
        }
    }

    fn fault_config(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency_ms,
            error_rate: self.error_rate,
            serialization_failure_rate: self.serialization_failure_rate,
            drop_reply_rate: self.drop_reply_rate,
            seed: self.fault_seed,
            ..FaultConfig::default()
        }
    }
}

/// Runs the simulator until SIGINT or SIGTERM.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let faults = args.fault_config();
    faults.validate().context("invalid fault flags")?;
    let options = SimOptions {
        admin_token: args.admin_token.clone(),
        faults,
    };
    let config = args.sim_config();
    let dataset = &config.dataset;
    tracing::info!(
        seed = dataset.seed,
        products = dataset.products,
        warehouses = dataset.warehouses,
        history_days = dataset.history_days,
        suppliers = dataset.suppliers,
        customers = dataset.customers,
        open_sale_orders = dataset.open_sale_orders,
        open_purchase_orders = dataset.open_purchase_orders,
        today = %config.today,
        "generating the simulator data set"
    );
    let started = std::time::Instant::now();
    let server = SimServer::start_with(config, args.listen, options)
        .await
        .context("starting the Odoo simulator")?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "simulator ready"
    );
    print_banner(&server, &args);
    wait_for_signal().await?;
    tracing::info!("stopping the Odoo simulator");
    server.shutdown().await;
    Ok(())
}

/// What a developer needs to connect, on stdout (the process is a local dev tool).
fn print_banner(server: &SimServer, args: &SimArgs) {
    let version = server.db.version();
    let edition = match server.db.edition() {
        Edition::Community => "community",
        Edition::Enterprise => "enterprise",
    };
    let logins = user_logins(&server.db);
    let shape = server.db.dataset_shape();
    let banner = json!({
        "url": server.url,
        "database": server.db.name(),
        "version": version.server_version(),
        "edition": edition,
        "logins": logins,
        "admin_login": "admin",
        "admin_api_key": server.db.admin_api_key(),
        "admin_token": server.admin_token,
        "seed": args.seed,
        "dataset": shape,
    });
    println!("Odoo simulator listening on {}", server.url);
    println!("  database   {}", server.db.name());
    println!("  version    {} ({edition})", version.server_version());
    println!("  logins     {}", logins.join(", "));
    println!("  admin key  {}", server.db.admin_api_key());
    println!("  admin token {}", server.admin_token);
    println!("  data set   {shape}");
    // One machine-readable line for scripts and test fixtures.
    println!("PLANOPS_SIM_READY {banner}");
}

fn user_logins(db: &Database) -> Vec<String> {
    let mut kwargs = Map::new();
    kwargs.insert("fields".into(), json!(["login"]));
    db.execute_kw(1, "res.users", "search_read", vec![json!([])], kwargs)
        .ok()
        .and_then(|rows| match rows {
            Value::Array(rows) => Some(
                rows.iter()
                    .filter_map(|row| row.get("login")?.as_str().map(str::to_string))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .filter(|logins| !logins.is_empty())
        .unwrap_or_else(|| vec!["admin".to_string()])
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn flags_build_config_and_faults() {
        let cli = Cli::try_parse_from([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--odoo-version",
            "19",
            "--edition",
            "enterprise",
            "--products",
            "12",
            "--warehouses",
            "4",
            "--history-days",
            "90",
            "--customers",
            "5",
            "--open-sale-orders",
            "3",
            "--open-purchase-orders",
            "2",
            "--today",
            "2025-03-01",
            "--error-rate",
            "0.25",
            "--latency-ms",
            "30",
        ])
        .unwrap();
        let config = cli.sim.sim_config();
        assert_eq!(config.version, OdooVersion::V19);
        assert_eq!(config.edition, Edition::Enterprise);
        assert_eq!(config.dataset.products, 12);
        assert_eq!(config.dataset.warehouses, 4);
        assert_eq!(config.dataset.history_days, 90);
        assert_eq!(config.dataset.customers, 5);
        assert_eq!(config.dataset.open_sale_orders, 3);
        assert_eq!(config.dataset.open_purchase_orders, 2);
        assert_eq!(config.today, jiff::civil::date(2025, 3, 1));
        let faults = cli.sim.fault_config();
        assert_eq!(faults.error_rate, 0.25);
        assert_eq!(faults.latency_ms, 30);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let cli = Cli::try_parse_from([
            "sim",
            "--admin-password",
            "hunter2",
            "--admin-token",
            "tok-123",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.sim);
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-123"),
            "{shown}"
        );
        let options = SimOptions {
            admin_token: Some("tok-123".into()),
            ..SimOptions::default()
        };
        assert!(!format!("{options:?}").contains("tok-123"));
    }

    #[test]
    fn bad_version_is_refused() {
        assert!(Cli::try_parse_from(["sim", "--odoo-version", "15"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--edition", "pro"]).is_err());
    }
}
