//! Which `ApprovalPolicy` governs an action, and why, with no I/O.
//!
//! Domains are not evaluated here: the simulator and Odoo are the only faithful
//! evaluators of Odoo domains (related paths, `child_of`, company rules), so the
//! caller asks Odoo once per domain whether the action's product or partner is
//! in it (`planops_sync::approval::odoo_io::domain_membership`) and passes the answer in.

use std::cmp::Ordering;
use std::fmt::Write as _;

use planops_api::approval::{ApprovalPolicySpec, GovernedAction};

/// The action waiting for a policy, in the company currency.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernedRequest {
    pub kind: GovernedAction,
    /// Amount in the company currency.
    pub amount: f64,
    /// ISO 4217 code of the company currency.
    pub currency: String,
    pub product_id: Option<i64>,
    pub partner_id: Option<i64>,
}

/// What Odoo said about the policy's domains for this action. `None` means the
/// domain was not evaluated (the action has no product/partner, or the policy
/// has no such domain).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainMembership {
    pub product: Option<bool>,
    pub partner: Option<bool>,
}

/// One policy of the namespace as the matcher sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub name: &'a str,
    pub spec: &'a ApprovalPolicySpec,
    pub membership: DomainMembership,
}

/// The governing policy and the explanation written into the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub policy: String,
    /// "policy X: amount … ≥ …; beats Y because …", for the request's reason and the audit log.
    pub explanation: String,
    /// Every candidate with the reason it matched or not, for `planops audit`.
    pub considered: Vec<(String, Verdict)>,
}

/// How a candidate fared.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Matches {
        reasons: Vec<String>,
        specificity: Specificity,
    },
    Skipped(String),
}

/// How narrowly a policy targets actions. Ordered so that the most specific
/// policy compares greatest: more constraints set, then the higher minimum
/// amount (the stricter gate for big spends). Names break the remaining ties
/// (alphabetically first wins) so that the choice never depends on list order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Specificity {
    /// How many of minAmount, maxAmount, productDomain, partnerDomain are set.
    pub constraints: u8,
    pub min_amount: f64,
}

impl Specificity {
    fn cmp(&self, other: &Specificity) -> Ordering {
        self.constraints
            .cmp(&other.constraints)
            .then(self.min_amount.total_cmp(&other.min_amount))
    }
}

/// Formats money with a space every three digits ("12 400", "12 400.50"), as
/// planners read it in notes.
pub fn format_amount(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i128;
    let (sign, cents) = if cents < 0 {
        ("-", -cents)
    } else {
        ("", cents)
    };
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    match cents % 100 {
        0 => format!("{sign}{grouped}"),
        frac => format!("{sign}{grouped}.{frac:02}"),
    }
}

fn kind_label(kind: GovernedAction) -> &'static str {
    match kind {
        GovernedAction::EmergencyPurchase => "emergency purchase",
        GovernedAction::ForecastOverride => "forecast override",
        GovernedAction::AllocationChange => "allocation change",
        GovernedAction::SafetyStockException => "safety-stock exception",
    }
}

/// Whether `candidate` governs `request`, with the reasons either way.
pub fn judge(request: &GovernedRequest, candidate: &Candidate<'_>) -> Verdict {
    let spec = candidate.spec;
    if spec.suspend == Some(true) {
        return Verdict::Skipped("suspended".into());
    }
    if spec.governs != request.kind {
        return Verdict::Skipped(format!(
            "governs {}, not {}",
            kind_label(spec.governs),
            kind_label(request.kind)
        ));
    }
    let m = spec.match_.clone().unwrap_or_default();
    let mut reasons = Vec::new();
    let mut constraints = 0u8;
    let amount = format_amount(request.amount);
    if let Some(currency) = &m.currency
        && currency != &request.currency
    {
        // Amounts are not converted: a policy written in another currency than
        // the company's would gate at a threshold nobody chose.
        return Verdict::Skipped(format!(
            "thresholds in {currency}, the company currency is {}",
            request.currency
        ));
    }
    if let Some(min) = m.min_amount {
        constraints += 1;
        if request.amount < min {
            return Verdict::Skipped(format!(
                "amount {amount} < minAmount {}",
                format_amount(min)
            ));
        }
        reasons.push(format!("amount {amount} ≥ {}", format_amount(min)));
    }
    if let Some(max) = m.max_amount {
        constraints += 1;
        if request.amount > max {
            return Verdict::Skipped(format!(
                "amount {amount} > maxAmount {}",
                format_amount(max)
            ));
        }
        reasons.push(format!("amount {amount} ≤ {}", format_amount(max)));
    }
    for (label, domain, member, id) in [
        (
            "product",
            &m.product_domain,
            candidate.membership.product,
            request.product_id,
        ),
        (
            "partner",
            &m.partner_domain,
            candidate.membership.partner,
            request.partner_id,
        ),
    ] {
        let Some(domain) = domain else { continue };
        constraints += 1;
        match (id, member) {
            (None, _) => {
                return Verdict::Skipped(format!(
                    "has a {label} domain, the action has no {label}"
                ));
            }
            (Some(_), None) => {
                return Verdict::Skipped(format!("{label} domain not evaluated"));
            }
            (Some(id), Some(false)) => {
                return Verdict::Skipped(format!("{label} {id} not in {domain}"));
            }
            (Some(id), Some(true)) => reasons.push(format!("{label} {id} in {domain}")),
        }
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "every {} (no match constraints)",
            kind_label(request.kind)
        ));
    }
    Verdict::Matches {
        reasons,
        specificity: Specificity {
            constraints,
            min_amount: m.min_amount.unwrap_or(0.0),
        },
    }
}

