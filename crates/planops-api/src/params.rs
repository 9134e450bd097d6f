//! Detector parameters. These structs are embedded verbatim in the `ExceptionRule`
//! custom resource (`spec.detector`, `spec.severity`), so every doc comment below is
//! also the `kubectl explain` text: each field says its unit and its default.
//! Optional fields stay `None` in the stored object; accessor methods apply the
//! documented defaults so the default lives in exactly one place.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of detector that found an exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum DetectorKind {
    /// Projected stock falls below safety stock.
    ProjectedStockout,
    /// Demand far from its history.
    DemandSpike,
    /// Late purchase line or deteriorating supplier lead time.
    SupplierDelay,
    /// Confirmed sales line not covered in time.
    OrderAtRisk,
    /// Generic field comparison.
    FieldThreshold,
}

impl DetectorKind {
    /// The name used in `spec.detector` (camelCase), also part of the fingerprint.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::ProjectedStockout => "projectedStockout",
            DetectorKind::DemandSpike => "demandSpike",
            DetectorKind::SupplierDelay => "supplierDelay",
            DetectorKind::OrderAtRisk => "orderAtRisk",
            DetectorKind::FieldThreshold => "fieldThreshold",
        }
    }
}

/// Severity of an exception, highest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    /// Act today.
    Critical,
    /// Act within the lead time.
    High,
    /// Plan for it.
    Medium,
    /// For information.
    Low,
}

impl Severity {
    /// The more severe of two.
    pub fn more_severe(self, other: Severity) -> Severity {
        // Variants are declared most severe first, so the smaller one wins.
        std::cmp::min(self, other)
    }
}

/// Why a detector specification cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// No detector block was set.
    #[error(
        "spec.detector must set exactly one of projectedStockout, demandSpike, supplierDelay, orderAtRisk, fieldThreshold; none is set"
    )]
    NoDetector,
    /// More than one detector block was set.
    #[error("spec.detector must set exactly one detector; found {0}")]
    SeveralDetectors(String),
    /// A field holds a value outside its meaningful range.
    #[error("spec.{field}: {reason}")]
    Invalid {
        /// Dotted path of the field below `spec`, e.g. `detector.demandSpike.baselineDays`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A detector field out of range; `field` is relative to `spec.detector`.
fn invalid(field: &str, reason: impl Into<String>) -> ParamsError {
    ParamsError::Invalid {
        field: format!("detector.{field}"),
        reason: reason.into(),
    }
}

/// CEL rule for the CRD's `spec.detector` that repeats [`DetectorSpec::kind`]'s
/// exactly-one check on the API server (use with message [`EXACTLY_ONE_DETECTOR_MESSAGE`]).
pub const EXACTLY_ONE_DETECTOR_CEL: &str = "[has(self.projectedStockout), has(self.demandSpike), has(self.supplierDelay), has(self.orderAtRisk), has(self.fieldThreshold)].filter(x, x).size() == 1";

/// Message of [`EXACTLY_ONE_DETECTOR_CEL`].
pub const EXACTLY_ONE_DETECTOR_MESSAGE: &str =
    "set exactly one of projectedStockout, demandSpike, supplierDelay, orderAtRisk, fieldThreshold";

/// Which detector a rule runs, with its parameters. Exactly one field must be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetectorSpec {
    /// Project stock day by day per product × warehouse and flag a fall below
    /// safety stock within the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_stockout: Option<ProjectedStockoutParams>,
    /// Flag a recent demand window that is far from its history (robust z-score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand_spike: Option<DemandSpikeParams>,
    /// Flag late or pushed-back purchase lines and suppliers whose lead time deteriorated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_delay: Option<SupplierDelayParams>,
    /// Flag confirmed sales lines that stock and incoming receipts cannot cover by their
    /// commitment date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_at_risk: Option<OrderAtRiskParams>,
    /// Compare one numeric field of any Odoo model with a value (the escape hatch that
    /// replaces a hand-written Odoo scheduled action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_threshold: Option<FieldThresholdParams>,
}

