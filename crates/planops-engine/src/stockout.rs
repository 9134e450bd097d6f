//! Projected stockout, per product × warehouse (MRP-style projected available balance).
//!
//! Inputs read: `items` (on hand, dated receipts and deliveries, history, reordering
//! rule), `products` (cost, vendor lines), `warehouses` (codes).
//!
//! Day 0 is today; PAB(t) is the stock at the end of day t:
//!
//! ```text
//! PAB(t) = OnHand + R(t) − max(C(t), d·(t + 1))
//!   R(t) = receipts dated ≤ t      (overdue receipts count on day 0)
//!   C(t) = committed deliveries dated ≤ t (overdue ones count on day 0)
//!   d    = forecast daily demand (see stats::forecast_daily)
//! ```
//!
//! Taking the larger of cumulative committed orders and cumulative forecast is
//! forecast consumption: confirmed orders are part of the forecast, not extra demand,
//! until they exceed it.
//!
//! Lead time L: the reordering rule's lead days when Odoo computed them (and
//! `useOdooFigures`), else the main vendor line's `delay`, else
//! `defaultLeadTimeDays`. Horizon H: `horizonDays`, default L + review period + 7,
//! never shorter than L. Safety stock SS: the reordering rule's minimum, days of cover
//! × d, or z(serviceLevel) · σ_d · √L.
//!
//! Flagged when PAB(t) < SS for some t ≤ H. Action: Expedite when stock goes below
//! zero by day L (a replenishment ordered today cannot prevent it); OrderNow when
//! safety stock is breached by day L + review period; Plan otherwise.
//!
//! Numbers: stockout date (first PAB < 0), below-safety date, days of cover
//! (on hand + receipts within H) ÷ d, shortage max(SS − PAB), backlog max(−PAB), and
//! the suggested order quantity: Odoo's `qty_to_order` when it computed a positive
//! one; else max(max over t ≤ L + R of SS − PAB(t), S − PAB(L)) with S the reordering
//! rule's max(min, max) or SS + d·R without one, rounded up to the rule's multiple and
//! raised to the vendor's `min_qty`.
//!
//! Priority = impact × urgency with impact = shortage × `standard_price` (the
//! shortage quantity when the cost is 0) and urgency = [`urgency`](super::exception::urgency)
//! of the below-safety day against L. Expedite is at least High.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::exception::{
    self, ExceptionNumbers, Finding, NumberSource, PlanningException, RuleRef, Severity,
    SeverityBasis, StockoutAction, StockoutNumbers, Subject, SubjectKind,
};
use super::inputs::{
    DatedQty, PlanningInput, Product, StockItem, Warehouse, add_days, days_between,
};
use super::params::{ForecastMethod, ProjectedStockoutParams, SafetyStockMode, SeverityThresholds};
use super::season;
use super::stats::{self, DemandForecast};

/// Runs the projected-stockout detector over every item of `input`.
pub fn detect(
    params: &ProjectedStockoutParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Vec<PlanningException> {
    let products: HashMap<i64, &Product> = input.products.iter().map(|p| (p.id, p)).collect();
    let warehouses: HashMap<i64, &Warehouse> = input.warehouses.iter().map(|w| (w.id, w)).collect();
    let mut scratch = Scratch::default();
    let mut found = Vec::new();
    for item in &input.items {
        let product = products.get(&item.product_id).copied();
        if let Some(projection) = project_item(params, input.today, item, product, &mut scratch) {
            let warehouse = warehouses.get(&item.warehouse_id).copied();
            found.push(
                finding(params, input.today, item, product, warehouse, projection)
                    .into_exception(rule, thresholds),
            );
        }
    }
    found
}

/// Per-day buckets reused across items so the projection allocates nothing per item.
#[derive(Default)]
struct Scratch {
    receipts: Vec<f64>,
    deliveries: Vec<f64>,
    /// Expected demand per day ahead, for a seasonal forecast.
    seasonal_demand: Vec<f64>,
}

/// Where the lead time came from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LeadSource {
    Orderpoint,
    Supplier,
    Default,
}

#[derive(Debug, Clone, PartialEq)]
struct Projection<'a> {
    forecast: DemandForecast,
    lead_time: u32,
    lead_source: LeadSource,
    horizon: u32,
    safety_stock: f64,
    safety_source: SafetyStockMode,
    below_safety_day: u32,
    stockout_day: Option<u32>,
    shortage: f64,
    backlog: f64,
    projected_at_lead: f64,
    receipts_in_horizon: f64,
    suggested: f64,
    suggested_from_odoo: bool,
    raw_need: f64,
    min_qty: f64,
    multiple: f64,
    supplier_id: Option<i64>,
    supplier_name: Option<&'a str>,
    action: StockoutAction,
}

fn history_window(item: &StockItem, days: u32) -> &[f32] {
    let daily = &item.history.daily;
    &daily[daily.len().saturating_sub(days as usize)..]
}