/// Picks the governing policy. `None`: no policy governs the action, which may
/// then proceed without approval.
pub fn select(request: &GovernedRequest, candidates: &[Candidate<'_>]) -> Option<Selection> {
    let considered: Vec<(String, Verdict)> = candidates
        .iter()
        .map(|c| (c.name.to_string(), judge(request, c)))
        .collect();
    let mut matching: Vec<(&str, &Vec<String>, Specificity)> = considered
        .iter()
        .filter_map(|(name, v)| match v {
            Verdict::Matches {
                reasons,
                specificity,
            } => Some((name.as_str(), reasons, *specificity)),
            Verdict::Skipped(_) => None,
        })
        .collect();
    matching.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
    let (winner, reasons, best) = *matching.first()?;
    let mut explanation = format!(
        "policy {winner} governs this {} of {} {}: {}",
        kind_label(request.kind),
        format_amount(request.amount),
        request.currency,
        reasons.join(", ")
    );
    for (other, _, spec) in matching.iter().skip(1) {
        let why = match best.cmp(spec) {
            Ordering::Greater if best.constraints > spec.constraints => format!(
                "{} match constraints vs {}",
                best.constraints, spec.constraints
            ),
            Ordering::Greater => format!(
                "same number of constraints, higher minAmount {} vs {}",
                format_amount(best.min_amount),
                format_amount(spec.min_amount)
            ),
            _ => "equally specific; the name sorts first".to_string(),
        };
        let _ = write!(explanation, "; beats {other} ({why})");
    }
    let skipped: Vec<String> = considered
        .iter()
        .filter_map(|(n, v)| match v {
            Verdict::Skipped(r) if !r.starts_with("governs ") => Some(format!("{n}: {r}")),
            _ => None,
        })
        .collect();
    if !skipped.is_empty() {
        let _ = write!(explanation, "; not applicable: {}", skipped.join("; "));
    }
    Some(Selection {
        policy: winner.to_string(),
        explanation,
        considered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use planops_api::approval::{ApprovalBackend, ApprovalLevel, ApprovalMatch};
    use planops_api::common::LocalObjectRef;

    fn spec(kind: GovernedAction, m: Option<ApprovalMatch>) -> ApprovalPolicySpec {
        ApprovalPolicySpec {
            connection_ref: LocalObjectRef {
                name: "odoo".into(),
            },
            governs: kind,
            match_: m,
            backend: ApprovalBackend::Auto,
            approval_category: None,
            levels: vec![ApprovalLevel {
                name: "l1".into(),
                users: vec!["buyer.bob".into()],
                groups: vec![],
                min_approvals: None,
                sla_hours: None,
            }],
            segregation_of_duties: None,
            on_approval: None,
            on_rejection: None,
            poll_interval_seconds: None,
            suspend: None,
            deletion_policy: None,
        }
    }

    fn request(amount: f64) -> GovernedRequest {
        GovernedRequest {
            kind: GovernedAction::EmergencyPurchase,
            amount,
            currency: "EUR".into(),
            product_id: Some(7),
            partner_id: Some(9),
        }
    }

    fn min(amount: f64) -> Option<ApprovalMatch> {
        Some(ApprovalMatch {
            min_amount: Some(amount),
            ..ApprovalMatch::default()
        })
    }

    fn cand<'a>(name: &'a str, spec: &'a ApprovalPolicySpec) -> Candidate<'a> {
        Candidate {
            name,
            spec,
            membership: DomainMembership::default(),
        }
    }

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(format_amount(12_400.0), "12 400");
        assert_eq!(format_amount(1_234_567.5), "1 234 567.50");
        assert_eq!(format_amount(999.0), "999");
        assert_eq!(format_amount(-1000.0), "-1 000");
    }

    #[test]
    fn threshold_decides_and_the_higher_minimum_wins() {
        let small = spec(GovernedAction::EmergencyPurchase, min(1_000.0));
        let big = spec(GovernedAction::EmergencyPurchase, min(10_000.0));
        let other_kind = spec(GovernedAction::ForecastOverride, None);
        let c = [
            cand("small", &small),
            cand("big", &big),
            cand("forecast", &other_kind),
        ];
        let s = select(&request(12_400.0), &c).unwrap();
        assert_eq!(s.policy, "big");
        assert!(
            s.explanation.contains("amount 12 400 ≥ 10 000"),
            "{}",
            s.explanation
        );
        assert!(
            s.explanation.contains(
                "beats small (same number of constraints, higher minAmount 10 000 vs 1 000)"
            ),
            "{}",
            s.explanation
        );
        assert_eq!(select(&request(5_000.0), &c).unwrap().policy, "small");
        assert!(select(&request(500.0), &c).is_none());
    }

    #[test]
    fn more_constraints_beat_a_higher_threshold() {
        let big = spec(GovernedAction::EmergencyPurchase, min(10_000.0));
        let scoped = spec(
            GovernedAction::EmergencyPurchase,
            Some(ApprovalMatch {
                min_amount: Some(1_000.0),
                product_domain: Some("[('categ_id.name','=','Critical')]".into()),
                ..ApprovalMatch::default()
            }),
        );
        let mut in_domain = cand("scoped", &scoped);
        in_domain.membership.product = Some(true);
        let s = select(&request(12_400.0), &[cand("big", &big), in_domain.clone()]).unwrap();
        assert_eq!(s.policy, "scoped");
        assert!(
            s.explanation
                .contains("product 7 in [('categ_id.name','=','Critical')]")
        );
        assert!(
            s.explanation
                .contains("beats big (2 match constraints vs 1)")
        );
        // Out of the domain, or not evaluated: the scoped policy does not apply.
        in_domain.membership.product = Some(false);
        assert_eq!(
            select(&request(12_400.0), &[cand("big", &big), in_domain.clone()])
                .unwrap()
                .policy,
            "big"
        );
        in_domain.membership.product = None;
        let s = select(&request(12_400.0), &[in_domain, cand("big", &big)]).unwrap();
        assert_eq!(s.policy, "big");
        assert!(
            s.explanation
                .contains("scoped: product domain not evaluated")
        );
    }

    #[test]
    fn max_amount_currency_and_suspend_exclude() {
        let capped = spec(
            GovernedAction::EmergencyPurchase,
            Some(ApprovalMatch {
                max_amount: Some(10_000.0),
                ..ApprovalMatch::default()
            }),
        );
        let usd = spec(
            GovernedAction::EmergencyPurchase,
            Some(ApprovalMatch {
                currency: Some("USD".into()),
                ..ApprovalMatch::default()
            }),
        );
        let mut suspended = spec(GovernedAction::EmergencyPurchase, None);
        suspended.suspend = Some(true);
        let c = [
            cand("capped", &capped),
            cand("usd", &usd),
            cand("off", &suspended),
        ];
        assert!(select(&request(12_400.0), &c).is_none());
        assert_eq!(select(&request(9_000.0), &c).unwrap().policy, "capped");
    }

    #[test]
    fn ties_break_by_name_whatever_the_order() {
        let a = spec(GovernedAction::EmergencyPurchase, min(1_000.0));
        let b = spec(GovernedAction::EmergencyPurchase, min(1_000.0));
        let one = select(&request(2_000.0), &[cand("zeta", &a), cand("alpha", &b)]).unwrap();
        let two = select(&request(2_000.0), &[cand("alpha", &b), cand("zeta", &a)]).unwrap();
        assert_eq!(one.policy, "alpha");
        assert_eq!(one.explanation, two.explanation);
        assert!(
            one.explanation
                .contains("equally specific; the name sorts first")
        );
    }

    #[test]
    fn a_catch_all_policy_explains_itself() {
        let all = spec(GovernedAction::EmergencyPurchase, None);
        let s = select(&request(1.0), &[cand("all", &all)]).unwrap();
        assert!(s.explanation.contains("every emergency purchase"));
    }
}