impl DetectorSpec {
    /// The detector this spec selects; an error unless exactly one block is set.
    pub fn kind(&self) -> Result<DetectorKind, ParamsError> {
        let set: Vec<DetectorKind> = [
            (
                self.projected_stockout.is_some(),
                DetectorKind::ProjectedStockout,
            ),
            (self.demand_spike.is_some(), DetectorKind::DemandSpike),
            (self.supplier_delay.is_some(), DetectorKind::SupplierDelay),
            (self.order_at_risk.is_some(), DetectorKind::OrderAtRisk),
            (self.field_threshold.is_some(), DetectorKind::FieldThreshold),
        ]
        .into_iter()
        .filter_map(|(present, kind)| present.then_some(kind))
        .collect();
        match set.as_slice() {
            [] => Err(ParamsError::NoDetector),
            [one] => Ok(*one),
            several => Err(ParamsError::SeveralDetectors(
                several
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Days of daily demand history the selected detector reads (0: none).
    pub fn history_days(&self) -> u32 {
        if let Some(p) = &self.projected_stockout {
            p.history_days()
        } else if let Some(p) = &self.demand_spike {
            p.history_days()
        } else {
            0
        }
    }

    /// Days ahead the selected detector reads forecasts and dated moves for (0: none).
    pub fn forecast_days(&self) -> u32 {
        if let Some(p) = &self.projected_stockout {
            p.odoo_forecast_days()
        } else if let Some(p) = &self.order_at_risk {
            p.window_days()
        } else {
            0
        }
    }

    /// Checks the selection and every range the schema cannot express alone
    /// (cross-field rules). The CRD's CEL rules repeat the exactly-one check so the
    /// API server rejects a bad object before it is stored.
    pub fn validate(&self) -> Result<DetectorKind, ParamsError> {
        let kind = self.kind()?;
        if let Some(p) = &self.projected_stockout {
            p.validate()?;
        }
        if let Some(p) = &self.demand_spike {
            p.validate()?;
        }
        if let Some(p) = &self.supplier_delay {
            p.validate()?;
        }
        if let Some(p) = &self.order_at_risk {
            p.validate()?;
        }
        if let Some(p) = &self.field_threshold {
            p.validate()?;
        }
        Ok(kind)
    }
}

/// How the daily demand rate is forecast from the history window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ForecastMethod {
    /// Classify the series (Syntetos–Boylan: average demand interval ADI ≥ 1.32 days
    /// is intermittent) and use `Sba` for intermittent series; `Seasonal` for other
    /// series whose history shows a season (at least 476 days, with weekly demand
    /// correlating r ≥ 0.5 with the same weeks a year before); `Ses` otherwise.
    #[default]
    Auto,
    /// Plain average of the history window.
    MovingAverage,
    /// Simple exponential smoothing of daily demand.
    Ses,
    /// Croston's method with the Syntetos–Boylan bias correction (for intermittent demand).
    Sba,
    /// The same days of earlier years (52-week seasons), averaged, times this year's
    /// trend (the last 8 weeks against the same weeks a year before, within 0.5–2).
    /// Needs a year and 8 weeks of history; with less it forecasts as `Auto` would.
    Seasonal,
}

/// How safety stock is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SafetyStockMode {
    /// The reordering rule's minimum (`product_min_qty`), as Odoo uses it; products
    /// without a reordering rule fall back to `daysOfCover`.
    #[default]
    OrderpointMin,
    /// `daysOfCover` days of the forecast daily demand.
    DaysOfCover,
    /// z · σ_daily · √(lead time days), z from `serviceLevel` (cycle service level).
    ServiceLevel,
    /// No safety stock: flag only a projected stockout (stock below zero).
    None,
}

/// Safety stock policy of the projected-stockout detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafetyStockParams {
    /// How safety stock is set: OrderpointMin (default), DaysOfCover, ServiceLevel or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SafetyStockMode>,
    /// Days of forecast demand kept as safety stock in DaysOfCover mode, and the
    /// fallback of OrderpointMin for products without a reordering rule. Days; default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 365.0))]
    pub days_of_cover: Option<f64>,
    /// Cycle service level for ServiceLevel mode, as a fraction. Default 0.95 (z ≈ 1.645).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 0.9999))]
    pub service_level: Option<f64>,
}

impl SafetyStockParams {
    /// Mode, default OrderpointMin.
    pub fn mode(&self) -> SafetyStockMode {
        self.mode.unwrap_or_default()
    }
    /// Days of cover, default 7.
    pub fn days_of_cover(&self) -> f64 {
        self.days_of_cover.unwrap_or(7.0)
    }
    /// Service level, default 0.95.
    pub fn service_level(&self) -> f64 {
        self.service_level.unwrap_or(0.95)
    }
}

/// Parameters of the projected-stockout detector (per product × warehouse).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedStockoutParams {
    /// How far ahead stock is projected, in days from today. Default: lead time +
    /// review period + 7 days (per product). Never shorter than the lead time, so a
    /// breach before a replenishment ordered today could arrive is always seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 730))]
    pub horizon_days: Option<u32>,
    /// Days of sales history (ending yesterday) used for the demand forecast. Default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 7, max = 730))]
    pub history_days: Option<u32>,
    /// Forecast method: Auto (default), MovingAverage, Ses, Sba or Seasonal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_method: Option<ForecastMethod>,
    /// Smoothing constant α of Ses and Sba, a fraction. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub smoothing_alpha: Option<f64>,
    /// Safety stock policy. Default: the reordering rule's minimum, else 7 days of cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_stock: Option<SafetyStockParams>,
    /// Days between two replenishment decisions for the same product, used for the
    /// "order now" window and the order-up-to level. Days; default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub review_period_days: Option<u32>,
    /// Lead time used when neither a reordering rule nor a vendor price list line gives
    /// one. Days; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub default_lead_time_days: Option<u32>,
    /// Use Odoo's own figures when the scan read them (reordering rule lead days,
    /// forecast and quantity to order), so planners see the same numbers in Odoo.
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_odoo_figures: Option<bool>,
}