fn project_item<'a>(
    params: &ProjectedStockoutParams,
    today: jiff::civil::Date,
    item: &StockItem,
    product: Option<&'a Product>,
    scratch: &mut Scratch,
) -> Option<Projection<'a>> {
    let orderpoint = item.orderpoint.as_ref();
    if orderpoint
        .and_then(|op| op.snoozed_until)
        .is_some_and(|until| until >= today)
    {
        return None;
    }
    let use_odoo = params.use_odoo_figures();
    let supplier = product.and_then(|p| p.main_supplier(today));

    let (lead_time, lead_source) = match (orderpoint.and_then(|op| op.lead_days), supplier) {
        (Some(days), _) if use_odoo => (days, LeadSource::Orderpoint),
        (_, Some(s)) => (s.delay_days, LeadSource::Supplier),
        _ => (params.default_lead_time_days(), LeadSource::Default),
    };
    let review = params.review_period_days();
    let horizon = params.horizon_for(lead_time);
    let len = horizon as usize + 1;
    let forecast = forecast(params, item, len, &mut scratch.seasonal_demand);
    let d = forecast.daily_rate;

    let ss_params = params.safety_stock();
    let (safety_stock, safety_source) = match (ss_params.mode(), orderpoint) {
        (SafetyStockMode::OrderpointMin, Some(op)) => (op.min_qty, SafetyStockMode::OrderpointMin),
        (SafetyStockMode::OrderpointMin | SafetyStockMode::DaysOfCover, _) => {
            (ss_params.days_of_cover() * d, SafetyStockMode::DaysOfCover)
        }
        (SafetyStockMode::ServiceLevel, _) => {
            let z = stats::inverse_normal_cdf(ss_params.service_level()).unwrap_or(0.0);
            (
                (z * forecast.std_dev * f64::from(lead_time).sqrt()).max(0.0),
                SafetyStockMode::ServiceLevel,
            )
        }
        (SafetyStockMode::None, _) => (0.0, SafetyStockMode::None),
    };

    bucket(&mut scratch.receipts, len, today, &item.receipts);
    bucket(&mut scratch.deliveries, len, today, &item.deliveries);

    let cycle_end = lead_time.saturating_add(review).min(horizon);
    let mut received = 0.0;
    let mut committed = 0.0;
    let mut below_safety_day = None;
    let mut stockout_day = None;
    let mut shortage: f64 = 0.0;
    let mut backlog: f64 = 0.0;
    let mut need_in_cycle: f64 = 0.0;
    let mut projected_at_lead = item.on_hand;
    let mut forecast_demand = 0.0;
    for t in 0..len {
        received += scratch.receipts[t];
        committed += scratch.deliveries[t];
        forecast_demand = if forecast.seasonal.is_some() {
            forecast_demand + scratch.seasonal_demand[t]
        } else {
            d * (t as f64 + 1.0)
        };
        let demand = committed.max(forecast_demand);
        let pab = item.on_hand + received - demand;
        let gap = safety_stock - pab;
        if gap > 0.0 && below_safety_day.is_none() {
            below_safety_day = Some(t as u32);
        }
        if pab < 0.0 && stockout_day.is_none() {
            stockout_day = Some(t as u32);
        }
        shortage = shortage.max(gap);
        backlog = backlog.max(-pab);
        if t as u32 <= cycle_end {
            need_in_cycle = need_in_cycle.max(gap);
        }
        if t as u32 == lead_time {
            projected_at_lead = pab;
        }
    }
    let below_safety_day = below_safety_day?;

    let action = match stockout_day {
        Some(day) if day <= lead_time => StockoutAction::Expedite,
        _ if below_safety_day <= cycle_end => StockoutAction::OrderNow,
        _ => StockoutAction::Plan,
    };

    let order_up_to = match orderpoint {
        Some(op) => op.min_qty.max(op.max_qty),
        None => safety_stock + d * f64::from(review),
    };
    let raw_need = need_in_cycle.max(order_up_to - projected_at_lead).max(0.0);
    let multiple = orderpoint.map_or(0.0, |op| op.qty_multiple);
    let min_qty = supplier.map_or(0.0, |s| s.min_qty);
    let odoo_qty = orderpoint
        .and_then(|op| op.qty_to_order)
        .filter(|q| use_odoo && *q > 0.0);
    let (suggested, suggested_from_odoo) = match odoo_qty {
        Some(q) => (q, true),
        None => (round_order_qty(raw_need, multiple, min_qty), false),
    };

    Some(Projection {
        forecast,
        lead_time,
        lead_source,
        horizon,
        safety_stock,
        safety_source,
        below_safety_day,
        stockout_day,
        shortage,
        backlog,
        projected_at_lead,
        receipts_in_horizon: received,
        suggested,
        suggested_from_odoo,
        raw_need,
        min_qty,
        multiple,
        supplier_id: supplier.map(|s| s.partner_id),
        supplier_name: supplier.map(|s| s.partner_name.as_str()),
        action,
    })
}

