//! What the detectors return: one `PlanningException` per finding, with its typed
//! numbers, where each number came from, a severity, a priority and a fingerprint.

use std::borrow::Cow;

use jiff::civil::Date;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::params::SeverityThresholds;
pub use planops_api::params::{DetectorKind, Severity};

/// What an exception is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SubjectKind {
    /// A product in a warehouse (`ids` = product id, warehouse id).
    ProductWarehouse,
    /// A purchase order line (`ids` = line id).
    PurchaseLine,
    /// A vendor (`ids` = partner id).
    Supplier,
    /// A sales order line (`ids` = line id).
    SaleLine,
    /// Any Odoo record (`ids` = record id).
    Record,
}

/// The subject of an exception: the Odoo record(s) it is about and a label planners
/// recognise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// What kind of subject this is.
    pub kind: SubjectKind,
    /// The Odoo model of the first id (`product.product`, `purchase.order.line`, ...).
    pub model: Cow<'static, str>,
    /// Odoo ids: for ProductWarehouse the product then the warehouse, else one id.
    pub ids: Vec<i64>,
    /// Human label, e.g. `[FURN_001] Desk × WH1`.
    pub label: String,
}

impl Subject {
    /// Stable key of the subject inside a rule; the fingerprint hashes it. Labels are
    /// left out because a product rename must not open a new exception.
    pub fn key(&self) -> String {
        match self.kind {
            SubjectKind::ProductWarehouse => format!(
                "product.product:{}@stock.warehouse:{}",
                self.ids.first().copied().unwrap_or_default(),
                self.ids.get(1).copied().unwrap_or_default()
            ),
            _ => {
                let ids: Vec<String> = self.ids.iter().map(i64::to_string).collect();
                format!("{}:{}", self.model, ids.join(","))
            }
        }
    }
}

/// Who computed a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Origin {
    /// Read from Odoo as Odoo computed it (the planner sees the same figure in Odoo).
    Odoo,
    /// Computed by PlanOps from data read from Odoo.
    PlanOps,
}

/// Where one number of an exception came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberSource {
    /// The number's name in `numbers` (camelCase).
    pub number: Cow<'static, str>,
    /// Odoo or PlanOps.
    pub origin: Origin,
    /// The Odoo field, or the method and inputs used.
    pub detail: Cow<'static, str>,
}

impl NumberSource {
    // Names and most details are static text: borrowing them keeps a scan that raises
    // 100 000 exceptions from making a million small allocations.
    pub(crate) fn odoo(number: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            number: Cow::Borrowed(number),
            origin: Origin::Odoo,
            detail: detail.into(),
        }
    }
    pub(crate) fn planops(number: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            number: Cow::Borrowed(number),
            origin: Origin::PlanOps,
            detail: detail.into(),
        }
    }
}

/// The MRP-style action a stockout exception calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StockoutAction {
    /// Stock runs out before a replenishment ordered today can arrive: expedite.
    Expedite,
    /// Safety stock is breached before a new order could arrive, but stock stays
    /// positive: order now and watch.
    OrderNow,
    /// The breach lies beyond the lead time: an order placed within the review
    /// period still arrives in time.
    Plan,
}

/// Demand classification (Syntetos–Boylan–Croston).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DemandClass {
    /// Regular sizes and intervals.
    Smooth,
    /// Regular intervals, irregular sizes.
    Erratic,
    /// Many empty days, regular sizes.
    Intermittent,
    /// Many empty days, irregular sizes.
    Lumpy,
    /// No demand in the window.
    NoDemand,
}