impl ProjectedStockoutParams {
    /// Explicit horizon, if any (the default depends on the product's lead time).
    pub fn horizon_days(&self) -> Option<u32> {
        self.horizon_days
    }
    /// Days the projection covers for a product with `lead_time_days` of lead
    /// time: `horizonDays`, else lead time + review period + 7; never shorter
    /// than the lead time, so an order placed today can still arrive inside it.
    pub fn horizon_for(&self, lead_time_days: u32) -> u32 {
        self.horizon_days
            .unwrap_or(
                lead_time_days
                    .saturating_add(self.review_period_days())
                    .saturating_add(7),
            )
            .max(lead_time_days)
    }
    /// Days ahead a scan reads Odoo's own forecast for (`virtual_available` up
    /// to that day): `horizonDays`, else 30. One window for every product, since
    /// the scan asks Odoo before it knows each product's lead time.
    pub fn odoo_forecast_days(&self) -> u32 {
        self.horizon_days.unwrap_or(30)
    }
    /// History window, default 90 days.
    pub fn history_days(&self) -> u32 {
        self.history_days.unwrap_or(90)
    }
    /// Forecast method, default Auto.
    pub fn forecast_method(&self) -> ForecastMethod {
        self.forecast_method.unwrap_or_default()
    }
    /// Smoothing α, default 0.1.
    pub fn smoothing_alpha(&self) -> f64 {
        self.smoothing_alpha.unwrap_or(0.1)
    }
    /// Safety stock policy with its defaults.
    pub fn safety_stock(&self) -> SafetyStockParams {
        self.safety_stock.clone().unwrap_or_default()
    }
    /// Review period, default 7 days.
    pub fn review_period_days(&self) -> u32 {
        self.review_period_days.unwrap_or(7)
    }
    /// Fallback lead time, default 0 days.
    pub fn default_lead_time_days(&self) -> u32 {
        self.default_lead_time_days.unwrap_or(0)
    }
    /// Whether Odoo's figures win, default true.
    pub fn use_odoo_figures(&self) -> bool {
        self.use_odoo_figures.unwrap_or(true)
    }

