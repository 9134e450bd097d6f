//! `--allow-outbound` and `--service-cidr`: where the poll and notify requests
//! of this process may go (see [`crate::outbound`]). Global flags, because the
//! operator, `planops scan` (the CronJobs of `execution: CronJob`) and
//! `planops validate` (which judges literal addresses) must agree.

use crate::outbound::{self, Cidr, OutboundPolicy};

/// The outbound flags every subcommand accepts.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutboundArgs {
    /// Networks poll and notify requests may reach although they are
    /// loopback, link-local, unspecified or in --service-cidr
    /// (comma-separated CIDRs or addresses, e.g. 127.0.0.0/8 for a local
    /// test server). Default: none.
    #[arg(
        long,
        global = true,
        env = outbound::ALLOW_ENV,
        value_delimiter = ',',
        value_parser = cidr_or_empty
    )]
    pub allow_outbound: Vec<Option<Cidr>>,
    /// The cluster's Service (and Pod) networks, refused as poll and notify
    /// destinations like loopback (comma-separated CIDRs). Default: none;
    /// the Helm chart sets outbound.serviceCIDRs.
    #[arg(
        long,
        global = true,
        env = outbound::SERVICE_CIDR_ENV,
        value_delimiter = ',',
        value_parser = cidr_or_empty
    )]
    pub service_cidr: Vec<Option<Cidr>>,
}

/// An empty entry means none: the chart sets the variables even when its
/// lists are empty.
fn cidr_or_empty(text: &str) -> Result<Option<Cidr>, outbound::CidrError> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        text.parse().map(Some)
    }
}

impl OutboundArgs {
    pub fn policy(&self) -> OutboundPolicy {
        OutboundPolicy {
            service_cidrs: self.service_cidr.iter().flatten().copied().collect(),
            allow: self.allow_outbound.iter().flatten().copied().collect(),
        }
    }

    /// Makes these flags the policy of the whole process.
    pub fn install(&self) {
        if outbound::install(self.policy()).is_err() {
            tracing::warn!(
                "the outbound policy was already set; --allow-outbound and --service-cidr are ignored"
            );
        }
    }
}