/// Numbers of a projected-stockout exception. Quantities are in the product's unit
/// of measure; days are calendar days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockoutNumbers {
    /// Today as the scan saw it.
    #[schemars(with = "String")]
    pub today: Date,
    /// On hand now (`qty_available`).
    pub on_hand: f64,
    /// Odoo's forecast quantity (`virtual_available`), when read.
    pub virtual_available: Option<f64>,
    /// Forecast daily demand.
    pub daily_demand: f64,
    /// Demand classification of the history window.
    pub demand_class: DemandClass,
    /// Lead time of a replenishment ordered today, days.
    pub lead_time_days: u32,
    /// Days projected.
    pub horizon_days: u32,
    /// Safety stock.
    pub safety_stock: f64,
    /// First day projected stock is below safety stock.
    #[schemars(with = "String")]
    pub below_safety_date: Date,
    /// First day projected stock is below zero, if within the horizon.
    #[schemars(with = "Option<String>")]
    pub stockout_date: Option<Date>,
    /// (on hand + open receipts in the horizon) ÷ daily demand; absent without demand.
    pub days_of_cover: Option<f64>,
    /// Projected stock on the day a replenishment ordered today would arrive.
    pub projected_at_lead_time: f64,
    /// Odoo's reordering-rule forecast at its lead-days date (`qty_forecast`), if read.
    pub odoo_forecast_at_lead: Option<f64>,
    /// Largest gap between safety stock and projected stock over the horizon.
    pub shortage_qty: f64,
    /// Largest projected backlog (stock below zero) over the horizon.
    pub backlog_qty: f64,
    /// Quantity to order now, rounded to the reordering rule's multiple and at least
    /// the vendor's minimum quantity.
    pub suggested_order_qty: f64,
    /// Vendor of the suggestion (`res.partner` id), if known.
    pub supplier_id: Option<i64>,
    /// What to do.
    pub action: StockoutAction,
}

/// Numbers of a demand-spike exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpikeNumbers {
    /// First day of the recent window.
    #[schemars(with = "String")]
    pub window_start: Date,
    /// Last day of the recent window.
    #[schemars(with = "String")]
    pub window_end: Date,
    /// Total demand in the recent window.
    pub recent_qty: f64,
    /// Median total of the baseline windows.
    pub baseline_median: f64,
    /// Median absolute deviation of the baseline windows.
    pub baseline_mad: f64,
    /// Number of baseline windows.
    pub baseline_windows: u32,
    /// Robust z-score 0.6745·(x − median)/MAD (mean absolute deviation when MAD is 0);
    /// absent when the baseline does not vary at all.
    pub robust_z: Option<f64>,
    /// recent_qty − baseline_median.
    pub change_qty: f64,
    /// Days on hand would last at the recent rate; absent without recent demand.
    pub days_of_cover_at_recent_rate: Option<f64>,
    /// Demand classification of the baseline.
    pub demand_class: DemandClass,
    /// Seasonal lift the baseline was scaled by (`seasonal`): the recent window a
    /// season earlier over the median of the baseline windows then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonal_factor: Option<f64>,
}

/// Why a supplier-delay exception was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DelayReason {
    /// An open line is past its planned date (plus grace).
    Late,
    /// An open line's planned date moved later since the last scan.
    PushedBack,
    /// A supplier's measured lead time deteriorated against its vendor lead time.
    LeadTimeDeterioration,
}

/// Numbers of a supplier-delay exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierDelayNumbers {
    /// Why it was raised (a line may be both late and pushed back: Late wins).
    pub reason: DelayReason,
    /// Vendor (`res.partner` id).
    pub supplier_id: i64,
    /// Planned date of the line (line exceptions).
    #[schemars(with = "Option<String>")]
    pub date_planned: Option<Date>,
    /// Planned date seen at the previous scan (line exceptions).
    #[schemars(with = "Option<String>")]
    pub previous_date_planned: Option<Date>,
    /// Days past the planned date (line exceptions; 0 when not yet due).
    pub days_late: Option<i64>,
    /// Days the planned date moved later since the last scan (line exceptions).
    pub slip_days: Option<i64>,
    /// Quantity still to receive (line exceptions).
    pub open_qty: Option<f64>,
    /// Value still to receive, in the order's currency.
    pub open_value: f64,
    /// Median measured lead time (order to receipt) of the recent receipts, days.
    pub measured_lead_time_days: Option<f64>,
    /// 90th percentile of the measured lead time, days.
    pub measured_lead_time_p90_days: Option<f64>,
    /// Median vendor lead time (`product.supplierinfo` delay) of the same receipts, days.
    pub vendor_lead_time_days: Option<f64>,
    /// measured ÷ vendor lead time.
    pub lead_time_ratio: Option<f64>,
    /// Share of the recent receipts received by their promised date, 0–1.
    pub on_time_rate: Option<f64>,
    /// Receipts measured.
    pub receipts: Option<u32>,
}