    fn validate(&self) -> Result<(), ParamsError> {
        check_range(
            "projectedStockout.horizonDays",
            self.horizon_days.map(f64::from),
            1.0,
            730.0,
        )?;
        check_range(
            "projectedStockout.historyDays",
            self.history_days.map(f64::from),
            7.0,
            730.0,
        )?;
        check_range(
            "projectedStockout.smoothingAlpha",
            self.smoothing_alpha,
            0.01,
            1.0,
        )?;
        check_range(
            "projectedStockout.reviewPeriodDays",
            self.review_period_days.map(f64::from),
            0.0,
            365.0,
        )?;
        check_range(
            "projectedStockout.defaultLeadTimeDays",
            self.default_lead_time_days.map(f64::from),
            0.0,
            365.0,
        )?;
        if let Some(ss) = &self.safety_stock {
            check_range(
                "projectedStockout.safetyStock.daysOfCover",
                ss.days_of_cover,
                0.0,
                365.0,
            )?;
            check_range(
                "projectedStockout.safetyStock.serviceLevel",
                ss.service_level,
                0.5,
                0.9999,
            )?;
        }
        Ok(())
    }
}

/// One season of the seasonal methods: 52 weeks, so each day lines up with the
/// same weekday a year before.
pub const SEASON_DAYS: u32 = 364;
/// History a verdict on seasonality needs: a season, plus 16 weeks that each have
/// their counterpart a season before.
pub const SEASONALITY_HISTORY_DAYS: u32 = SEASON_DAYS + 16 * 7;

/// Which side of the baseline counts as a spike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SpikeDirection {
    /// Only demand far above the baseline.
    #[default]
    Up,
    /// Only demand far below the baseline (a collapse).
    Down,
    /// Both.
    Both,
}

/// Parameters of the demand-spike detector (per product × warehouse).
///
/// The recent window's total demand is compared with the totals of the
/// non-overlapping windows of the same length that make up the baseline, using the
/// robust z-score M = 0.6745 · (x − median) / MAD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandSpikeParams {
    /// Length of the recent window (ending yesterday). Days; default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 90))]
    pub recent_days: Option<u32>,
    /// Length of the baseline just before the recent window; it is cut into windows of
    /// `recentDays`. Days; default 84 (12 weekly windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 14, max = 730))]
    pub baseline_days: Option<u32>,
    /// Robust z-score above which the window is flagged (Iglewicz & Hoaglin). Default 3.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub threshold: Option<f64>,
    /// Minimum total demand in the recent window (units) for an upward spike to count,
    /// so noise on slow movers is not flagged. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_recent_qty: Option<f64>,
    /// Minimum difference between the recent window and the baseline median (units),
    /// in either direction. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_change_qty: Option<f64>,
    /// Up (default), Down or Both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<SpikeDirection>,
    /// Compare with the same weeks a year before: where the history shows a season
    /// (weekly demand correlating r ≥ 0.5 with the same weeks a year earlier), the
    /// baseline is scaled by how the recent window stood against the baseline windows
    /// a year ago, so a December like last December is not a spike. Reads a year more
    /// history (at least 476 days). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonal: Option<bool>,
}