/// The demand forecast over the history window. A seasonal one (chosen, or
/// picked by `Auto` for a series that is not intermittent and shows a season)
/// also fills `seasonal_demand` with the expected demand of each of the `days`
/// days ahead; its rate is their mean and its spread that of the last
/// [`season::TREND_DAYS`], so the yearly swing itself does not count as noise.
fn forecast(
    params: &ProjectedStockoutParams,
    item: &StockItem,
    days: usize,
    seasonal_demand: &mut Vec<f64>,
) -> DemandForecast {
    let window = history_window(item, params.history_days());
    let method = params.forecast_method();
    let alpha = params.smoothing_alpha();
    let mut forecast = stats::forecast_daily(window, method, alpha);
    let candidate = match method {
        ForecastMethod::Seasonal => true,
        ForecastMethod::Auto => forecast.adi < stats::ADI_CUTOFF,
        _ => false,
    };
    if !candidate || window.len() < season::SEASON_DAYS + season::TREND_DAYS {
        return forecast;
    }
    let correlation = season::seasonality(window);
    let seasonal = method == ForecastMethod::Seasonal
        || correlation.is_some_and(|r| r >= season::SEASONAL_CORRELATION);
    if !seasonal {
        return forecast;
    }
    let Some(basis) = season::seasonal_profile(window, days, seasonal_demand) else {
        return forecast;
    };
    let recent = &window[window.len() - season::TREND_DAYS..];
    forecast.std_dev = stats::forecast_daily(recent, ForecastMethod::MovingAverage, alpha).std_dev;
    forecast.daily_rate = basis.same_period_rate * basis.trend;
    forecast.method = ForecastMethod::Seasonal;
    forecast.seasonal = Some((basis, correlation));
    forecast
}

/// Rounds a need up to the reordering rule's multiple (as Odoo does; a multiple of
/// 0 or 1 leaves it), then raises it to the vendor's minimum. No need, no order.
pub fn round_order_qty(need: f64, multiple: f64, min_qty: f64) -> f64 {
    if need <= 0.0 {
        return 0.0;
    }
    let rounded = if multiple > 0.0 {
        // Subtracting a hair first keeps 10.000000001 (float noise) from becoming 20.
        ((need / multiple) - 1e-9).ceil() * multiple
    } else {
        need
    };
    rounded.max(min_qty)
}

/// Rounds a quantity up to a unit of measure's rounding (Odoo's `uom.uom.rounding`,
/// 1 for Units in whole pieces, 0.01 by default), without float noise: an order
/// line of 3.1764633689667967 is not something a buyer can confirm as it is.
pub fn round_up_to_uom(qty: f64, rounding: f64) -> f64 {
    if rounding.is_nan() || rounding <= 0.0 || !qty.is_finite() {
        return qty;
    }
    let steps = ((qty / rounding) - 1e-9).ceil();
    // Keep only the digits the rounding has, so 0.1 * 3 reads 0.3.
    let digits = (-rounding.log10()).ceil().clamp(0.0, 12.0) as i32;
    let scale = 10f64.powi(digits);
    (steps * rounding * scale).round() / scale
}

/// Sums `moves` into day buckets 0..len (earlier dates into day 0, later than the
/// horizon dropped), reusing `buckets`.
fn bucket(buckets: &mut Vec<f64>, len: usize, today: jiff::civil::Date, moves: &[DatedQty]) {
    buckets.clear();
    buckets.resize(len, 0.0);
    for m in moves {
        let day = days_between(today, m.date).max(0);
        if let Some(slot) = usize::try_from(day).ok().and_then(|d| buckets.get_mut(d)) {
            *slot += m.qty;
        }
    }
}

/// A quantity as planners read it: whole numbers without decimals, else two.
struct Qty(f64);

impl std::fmt::Display for Qty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.0;
        if (q - q.round()).abs() < 1e-6 {
            write!(f, "{}", q.round())
        } else {
            write!(f, "{q:.2}")
        }
    }
}

fn method_name(method: ForecastMethod) -> &'static str {
    match method {
        ForecastMethod::Auto => "auto",
        ForecastMethod::MovingAverage => "moving average",
        ForecastMethod::Ses => "simple exponential smoothing",
        ForecastMethod::Sba => "Croston-SBA",
        ForecastMethod::Seasonal => "seasonal",
    }
}

pub(crate) fn item_subject(
    item: &StockItem,
    product: Option<&Product>,
    warehouse: Option<&Warehouse>,
) -> Subject {
    let mut label = String::with_capacity(64);
    let _ = match product {
        Some(p) => match p.default_code.as_deref() {
            Some(code) if !code.is_empty() => write!(label, "[{code}] {}", p.name),
            _ => write!(label, "{}", p.name),
        },
        None => write!(label, "product #{}", item.product_id),
    };
    let _ = match warehouse {
        Some(w) => write!(label, " × {}", w.code),
        None => write!(label, " × warehouse #{}", item.warehouse_id),
    };
    Subject {
        kind: SubjectKind::ProductWarehouse,
        model: "product.product".into(),
        ids: vec![item.product_id, item.warehouse_id],
        label,
    }
}

