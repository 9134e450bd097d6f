//! ApprovalPolicy reconciler.

use std::sync::Arc;
use std::time::Duration;

use super::driver::{DEFAULT_RESYNC, Reconciler, settle};
use super::validate::{FieldError, check_domain};
use super::{Context, Error};
use crate::api::ApprovalPolicy;
use crate::api::approval::ApprovalPolicyStatus;
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};

impl Reconciler for ApprovalPolicy {
    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(m) = &self.spec.match_ {
            check_domain(
                &mut errors,
                "spec.match.productDomain",
                m.product_domain.as_deref(),
            );
            check_domain(
                &mut errors,
                "spec.match.partnerDomain",
                m.partner_domain.as_deref(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, level) in self.spec.levels.iter().enumerate() {
            if !names.insert(level.name.as_str()) {
                errors.push(FieldError::new(
                    format!("spec.levels[{i}].name"),
                    format!("{:?} is used by an earlier level", level.name),
                ));
            }
            let approvers = level.users.len() + level.groups.len();
            let needed = level.min_approvals.unwrap_or(1) as usize;
            if level.groups.is_empty() && needed > approvers {
                errors.push(FieldError::new(
                    format!("spec.levels[{i}].minApprovals"),
                    format!("needs {needed} approvals but the level names {approvers} users"),
                ));
            }
            for (j, user) in level.users.iter().enumerate() {
                if user.trim().is_empty() {
                    errors.push(FieldError::new(
                        format!("spec.levels[{i}].users[{j}]"),
                        "is empty",
                    ));
                }
            }
        }
        errors
    }

    async fn evaluate(
        _obj: Arc<Self>,
        _ctx: Arc<Context>,
        conditions: &mut ConditionSet,
        _status: &mut ApprovalPolicyStatus,
    ) -> Result<Duration, Error> {
        settle(
            conditions,
            ConditionStatus::True,
            reasons::RECONCILED,
            "spec valid and dependencies ready",
        );
        conditions.set(
            ct::SYNCED,
            ConditionStatus::False,
            reasons::NOT_ACTIVE,
            "approval routing is not active in this build",
        );
        Ok(DEFAULT_RESYNC)
    }
}