impl DemandSpikeParams {
    /// Recent window, default 7 days.
    pub fn recent_days(&self) -> u32 {
        self.recent_days.unwrap_or(7)
    }
    /// Baseline, default 84 days.
    pub fn baseline_days(&self) -> u32 {
        self.baseline_days.unwrap_or(84)
    }
    /// Robust z threshold, default 3.5.
    pub fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(3.5)
    }
    /// Minimum recent volume, default 10 units.
    pub fn min_recent_qty(&self) -> f64 {
        self.min_recent_qty.unwrap_or(10.0)
    }
    /// Minimum change, default 5 units.
    pub fn min_change_qty(&self) -> f64 {
        self.min_change_qty.unwrap_or(5.0)
    }
    /// Direction, default Up.
    pub fn direction(&self) -> SpikeDirection {
        self.direction.unwrap_or_default()
    }
    /// Whether the baseline is scaled by last year's season, default false.
    pub fn seasonal(&self) -> bool {
        self.seasonal.unwrap_or(false)
    }
    /// Days of history read: the recent and baseline windows, and with `seasonal`
    /// the same windows a season before (at least enough to judge seasonality).
    pub fn history_days(&self) -> u32 {
        let windows = self.recent_days() + self.baseline_days();
        if self.seasonal() {
            (windows + SEASON_DAYS).max(SEASONALITY_HISTORY_DAYS)
        } else {
            windows
        }
    }

    fn validate(&self) -> Result<(), ParamsError> {
        check_range(
            "demandSpike.recentDays",
            self.recent_days.map(f64::from),
            1.0,
            90.0,
        )?;
        check_range(
            "demandSpike.baselineDays",
            self.baseline_days.map(f64::from),
            14.0,
            730.0,
        )?;
        check_range("demandSpike.threshold", self.threshold, 1.0, 100.0)?;
        check_range(
            "demandSpike.minRecentQty",
            self.min_recent_qty,
            0.0,
            f64::MAX,
        )?;
        check_range(
            "demandSpike.minChangeQty",
            self.min_change_qty,
            0.0,
            f64::MAX,
        )?;
        if self.baseline_days() < 2 * self.recent_days() {
            return Err(invalid(
                "demandSpike.baselineDays",
                format!(
                    "must hold at least two recent windows ({} days), got {}",
                    2 * self.recent_days(),
                    self.baseline_days()
                ),
            ));
        }
        Ok(())
    }
}

/// Parameters of the supplier-delay detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SupplierDelayParams {
    /// Days an open purchase line may be past its planned date before it is late.
    /// Days; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub grace_days: Option<u32>,
    /// Minimum push-back of a line's planned date since the last scan to flag it.
    /// Days; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub min_slip_days: Option<u32>,
    /// Number of most recent receipts per supplier used for the measured lead time.
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub recent_receipts: Option<u32>,
    /// Fewest receipts needed before a supplier's lead time is judged. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_receipts: Option<u32>,
    /// Flag a supplier when median measured lead time ÷ median vendor lead time
    /// (`product.supplierinfo` delay) reaches this ratio. Default 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub lead_time_ratio: Option<f64>,
    /// … and the median lateness against the vendor lead time reaches this many days.
    /// Days; default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 365.0))]
    pub min_lead_time_increase_days: Option<f64>,
}

impl SupplierDelayParams {
    /// Grace, default 0 days.
    pub fn grace_days(&self) -> u32 {
        self.grace_days.unwrap_or(0)
    }
    /// Minimum slip, default 1 day.
    pub fn min_slip_days(&self) -> u32 {
        self.min_slip_days.unwrap_or(1)
    }
    /// Recent receipts, default 10.
    pub fn recent_receipts(&self) -> u32 {
        self.recent_receipts.unwrap_or(10)
    }
    /// Minimum receipts, default 3.
    pub fn min_receipts(&self) -> u32 {
        self.min_receipts.unwrap_or(3)
    }
    /// Lead-time ratio, default 1.2.
    pub fn lead_time_ratio(&self) -> f64 {
        self.lead_time_ratio.unwrap_or(1.2)
    }
    /// Minimum increase, default 2 days.
    pub fn min_lead_time_increase_days(&self) -> f64 {
        self.min_lead_time_increase_days.unwrap_or(2.0)
    }