/// Numbers of an order-at-risk exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderRiskNumbers {
    /// Date promised to the customer.
    #[schemars(with = "String")]
    pub commitment_date: Date,
    /// Quantity still to deliver on the line.
    pub open_qty: f64,
    /// Part of it that stock plus receipts dated by the commitment date cannot cover.
    pub shortfall_qty: f64,
    /// Undelivered value of the line (company currency).
    pub open_value: f64,
    /// Value of the shortfall.
    pub value_at_risk: f64,
    /// On hand in the warehouse now.
    pub on_hand: f64,
    /// Receipts dated on or before the commitment date.
    pub incoming_by_commitment: f64,
    /// Earlier-committed open lines of the same product served first.
    pub demand_ahead_qty: f64,
    /// Date a known receipt covers the line in full, if any.
    #[schemars(with = "Option<String>")]
    pub covered_on: Option<Date>,
    /// Days late the line will be if covered on `covered_on`.
    pub days_late: Option<i64>,
}

/// Numbers of a field-threshold exception.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldThresholdNumbers {
    /// Field compared.
    pub field: String,
    /// Its value on the record.
    pub actual: f64,
    /// The rule's value.
    pub threshold: f64,
    /// actual − threshold.
    pub difference: f64,
}

/// The per-detector numbers of an exception, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum ExceptionNumbers {
    /// Projected stockout.
    ProjectedStockout(StockoutNumbers),
    /// Demand spike.
    DemandSpike(SpikeNumbers),
    /// Supplier delay.
    SupplierDelay(SupplierDelayNumbers),
    /// Order at risk.
    OrderAtRisk(OrderRiskNumbers),
    /// Field threshold.
    FieldThreshold(FieldThresholdNumbers),
}

impl ExceptionNumbers {
    /// The detector whose numbers these are.
    pub fn detector(&self) -> DetectorKind {
        match self {
            ExceptionNumbers::ProjectedStockout(_) => DetectorKind::ProjectedStockout,
            ExceptionNumbers::DemandSpike(_) => DetectorKind::DemandSpike,
            ExceptionNumbers::SupplierDelay(_) => DetectorKind::SupplierDelay,
            ExceptionNumbers::OrderAtRisk(_) => DetectorKind::OrderAtRisk,
            ExceptionNumbers::FieldThreshold(_) => DetectorKind::FieldThreshold,
        }
    }
}

/// One planning exception found by a detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanningException {
    /// Stable key (see [`fingerprint`]): the idempotency key of every Odoo write.
    pub fingerprint: String,
    /// Detector that found it.
    pub detector: DetectorKind,
    /// What it is about.
    pub subject: Subject,
    /// Severity from the rule's thresholds, raised to the detector's floor, unless the
    /// rule fixes it.
    pub severity: Severity,
    /// impact × urgency (see each detector for its impact).
    pub priority: f64,
    /// The value (or quantity) at stake.
    pub impact: f64,
    /// 0–1: how soon it bites relative to what can still be done.
    pub urgency: f64,
    /// The detector's numbers.
    pub numbers: ExceptionNumbers,
    /// Where each number came from.
    pub provenance: Vec<NumberSource>,
    /// One line.
    pub summary: String,
    /// A paragraph for the planner, with the numbers.
    pub narrative: String,
}

