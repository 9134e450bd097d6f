//! One run of an `ExceptionRule`: scan, act on the findings, put the draft RFQs
//! that a policy governs under approval. The operator's scheduler, its event path
//! and `planops scan` (the command of `execution: CronJob`) all run a rule through
//! [`RuleRun::execute`], so no execution can skip a step the others take.

use jiff::civil::Date;
use odoo_client::OdooClient;
use planops_api::rule::ExceptionRuleSpec;
use planops_engine::RuleRef;

use crate::actions::{self, Acted, ActionContext, RunError, StaticSecrets};
use crate::approval::gate::{self, GateReport, PolicySource};
use crate::scan::{ScanMemory, ScanOptions};

/// Everything one run of a rule reads, besides Odoo itself.
pub struct RuleRun<'a> {
    pub client: &'a OdooClient,
    pub rule: RuleRef<'a>,
    pub spec: &'a ExceptionRuleSpec,
    /// The planning day, in the rule's time zone.
    pub today: Date,
    /// What the previous run remembered (last planned dates of purchase lines).
    pub memory: &'a ScanMemory,
    /// Signing secrets of the rule's notify actions.
    pub secrets: &'a StaticSecrets,
    pub options: ScanOptions<'a>,
    /// The policies that may govern the drafts this run writes.
    pub policies: &'a dyn PolicySource,
}

/// A finished run: the scan, its actions, and the approval gate over its drafts.
#[derive(Debug)]
pub struct FinishedRun {
    pub acted: Acted,
    /// A gate failure leaves the drafts as drafts and fails nothing else; the next
    /// run retries it.
    pub gate: GateReport,
}

impl RuleRun<'_> {
    /// Scans, acts and gates. Fails when the scan or its actions fail; a gate
    /// failure is reported in [`FinishedRun::gate`].
    pub async fn execute(&self) -> Result<FinishedRun, RunError> {
        let ctx = ActionContext {
            rule: self.rule.clone(),
            spec: self.spec,
            today: self.today,
            secrets: self.secrets,
        };
        let acted = actions::scan_and_act(self.client, &ctx, self.memory, self.options).await?;
        let gate =
            gate::gate_drafts(self.client, &self.rule, self.spec, &acted, self.policies).await;
        Ok(FinishedRun { acted, gate })
    }
}