    fn validate(&self) -> Result<(), ParamsError> {
        check_range(
            "supplierDelay.graceDays",
            self.grace_days.map(f64::from),
            0.0,
            365.0,
        )?;
        check_range(
            "supplierDelay.minSlipDays",
            self.min_slip_days.map(f64::from),
            1.0,
            365.0,
        )?;
        check_range(
            "supplierDelay.recentReceipts",
            self.recent_receipts.map(f64::from),
            1.0,
            1000.0,
        )?;
        check_range(
            "supplierDelay.minReceipts",
            self.min_receipts.map(f64::from),
            1.0,
            1000.0,
        )?;
        check_range(
            "supplierDelay.leadTimeRatio",
            self.lead_time_ratio,
            1.0,
            100.0,
        )?;
        check_range(
            "supplierDelay.minLeadTimeIncreaseDays",
            self.min_lead_time_increase_days,
            0.0,
            365.0,
        )?;
        if self.min_receipts() > self.recent_receipts() {
            return Err(invalid(
                "supplierDelay.minReceipts",
                format!(
                    "must not exceed recentReceipts ({}), got {}",
                    self.recent_receipts(),
                    self.min_receipts()
                ),
            ));
        }
        Ok(())
    }
}

/// Parameters of the order-at-risk detector (per confirmed sales line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderAtRiskParams {
    /// Sales lines whose commitment date falls within this many days from today (or
    /// is already past) are checked. Days; default 14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 365))]
    pub window_days: Option<u32>,
    /// Only lines whose undelivered value (company currency) reaches this are flagged.
    /// Default 0 (every line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub min_value: Option<f64>,
}

impl OrderAtRiskParams {
    /// Window, default 14 days.
    pub fn window_days(&self) -> u32 {
        self.window_days.unwrap_or(14)
    }
    /// Value threshold, default 0.
    pub fn min_value(&self) -> f64 {
        self.min_value.unwrap_or(0.0)
    }

    fn validate(&self) -> Result<(), ParamsError> {
        check_range(
            "orderAtRisk.windowDays",
            self.window_days.map(f64::from),
            0.0,
            365.0,
        )?;
        check_range("orderAtRisk.minValue", self.min_value, 0.0, f64::MAX)
    }
}

/// Comparison operator of the field-threshold detector: the record is flagged when
/// `field <comparison> value` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
}

impl Comparison {
    /// Whether `left <op> right` holds.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Gt => left > right,
            Comparison::Gte => left >= right,
            Comparison::Lt => left < right,
            Comparison::Lte => left <= right,
            Comparison::Eq => left == right,
            Comparison::Ne => left != right,
        }
    }
    /// The operator as a symbol, for narratives.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Gte => "≥",
            Comparison::Lt => "<",
            Comparison::Lte => "≤",
            Comparison::Eq => "=",
            Comparison::Ne => "≠",
        }
    }
}