/// Identifies the rule a scan evaluates; part of every fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef<'a> {
    /// Kubernetes namespace of the `ExceptionRule`.
    pub namespace: &'a str,
    /// Name of the `ExceptionRule`.
    pub rule: &'a str,
}

/// Fingerprint of an exception: `planops:` followed by the first 32 hex digits
/// (128 bits) of SHA-256 over namespace, rule, detector and subject key, separated by
/// the ASCII unit separator so no two different tuples hash the same text.
///
/// It is the idempotency key of every Odoo write PlanOps makes for the exception, so
/// it deliberately ignores the numbers: a re-scan that finds the same problem with
/// new figures matches the same exception and updates it instead of opening a second.
pub fn fingerprint(
    namespace: &str,
    rule: &str,
    detector: DetectorKind,
    subject_key: &str,
) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in [namespace, rule, detector.as_str(), subject_key]
        .iter()
        .enumerate()
    {
        if i > 0 {
            hasher.update([0x1f]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex_digits = [0u8; 32];
    // 16 bytes always fit 32 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(&digest[..16], &mut hex_digits);
    let mut out = String::with_capacity(8 + 32);
    out.push_str("planops:");
    out.push_str(std::str::from_utf8(&hex_digits).unwrap_or_default());
    out
}

/// Urgency from 0 to 1 of a problem `days_until` days away, when `lead_days` days are
/// needed to act on it: 1 when it lands within the lead time (it can no longer be
/// prevented by ordering today), then lead ÷ days_until, so it halves at twice the lead
/// time. A zero lead time counts as one day.
pub fn urgency(days_until: i64, lead_days: u32) -> f64 {
    let window = f64::from(lead_days.max(1));
    if days_until as f64 <= window {
        1.0
    } else {
        window / days_until as f64
    }
}

/// How a finding's severity is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeverityBasis {
    /// The rule's thresholds classify the priority, raised to `floor` for problems a
    /// detector knows are serious whatever their value (a stockout only expediting
    /// can avoid, an order already due).
    Priority { floor: Option<Severity> },
    /// The rule fixed the severity of every match, ignoring the thresholds.
    Fixed(Severity),
}

/// What a detector found, before the rule turns it into a [`PlanningException`].
/// The detector is implied by the numbers' variant, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub subject: Subject,
    pub numbers: ExceptionNumbers,
    /// The value (or quantity) at stake.
    pub impact: f64,
    /// 0–1, see [`urgency`].
    pub urgency: f64,
    pub severity: SeverityBasis,
    pub provenance: Vec<NumberSource>,
    pub summary: String,
    pub narrative: String,
}