fn finding(
    params: &ProjectedStockoutParams,
    today: jiff::civil::Date,
    item: &StockItem,
    product: Option<&Product>,
    warehouse: Option<&Warehouse>,
    p: Projection<'_>,
) -> Finding {
    let subject = item_subject(item, product, warehouse);
    let d = p.forecast.daily_rate;
    let below_safety_date = add_days(today, i64::from(p.below_safety_day));
    let stockout_date = p.stockout_day.map(|day| add_days(today, i64::from(day)));
    let days_of_cover = (d > 0.0).then(|| (item.on_hand + p.receipts_in_horizon) / d);
    let unit_cost = product.map_or(0.0, |pr| pr.standard_price);
    let impact = if unit_cost > 0.0 {
        p.shortage * unit_cost
    } else {
        p.shortage
    };
    let urgency = exception::urgency(i64::from(p.below_safety_day), p.lead_time);
    let floor = (p.action == StockoutAction::Expedite).then_some(Severity::High);

    let daily_demand_source = match p.forecast.seasonal {
        Some((basis, correlation)) => format!(
            "the same {} days of the last {} year(s) of sales history ({:.2}/day) × trend {:.2} (the last {} days at {:.2}/day against {:.2}/day a year before, bounded to {}–{}){}",
            p.horizon + 1,
            basis.seasons,
            basis.same_period_rate,
            basis.trend,
            season::TREND_DAYS,
            basis.recent_rate,
            basis.recent_rate_before,
            season::TREND_BOUNDS.0,
            season::TREND_BOUNDS.1,
            correlation.map_or_else(String::new, |r| format!(
                "; weekly demand correlates r = {r:.2} with the same weeks a year before"
            )),
        ),
        None => format!(
            "{} (α = {}) over the last {} days of sales history; {} days with demand",
            method_name(p.forecast.method),
            params.smoothing_alpha(),
            p.forecast.days,
            p.forecast.demand_days
        ),
    };
    let mut provenance = vec![
        NumberSource::odoo("onHand", "product.product.qty_available in the warehouse"),
        NumberSource::planops("dailyDemand", daily_demand_source),
        NumberSource::planops(
            "belowSafetyDate",
            "day-by-day projection: on hand + dated receipts − max(committed deliveries, forecast)",
        ),
    ];
    if item.virtual_available.is_some() {
        provenance.push(NumberSource::odoo(
            "virtualAvailable",
            "product.product.virtual_available in the warehouse",
        ));
    }
    provenance.push(match p.lead_source {
        LeadSource::Orderpoint => {
            NumberSource::odoo("leadTimeDays", "stock.warehouse.orderpoint lead days")
        }
        LeadSource::Supplier => NumberSource::odoo(
            "leadTimeDays",
            "product.supplierinfo.delay of the main vendor",
        ),
        LeadSource::Default => NumberSource::planops(
            "leadTimeDays",
            "rule's defaultLeadTimeDays (no vendor or reordering rule)",
        ),
    });
    provenance.push(match p.safety_source {
        SafetyStockMode::OrderpointMin => {
            NumberSource::odoo("safetyStock", "stock.warehouse.orderpoint.product_min_qty")
        }
        SafetyStockMode::DaysOfCover => NumberSource::planops(
            "safetyStock",
            format!(
                "{} days of cover × daily demand",
                params.safety_stock().days_of_cover()
            ),
        ),
        SafetyStockMode::ServiceLevel => NumberSource::planops(
            "safetyStock",
            format!(
                "z({}) × σ daily demand {:.3} × √lead time",
                params.safety_stock().service_level(),
                p.forecast.std_dev
            ),
        ),
        SafetyStockMode::None => NumberSource::planops("safetyStock", "none (mode None)"),
    });
    let odoo_forecast_at_lead = item.orderpoint.as_ref().and_then(|op| op.qty_forecast);
    if odoo_forecast_at_lead.is_some() {
        provenance.push(NumberSource::odoo(
            "odooForecastAtLead",
            "stock.warehouse.orderpoint.qty_forecast",
        ));
    }
    provenance.push(if p.suggested_from_odoo {
        NumberSource::odoo(
            "suggestedOrderQty",
            "stock.warehouse.orderpoint.qty_to_order",
        )
    } else {
        NumberSource::planops(
            "suggestedOrderQty",
            format!(
                "need {} rounded up to multiple {} and vendor minimum {}",
                Qty(p.raw_need),
                Qty(p.multiple),
                Qty(p.min_qty)
            ),
        )
    });

    let what = match p.action {
        StockoutAction::Expedite => "expedite",
        StockoutAction::OrderNow => "order now",
        StockoutAction::Plan => "plan replenishment",
    };
    let summary = match stockout_date {
        Some(date) => format!("{}: stockout projected on {date} ({what})", subject.label),
        None => format!(
            "{}: below safety stock on {below_safety_date} ({what})",
            subject.label
        ),
    };
    // One buffer and `write!` (infallible on a String): this runs for every flagged
    // item, and temporary strings per sentence cost more than the projection itself.
    let mut narrative = String::with_capacity(400);
    let _ = write!(
        narrative,
        "{} has {} on hand with forecast demand of {:.2}/day ({}",
        subject.label,
        Qty(item.on_hand),
        d,
        method_name(p.forecast.method),
    );
    if let Some((basis, _)) = p.forecast.seasonal {
        let _ = write!(
            narrative,
            ": the same days last year sold {:.2}/day, and this year runs at {:.2}× last year's pace",
            basis.same_period_rate, basis.trend
        );
    }
    let _ = write!(
        narrative,
        "). Projected stock falls below the safety stock of {} on {below_safety_date}",
        Qty(p.safety_stock),
    );
    match stockout_date {
        Some(date) => {
            let _ = write!(narrative, " and runs out on {date}");
        }
        None => narrative.push_str(" but stays above zero within the horizon"),
    }
    let _ = write!(
        narrative,
        "; a replenishment ordered today arrives after {} days",
        p.lead_time
    );
    if let Some(name) = p.supplier_name {
        let _ = write!(narrative, " from {name}");
    }
    let _ = write!(
        narrative,
        ", when projected stock is {}. ",
        Qty(p.projected_at_lead)
    );
    if let Some(cover) = days_of_cover {
        let _ = write!(narrative, "Days of cover: {cover:.1}. ");
    }
    if p.suggested > 0.0 {
        let _ = write!(
            narrative,
            "Suggested order: {}{}.",
            Qty(p.suggested),
            if p.suggested_from_odoo {
                " (Odoo's quantity to order)"
            } else {
                ""
            }
        );
    } else {
        narrative.push_str("No order needed yet within the review period.");
    }

    let numbers = StockoutNumbers {
        today,
        on_hand: item.on_hand,
        virtual_available: item.virtual_available,
        daily_demand: d,
        demand_class: p.forecast.class,
        lead_time_days: p.lead_time,
        horizon_days: p.horizon,
        safety_stock: p.safety_stock,
        below_safety_date,
        stockout_date,
        days_of_cover,
        projected_at_lead_time: p.projected_at_lead,
        odoo_forecast_at_lead,
        shortage_qty: p.shortage,
        backlog_qty: p.backlog,
        suggested_order_qty: p.suggested,
        supplier_id: p.supplier_id,
        action: p.action,
    };
    Finding {
        subject,
        numbers: ExceptionNumbers::ProjectedStockout(numbers),
        impact,
        urgency,
        severity: SeverityBasis::Priority { floor },
        provenance,
        summary,
        narrative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exception::DetectorKind;
    use crate::inputs::{DemandHistory, Orderpoint, SupplierInfo};
    use crate::params::SafetyStockParams;
    use jiff::civil::{Date, date};

    const TODAY: Date = date(2025, 3, 1);

    fn product(min_qty: f64, delay: u32) -> Product {
        Product {
            id: 1,
            default_code: Some("DESK".into()),
            name: "Desk".into(),
            standard_price: 4.0,
            suppliers: vec![SupplierInfo {
                id: 1,
                partner_id: 77,
                partner_name: "Acme".into(),
                min_qty,
                delay_days: delay,
                price: 3.0,
                sequence: 1,
                date_start: None,
                date_end: None,
            }],
        }
    }

    fn item(on_hand: f64, daily: Vec<f32>) -> StockItem {
        StockItem {
            product_id: 1,
            warehouse_id: 2,
            on_hand,
            history: DemandHistory {
                end: Some(date(2025, 2, 28)),
                daily,
            },
            ..Default::default()
        }
    }

    fn input(items: Vec<StockItem>, product: Product) -> PlanningInput {
        let mut input = PlanningInput::new(TODAY);
        input.products = vec![product];
        input.warehouses = vec![Warehouse {
            id: 2,
            code: "WH".into(),
        }];
        input.items = items;
        input
    }

    fn days_of_cover(days: f64) -> ProjectedStockoutParams {
        ProjectedStockoutParams {
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::DaysOfCover),
                days_of_cover: Some(days),
                service_level: None,
            }),
            ..Default::default()
        }
    }

    const RULE: RuleRef<'static> = RuleRef {
        namespace: "ns",
        rule: "stockout",
    };

    fn numbers(e: &PlanningException) -> &StockoutNumbers {
        match &e.numbers {
            ExceptionNumbers::ProjectedStockout(n) => n,
            other => panic!("wrong numbers {other:?}"),
        }
    }

    /// `days` of history where each year, 10 to 70 days after today's date, demand
    /// runs at 20/day instead of 2.
    fn yearly_peak_ahead(days: usize) -> Vec<f32> {
        (0..days)
            .map(|i| {
                let day_of_season = (i + 3 * season::SEASON_DAYS - days) % season::SEASON_DAYS;
                if (10..70).contains(&day_of_season) {
                    20.0
                } else {
                    2.0
                }
            })
            .collect()
    }

    #[test]
    fn a_peak_last_year_is_forecast_this_year() {
        // 65 on hand, no safety stock, 30 days ahead. At the recent 2/day the stock
        // lasts the horizon (cumulative demand 60 on day 29).
        // The same days last year: 2/day for 10 days, then 20/day; this year runs
        // at last year's pace (trend 1). Cumulative 20 by day 9, then +20 a day:
        // above 65 from day 12.
        let params = |method, history_days| ProjectedStockoutParams {
            horizon_days: Some(30),
            history_days: Some(history_days),
            forecast_method: Some(method),
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::None),
                ..Default::default()
            }),
            ..Default::default()
        };
        let run = |method, history: Vec<f32>, history_days| {
            detect(
                &params(method, history_days),
                &RULE,
                &SeverityThresholds::default(),
                &input(vec![item(65.0, history)], product(0.0, 5)),
            )
        };
        // Two years of history: Auto sees the season (weekly r close to 1).
        let two_years = yearly_peak_ahead(2 * season::SEASON_DAYS + season::TREND_DAYS);
        assert!(run(ForecastMethod::Ses, two_years.clone(), 730).is_empty());
        let found = run(ForecastMethod::Auto, two_years, 730);
        assert_eq!(found.len(), 1);
        let ExceptionNumbers::ProjectedStockout(n) = &found[0].numbers else {
            panic!("a stockout");
        };
        assert_eq!(n.stockout_date, Some(add_days(TODAY, 12)));
        assert!(
            found[0].narrative.contains("the same days last year sold"),
            "{}",
            found[0].narrative
        );
        let source = found[0]
            .provenance
            .iter()
            .find(|s| s.number == "dailyDemand")
            .expect("dailyDemand provenance");
        assert!(source.detail.contains("trend 1.00"), "{}", source.detail);
        assert!(
            source.detail.contains("correlates r = "),
            "{}",
            source.detail
        );

        // A year and 8 weeks: too short for Auto to judge, enough for Seasonal.
        let one_year = yearly_peak_ahead(season::SEASON_DAYS + season::TREND_DAYS);
        assert!(run(ForecastMethod::Auto, one_year.clone(), 420).is_empty());
        let found = run(ForecastMethod::Seasonal, one_year, 420);
        let ExceptionNumbers::ProjectedStockout(n) = &found[0].numbers else {
            panic!("a stockout");
        };
        assert_eq!(n.stockout_date, Some(add_days(TODAY, 12)));
        // Shorter still: Seasonal forecasts as Auto does, and nothing is flagged.
        let short = yearly_peak_ahead(200);
        assert!(run(ForecastMethod::Seasonal, short, 200).is_empty());
    }

    #[test]
    fn steady_demand_hand_computed() {
        // d = 10/day (constant history: SES stays at 10), SS = 2 days × 10 = 20, L = 5,
        // R = 7, H = 5 + 7 + 7 = 19. PAB(t) = 50 − 10(t + 1):
        // t=2 → 20 (not below), t=3 → 10 < 20 → below safety 2025-03-04;
        // t=5 → −10 < 0 → stockout 2025-03-06 ≤ L → Expedite.
        // Shortage = 20 − PAB(19) = 20 − (50 − 200) = 170; backlog 150.
        // Need in cycle (t ≤ 12) = 20 − (50 − 130) = 100; S − PAB(L) = (20 + 70) − (−10) = 100.
        // Vendor minimum 120 → suggest 120. Cover = 50 / 10 = 5 days.
        // Impact = 170 × cost 4 = 680, urgency 1 (day 3 ≤ L) → priority 680 (Medium),
        // raised to High by the Expedite floor.
        let found = detect(
            &days_of_cover(2.0),
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(50.0, vec![10.0; 90])], product(120.0, 5)),
        );
        assert_eq!(found.len(), 1);
        let e = &found[0];
        let n = numbers(e);
        assert_eq!(n.daily_demand, 10.0);
        assert_eq!(n.safety_stock, 20.0);
        assert_eq!(n.lead_time_days, 5);
        assert_eq!(n.horizon_days, 19);
        assert_eq!(n.below_safety_date, date(2025, 3, 4));
        assert_eq!(n.stockout_date, Some(date(2025, 3, 6)));
        assert_eq!(n.action, StockoutAction::Expedite);
        assert_eq!(n.shortage_qty, 170.0);
        assert_eq!(n.backlog_qty, 150.0);
        assert_eq!(n.projected_at_lead_time, -10.0);
        assert_eq!(n.suggested_order_qty, 120.0);
        assert_eq!(n.days_of_cover, Some(5.0));
        assert_eq!(n.supplier_id, Some(77));
        assert_eq!(e.impact, 680.0);
        assert_eq!(e.urgency, 1.0);
        assert_eq!(e.priority, 680.0);
        assert_eq!(e.severity, Severity::High);
        assert_eq!(e.subject.label, "[DESK] Desk × WH");
        assert_eq!(
            e.fingerprint,
            exception::fingerprint(
                "ns",
                "stockout",
                DetectorKind::ProjectedStockout,
                "product.product:1@stock.warehouse:2"
            )
        );
        assert!(
            e.narrative.contains("runs out on 2025-03-06"),
            "{}",
            e.narrative
        );
        assert!(e.summary.contains("expedite"));
        assert!(
            e.provenance
                .iter()
                .any(|s| s.number == "leadTimeDays" && s.origin == exception::Origin::Odoo)
        );
    }

    #[test]
    fn receipts_and_committed_deliveries_shift_the_projection() {
        // d = 2/day, SS = 0 (mode None), L = 3, R = 7, H = 17. On hand 10.
        // Receipt of 30 on day 4; a committed delivery of 15 on day 1.
        // C(t): 0, 15, 15, ...; F(t) = 2(t+1); demand = max(C, F):
        // t=0: max(0, 2) = 2 → PAB 8; t=1: max(15, 4) = 15 → −5 < 0 → stockout day 1.
        // t=4: R = 30, demand max(15, 10) = 15 → 25.
        // Stockout on day 1 ≤ L → Expedite. Backlog max = 5 (t=1..3: −5, −5, −5;
        // t=3: max(15, 8) = 15 → −5).
        let mut it = item(10.0, vec![2.0; 30]);
        it.receipts = vec![DatedQty {
            date: date(2025, 3, 5),
            qty: 30.0,
        }];
        it.deliveries = vec![DatedQty {
            date: date(2025, 3, 2),
            qty: 15.0,
        }];
        let params = ProjectedStockoutParams {
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::None),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![it], product(0.0, 3)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.stockout_date, Some(date(2025, 3, 2)));
        assert_eq!(n.below_safety_date, date(2025, 3, 2));
        assert_eq!(n.backlog_qty, 5.0);
        assert_eq!(n.action, StockoutAction::Expedite);
        // Cover = (10 + 30) / 2 = 20 days.
        assert_eq!(n.days_of_cover, Some(20.0));
    }

    #[test]
    fn no_history_and_no_orders_is_not_flagged() {
        let found = detect(
            &days_of_cover(7.0),
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(5.0, vec![])], product(0.0, 5)),
        );
        assert!(found.is_empty());
    }

    #[test]
    fn negative_on_hand_is_a_stockout_today() {
        // No history, on hand −4: PAB(0) = −4 < SS 0 → below safety and stockout today.
        let found = detect(
            &days_of_cover(7.0),
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(-4.0, vec![])], product(0.0, 5)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.stockout_date, Some(TODAY));
        assert_eq!(n.backlog_qty, 4.0);
        assert_eq!(n.days_of_cover, None);
        assert_eq!(n.action, StockoutAction::Expedite);
        // Need = SS + d·R − PAB(L) = 0 + 0 − (−4) = 4, no minimum.
        assert_eq!(n.suggested_order_qty, 4.0);
        // Impact 4 × 4 = 16, urgency 1 → Low by thresholds, High by floor.
        assert_eq!(found[0].priority, 16.0);
        assert_eq!(found[0].severity, Severity::High);
    }

    #[test]
    fn zero_lead_time_and_service_level_safety_stock() {
        // Lead time 0: SS = z·σ·√0 = 0 whatever the variability; R = 7, H = 14.
        // History alternates 0 and 8 (mean 4, SBA since ADI = 2):
        // z = 8 every 2 days → p: first demand on day 2 (q = 2), then q = 2 → p = 2;
        // rate = 0.95 · 8 / 2 = 3.8. On hand 20: PAB(t) = 20 − 3.8(t+1) < 0 first at
        // t = 5 (20 − 22.8). L = 0 < 5 → not Expedite; breach day 5 ≤ L + R = 7 → OrderNow.
        let daily: Vec<f32> = (0..60)
            .map(|i| if i % 2 == 1 { 8.0 } else { 0.0 })
            .collect();
        let params = ProjectedStockoutParams {
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::ServiceLevel),
                service_level: Some(0.95),
                days_of_cover: None,
            }),
            ..Default::default()
        };
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(20.0, daily)], product(0.0, 0)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.lead_time_days, 0);
        assert_eq!(n.safety_stock, 0.0);
        assert!((n.daily_demand - 3.8).abs() < 1e-9, "{}", n.daily_demand);
        assert_eq!(n.demand_class, exception::DemandClass::Intermittent);
        assert_eq!(n.stockout_date, Some(date(2025, 3, 6)));
        assert_eq!(n.action, StockoutAction::OrderNow);
        assert_eq!(n.horizon_days, 14);
    }

    #[test]
    fn service_level_safety_stock_by_hand() {
        // History 10, 20 alternating: σ = 5 (population), L = 4, z(0.95) = 1.644854.
        // SS = 1.644854 × 5 × 2 = 16.44854.
        let daily: Vec<f32> = (0..90)
            .map(|i| if i % 2 == 0 { 10.0 } else { 20.0 })
            .collect();
        let params = ProjectedStockoutParams {
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::ServiceLevel),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(30.0, daily)], product(0.0, 4)),
        );
        let n = numbers(&found[0]);
        assert!(
            (n.safety_stock - 16.448_536).abs() < 1e-5,
            "{}",
            n.safety_stock
        );
    }

    #[test]
    fn odoo_figures_win_when_present() {
        // The reordering rule says lead 9 days, min 40, Odoo wants 75 ordered.
        // Flat 5/day, on hand 60 → PAB(t) = 60 − 5(t+1) < 40 first at t = 4.
        let mut it = item(60.0, vec![5.0; 90]);
        it.virtual_available = Some(60.0);
        it.orderpoint = Some(Orderpoint {
            id: 9,
            min_qty: 40.0,
            max_qty: 100.0,
            qty_multiple: 25.0,
            qty_forecast: Some(15.0),
            qty_to_order: Some(75.0),
            lead_days: Some(9),
            snoozed_until: None,
        });
        let params = ProjectedStockoutParams::default();
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![it.clone()], product(0.0, 3)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.lead_time_days, 9);
        assert_eq!(n.safety_stock, 40.0);
        assert_eq!(n.below_safety_date, date(2025, 3, 5));
        assert_eq!(n.suggested_order_qty, 75.0);
        assert_eq!(n.odoo_forecast_at_lead, Some(15.0));
        let src = found[0]
            .provenance
            .iter()
            .find(|s| s.number == "suggestedOrderQty")
            .unwrap();
        assert_eq!(src.origin, exception::Origin::Odoo);

        // Without Odoo's figures: L = vendor delay 3, PAB(3) = 40;
        // need = max(cycle gap, max(40,100) − 40 = 60); cycle t ≤ 10: 40 − (60 − 55) = 35 → 60,
        // rounded up to the multiple 25 → 75.
        let params = ProjectedStockoutParams {
            use_odoo_figures: Some(false),
            ..Default::default()
        };
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![it.clone()], product(0.0, 3)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.lead_time_days, 3);
        assert_eq!(n.projected_at_lead_time, 40.0);
        assert_eq!(n.suggested_order_qty, 75.0);

        // A snoozed reordering rule silences the item.
        it.orderpoint.as_mut().unwrap().snoozed_until = Some(date(2025, 3, 10));
        let found = detect(
            &ProjectedStockoutParams::default(),
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![it], product(0.0, 3)),
        );
        assert!(found.is_empty());
    }

    #[test]
    fn plan_action_for_a_distant_breach_has_low_urgency() {
        // d = 1/day, on hand 100, L = 2, SS 0, explicit horizon 120:
        // PAB(t) = 100 − (t+1) < 0 at t = 100 → Plan; urgency = 2/100 = 0.02.
        let params = ProjectedStockoutParams {
            horizon_days: Some(120),
            safety_stock: Some(SafetyStockParams {
                mode: Some(SafetyStockMode::None),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(vec![item(100.0, vec![1.0; 90])], product(0.0, 2)),
        );
        let n = numbers(&found[0]);
        assert_eq!(n.stockout_date, Some(add_days(TODAY, 100)));
        assert_eq!(n.action, StockoutAction::Plan);
        assert!((found[0].urgency - 0.02).abs() < 1e-12);
        assert_eq!(found[0].severity, Severity::Low);
        // Nothing to order within the review period: PAB(2) = 97 > S = 0 + 1·7.
        assert_eq!(n.suggested_order_qty, 0.0);
    }

    #[test]
    fn uom_rounding_is_upwards_and_clean() {
        assert_eq!(round_up_to_uom(3.1764633689667967, 0.01), 3.18);
        assert_eq!(round_up_to_uom(3.1764633689667967, 1.0), 4.0);
        assert_eq!(round_up_to_uom(3.0000000001, 1.0), 3.0);
        assert_eq!(round_up_to_uom(0.25, 0.1), 0.3);
        assert_eq!(round_up_to_uom(12.0, 0.0), 12.0);
    }

    #[test]
    fn rounding_rules() {
        assert_eq!(round_order_qty(0.0, 10.0, 50.0), 0.0);
        assert_eq!(round_order_qty(11.0, 10.0, 0.0), 20.0);
        assert_eq!(round_order_qty(10.000_000_000_1, 10.0, 0.0), 10.0);
        assert_eq!(round_order_qty(7.5, 0.0, 0.0), 7.5);
        assert_eq!(round_order_qty(7.5, 0.0, 12.0), 12.0);
        assert_eq!(round_order_qty(30.0, 25.0, 40.0), 50.0);
    }
}