/// Parameters of the field-threshold detector: any Odoo model, domain, numeric field,
/// comparison and value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldThresholdParams {
    /// Technical name of the Odoo model, e.g. `stock.quant`.
    #[schemars(length(min = 1, max = 128))]
    pub model: String,
    /// Odoo domain selecting the records, as JSON (`[["state","=","sale"]]`) or in the
    /// Python-literal form copied from Odoo (`[('state', '=', 'sale')]`). Default: all
    /// records (`[]`).
    #[serde(default)]
    #[schemars(length(max = 8192))]
    pub domain: String,
    /// Numeric (integer, float, monetary or boolean) field compared, e.g. `quantity`.
    #[schemars(length(min = 1, max = 128))]
    pub field: String,
    /// Gt, Gte, Lt, Lte, Eq or Ne.
    pub comparison: Comparison,
    /// Value the field is compared with.
    pub value: f64,
    /// Field used as the record's label in exceptions. Default `display_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub subject_field: Option<String>,
    /// Fixed severity of every match. Default: from `spec.severity` thresholds on the
    /// priority, which is |field − value| for this detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl FieldThresholdParams {
    /// Label field, default `display_name`.
    pub fn subject_field(&self) -> &str {
        self.subject_field.as_deref().unwrap_or("display_name")
    }

    fn validate(&self) -> Result<(), ParamsError> {
        if !is_odoo_name(&self.model) {
            return Err(invalid(
                "fieldThreshold.model",
                format!(
                    "'{}' is not an Odoo model name (lower-case words joined by dots)",
                    self.model
                ),
            ));
        }
        if !is_odoo_name(&self.field) || self.field.contains('.') {
            return Err(invalid(
                "fieldThreshold.field",
                format!("'{}' is not an Odoo field name", self.field),
            ));
        }
        if let Some(label) = &self.subject_field
            && (!is_odoo_name(label) || label.contains('.'))
        {
            return Err(invalid(
                "fieldThreshold.subjectField",
                format!("'{label}' is not an Odoo field name"),
            ));
        }
        if !self.value.is_finite() {
            return Err(invalid("fieldThreshold.value", "must be a finite number"));
        }
        Ok(())
    }
}

/// Odoo model and field names: lower-case ASCII letters, digits, `_` and `.`.
fn is_odoo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// How an exception's priority maps to its severity. Priority is impact × urgency:
/// impact is the value at stake in company currency (a quantity when no value is
/// known), urgency a factor from 0 to 1 (1 when the problem lands before a
/// replenishment ordered today could arrive). A detector may raise the result to a
/// floor (a stockout before the lead time is at least High).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeverityThresholds {
    /// Priority from which an exception is Critical. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub critical: Option<f64>,
    /// Priority from which an exception is High. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub high: Option<f64>,
    /// Priority from which an exception is Medium; below it is Low. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub medium: Option<f64>,
}

impl SeverityThresholds {
    /// Critical threshold, default 10000.
    pub fn critical(&self) -> f64 {
        self.critical.unwrap_or(10_000.0)
    }
    /// High threshold, default 1000.
    pub fn high(&self) -> f64 {
        self.high.unwrap_or(1_000.0)
    }
    /// Medium threshold, default 100.
    pub fn medium(&self) -> f64 {
        self.medium.unwrap_or(100.0)
    }