impl Finding {
    /// The exception `rule` raises for this finding: priority = impact × urgency,
    /// severity as its basis says, fingerprint over the rule, detector and subject.
    pub(crate) fn into_exception(
        self,
        rule: &RuleRef<'_>,
        thresholds: &SeverityThresholds,
    ) -> PlanningException {
        let priority = self.impact * self.urgency;
        let severity = match self.severity {
            SeverityBasis::Priority { floor } => {
                let class = thresholds.classify(priority);
                floor.map_or(class, |floor| class.more_severe(floor))
            }
            SeverityBasis::Fixed(fixed) => fixed,
        };
        let detector = self.numbers.detector();
        PlanningException {
            fingerprint: fingerprint(rule.namespace, rule.rule, detector, &self.subject.key()),
            detector,
            subject: self.subject,
            severity,
            priority,
            impact: self.impact,
            urgency: self.urgency,
            numbers: self.numbers,
            provenance: self.provenance,
            summary: self.summary,
            narrative: self.narrative,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_prefixed_and_separates_parts() {
        let a = fingerprint(
            "ns",
            "rule",
            DetectorKind::DemandSpike,
            "product.product:1@stock.warehouse:2",
        );
        assert!(a.starts_with("planops:"));
        assert_eq!(a.len(), "planops:".len() + 32);
        assert!(a["planops:".len()..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            a,
            fingerprint(
                "ns",
                "rule",
                DetectorKind::DemandSpike,
                "product.product:1@stock.warehouse:2"
            )
        );
        // Moving a character across the boundary of two parts changes the hash.
        assert_ne!(
            fingerprint("ns", "ruleX", DetectorKind::DemandSpike, "k"),
            fingerprint("nsr", "uleX", DetectorKind::DemandSpike, "k")
        );
        assert_ne!(
            a,
            fingerprint(
                "ns",
                "rule",
                DetectorKind::ProjectedStockout,
                "product.product:1@stock.warehouse:2"
            )
        );
    }

    #[test]
    fn fingerprint_matches_independent_sha256() {
        // printf 'a\x1fb\x1fdemandSpike\x1fk' | sha256sum | cut -c1-32
        assert_eq!(
            fingerprint("a", "b", DetectorKind::DemandSpike, "k"),
            "planops:2d9b689a143889ff1d47c7c38f1c5d6b"
        );
    }

    #[test]
    fn subject_key_ignores_label() {
        let mut s = Subject {
            kind: SubjectKind::ProductWarehouse,
            model: "product.product".into(),
            ids: vec![7, 2],
            label: "[A] Desk × WH".into(),
        };
        let key = s.key();
        s.label = "[A] Desk (renamed) × WH".into();
        assert_eq!(key, s.key());
        assert_eq!(key, "product.product:7@stock.warehouse:2");
        let line = Subject {
            kind: SubjectKind::SaleLine,
            model: "sale.order.line".into(),
            ids: vec![42],
            label: "S00042".into(),
        };
        assert_eq!(line.key(), "sale.order.line:42");
    }

    #[test]
    fn urgency_is_one_within_lead_time_then_decays() {
        assert_eq!(urgency(0, 10), 1.0);
        assert_eq!(urgency(10, 10), 1.0);
        assert_eq!(urgency(20, 10), 0.5);
        assert_eq!(urgency(-3, 0), 1.0);
        assert_eq!(urgency(1, 0), 1.0);
        assert_eq!(urgency(4, 0), 0.25);
    }

    #[test]
    fn finding_severity_floor_only_raises_and_fixed_ignores_thresholds() {
        let finding = |impact: f64, severity: SeverityBasis| Finding {
            subject: Subject {
                kind: SubjectKind::Record,
                model: "stock.quant".into(),
                ids: vec![3],
                label: "quant".into(),
            },
            numbers: ExceptionNumbers::FieldThreshold(FieldThresholdNumbers {
                field: "quantity".into(),
                actual: -impact,
                threshold: 0.0,
                difference: -impact,
            }),
            impact,
            urgency: 0.5,
            severity,
            provenance: Vec::new(),
            summary: String::new(),
            narrative: String::new(),
        };
        let rule = RuleRef {
            namespace: "ns",
            rule: "r",
        };
        let thresholds = SeverityThresholds::default();
        let raise = SeverityBasis::Priority {
            floor: Some(Severity::High),
        };
        let e = finding(40_000.0, raise).into_exception(&rule, &thresholds);
        assert_eq!((e.priority, e.severity), (20_000.0, Severity::Critical));
        assert_eq!(e.detector, DetectorKind::FieldThreshold);
        assert_eq!(
            e.fingerprint,
            fingerprint("ns", "r", DetectorKind::FieldThreshold, "stock.quant:3")
        );
        let e = finding(10.0, raise).into_exception(&rule, &thresholds);
        assert_eq!(e.severity, Severity::High);
        let fixed = SeverityBasis::Fixed(Severity::Low);
        let e = finding(40_000.0, fixed).into_exception(&rule, &thresholds);
        assert_eq!(e.severity, Severity::Low);
    }

    #[test]
    fn severity_max_picks_more_severe() {
        assert_eq!(Severity::Low.more_severe(Severity::High), Severity::High);
        assert_eq!(
            Severity::Critical.more_severe(Severity::Medium),
            Severity::Critical
        );
    }
}