    /// Severity of a priority: the highest level whose threshold it reaches.
    pub fn classify(&self, priority: f64) -> Severity {
        if priority >= self.critical() {
            Severity::Critical
        } else if priority >= self.high() {
            Severity::High
        } else if priority >= self.medium() {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// Thresholds must not be negative and must descend Critical ≥ High ≥ Medium.
    pub fn validate(&self) -> Result<(), ParamsError> {
        for (name, value) in [
            ("critical", self.critical),
            ("high", self.high),
            ("medium", self.medium),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(ParamsError::Invalid {
                    field: format!("severity.{name}"),
                    reason: format!("must be a finite number ≥ 0, got {v}"),
                });
            }
        }
        if !(self.critical() >= self.high() && self.high() >= self.medium()) {
            return Err(ParamsError::Invalid {
                field: "severity".into(),
                reason: format!(
                    "thresholds must descend critical ≥ high ≥ medium, got {} / {} / {}",
                    self.critical(),
                    self.high(),
                    self.medium()
                ),
            });
        }
        Ok(())
    }
}

fn check_range(field: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), ParamsError> {
    match value {
        Some(v) if !v.is_finite() || v < min || v > max => Err(invalid(
            field,
            format!("must be between {min} and {max}, got {v}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_requires_exactly_one_detector() {
        assert_eq!(DetectorSpec::default().kind(), Err(ParamsError::NoDetector));
        let one = DetectorSpec {
            demand_spike: Some(DemandSpikeParams::default()),
            ..Default::default()
        };
        assert_eq!(one.kind(), Ok(DetectorKind::DemandSpike));
        let two = DetectorSpec {
            demand_spike: Some(DemandSpikeParams::default()),
            order_at_risk: Some(OrderAtRiskParams::default()),
            ..Default::default()
        };
        let err = two.kind().unwrap_err();
        assert_eq!(
            err,
            ParamsError::SeveralDetectors("demandSpike, orderAtRisk".into())
        );
    }

    #[test]
    fn deserialises_camel_case_and_applies_defaults() {
        let spec: DetectorSpec = serde_json::from_value(serde_json::json!({
            "projectedStockout": {
                "horizonDays": 60,
                "safetyStock": {"mode": "ServiceLevel", "serviceLevel": 0.99}
            }
        }))
        .unwrap();
        assert_eq!(spec.validate(), Ok(DetectorKind::ProjectedStockout));
        let p = spec.projected_stockout.unwrap();
        assert_eq!(p.horizon_days(), Some(60));
        assert_eq!(p.history_days(), 90);
        assert_eq!(p.smoothing_alpha(), 0.1);
        assert_eq!(p.safety_stock().mode(), SafetyStockMode::ServiceLevel);
        assert_eq!(p.safety_stock().service_level(), 0.99);
        assert_eq!(p.safety_stock().days_of_cover(), 7.0);
        // Unset optionals are not written back, so a round trip keeps the object small.
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"horizonDays": 60, "safetyStock": {"mode": "ServiceLevel", "serviceLevel": 0.99}})
        );
    }

    #[test]
    fn validation_names_the_bad_field() {
        let spec = DetectorSpec {
            demand_spike: Some(DemandSpikeParams {
                recent_days: Some(30),
                baseline_days: Some(40),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("demandSpike.baselineDays"), "{err}");

        let spec = DetectorSpec {
            projected_stockout: Some(ProjectedStockoutParams {
                smoothing_alpha: Some(1.5),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("projectedStockout.smoothingAlpha"), "{err}");
    }

    #[test]
    fn field_threshold_validates_names() {
        let mut p = FieldThresholdParams {
            model: "stock.quant".into(),
            domain: "[]".into(),
            field: "quantity".into(),
            comparison: Comparison::Lt,
            value: 0.0,
            subject_field: None,
            severity: None,
        };
        assert!(p.validate().is_ok());
        p.model = "Stock Quant".into();
        assert!(p.validate().is_err());
        p.model = "stock.quant".into();
        p.field = "product_id.name".into();
        assert!(p.validate().is_err());
    }

    #[test]
    fn comparison_semantics() {
        assert!(Comparison::Gt.holds(2.0, 1.0));
        assert!(!Comparison::Gt.holds(1.0, 1.0));
        assert!(Comparison::Gte.holds(1.0, 1.0));
        assert!(Comparison::Lt.holds(-1.0, 0.0));
        assert!(Comparison::Lte.holds(0.0, 0.0));
        assert!(Comparison::Eq.holds(3.0, 3.0));
        assert!(Comparison::Ne.holds(3.0, 4.0));
    }

    #[test]
    fn severity_thresholds_classify_and_validate() {
        let t = SeverityThresholds::default();
        assert_eq!(t.classify(10_000.0), Severity::Critical);
        assert_eq!(t.classify(9_999.0), Severity::High);
        assert_eq!(t.classify(100.0), Severity::Medium);
        assert_eq!(t.classify(99.9), Severity::Low);
        let bad = SeverityThresholds {
            high: Some(20_000.0),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn schema_carries_ranges_and_descriptions() {
        let schema = schemars::schema_for!(DetectorSpec);
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("\"maximum\":730"), "{text}");
        assert!(text.contains("Days of sales history"), "{text}");
        assert!(text.contains("\"OrderpointMin\""), "{text}");
    }
}
