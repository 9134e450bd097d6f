//! Demand spike, per product × warehouse, with a robust z-score.
//!
//! Inputs read: `items` (history, on hand), `products` (cost, vendor lead time),
//! `warehouses`.
//!
//! The last `recentDays` of history (ending on the series' last day) form the recent
//! window with total x. The `baselineDays` before it are cut into non-overlapping
//! windows of the same length, newest first (at least 3 are needed, else the item is
//! skipped: too little history to call anything unusual). Then
//!
//! ```text
//! M = 0.6745 · (x − median) / MAD        (MeanAD fallback when MAD = 0, see stats)
//! ```
//!
//! Comparing window totals rather than single days keeps intermittent items (mostly
//! zero days) from scoring a spike on every sale. An upward spike needs M ≥ threshold,
//! x ≥ `minRecentQty` and x − median ≥ `minChangeQty`, so noise on slow movers is not
//! flagged; a downward one M ≤ −threshold, a baseline median ≥ `minRecentQty` and
//! median − x ≥ `minChangeQty`. When the baseline has no spread at all (every window
//! equal, e.g. a dead item that suddenly sells) M is undefined and the volume rules
//! alone decide.
//!
//! With `seasonal`, where the history shows a season ([`season::seasonality`]
//! r ≥ 0.5), the same windows a season (52 weeks) earlier give the lift
//! f = (last year's recent window) / (median of last year's baseline windows),
//! and the recent total is judged against the baseline scaled by it: the
//! z-score of x / f, and the change x − f · median. A December like last
//! December is then not a spike; a December twice last December's lift is.
//!
//! Priority = impact × urgency: impact = |x − median| × `standard_price` (the quantity
//! when the cost is 0); urgency of an upward spike = [`urgency`](super::exception::urgency)
//! of the days on hand lasts at the recent rate against the vendor lead time, of a
//! downward spike 1 (the overstock is already building).

use std::collections::HashMap;

use super::exception::{
    self, ExceptionNumbers, Finding, NumberSource, PlanningException, RuleRef, SeverityBasis,
    SpikeNumbers,
};
use super::inputs::{PlanningInput, Product, Warehouse, add_days};
use super::params::{DemandSpikeParams, ForecastMethod, SeverityThresholds, SpikeDirection};
use super::season;
use super::stats;
use super::stockout::item_subject;

/// Fewest baseline windows needed to judge a spike.
pub const MIN_BASELINE_WINDOWS: usize = 3;

/// Runs the demand-spike detector over every item of `input`.
pub fn detect(
    params: &DemandSpikeParams,
    rule: &RuleRef<'_>,
    thresholds: &SeverityThresholds,
    input: &PlanningInput,
) -> Vec<PlanningException> {
    let products: HashMap<i64, &Product> = input.products.iter().map(|p| (p.id, p)).collect();
    let warehouses: HashMap<i64, &Warehouse> = input.warehouses.iter().map(|w| (w.id, w)).collect();
    let recent = params.recent_days().max(1) as usize;
    let baseline_days = params.baseline_days() as usize;
    let threshold = params.threshold();
    let direction = params.direction();
    let mut windows: Vec<f64> = Vec::new();
    let mut scratch: Vec<f64> = Vec::new();
    let mut found = Vec::new();

    for item in &input.items {
        let series = &item.history.daily;
        if series.len() < recent * (MIN_BASELINE_WINDOWS + 1) {
            continue;
        }
        let (before, recent_slice) = series.split_at(series.len() - recent);
        let x: f64 = recent_slice.iter().map(|&v| f64::from(v).max(0.0)).sum();
        let window_count = (baseline_days / recent).min(before.len() / recent);
        if window_count < MIN_BASELINE_WINDOWS {
            continue;
        }
        windows.clear();
        windows.extend(
            before
                .rchunks_exact(recent)
                .take(window_count)
                .map(|w| w.iter().map(|&v| f64::from(v).max(0.0)).sum::<f64>()),
        );
        let lift = if params.seasonal() {
            seasonal_lift(series, recent, window_count, &mut scratch)
        } else {
            None
        };
        let factor = lift.map_or(1.0, |l| l.factor);
        let score = stats::robust_z(x / factor, &windows, &mut scratch);
        let expected = score.median * factor;
        let change = x - expected;
        let up = change >= params.min_change_qty()
            && x >= params.min_recent_qty()
            && score.z.is_none_or(|z| z >= threshold);
        let down = -change >= params.min_change_qty()
            && expected >= params.min_recent_qty()
            && score.z.is_none_or(|z| z <= -threshold);
        let flagged = match direction {
            SpikeDirection::Up => up,
            SpikeDirection::Down => down,
            SpikeDirection::Both => up || down,
        };
        if !flagged {
            continue;
        }

        let product = products.get(&item.product_id).copied();
        let warehouse = warehouses.get(&item.warehouse_id).copied();
        let subject = item_subject(item, product, warehouse);
        let recent_rate = x / recent as f64;
        // on hand ÷ (x / recent), written so whole numbers stay exact.
        let cover = (x > 0.0).then(|| item.on_hand.max(0.0) * recent as f64 / x);
        let lead = product
            .and_then(|p| p.main_supplier(input.today))
            .map_or(0, |s| s.delay_days);
        let urgency = if change > 0.0 {
            exception::urgency(cover.map_or(i64::MAX, |c| c.floor() as i64), lead)
        } else {
            1.0
        };
        let cost = product.map_or(0.0, |p| p.standard_price);
        let impact = if cost > 0.0 {
            change.abs() * cost
        } else {
            change.abs()
        };
        let class = stats::forecast_daily(
            &before[before.len() - window_count * recent..],
            ForecastMethod::MovingAverage,
            0.1,
        )
        .class;

        let window_end = item.history.end.unwrap_or(add_days(input.today, -1));
        let window_start = add_days(window_end, 1 - recent as i64);
        let word = if change > 0.0 { "above" } else { "below" };
        let z_text = score.z.map_or_else(
            || "undefined (baseline never varies)".to_owned(),
            |z| format!("{z:.2}"),
        );
        let summary = match lift {
            Some(_) => format!(
                "{}: demand {x:.0} in the last {recent} days, {word} the {expected:.0} expected for the season",
                subject.label
            ),
            None => format!(
                "{}: demand {x:.0} in the last {recent} days, {word} the usual {:.0}",
                subject.label, score.median
            ),
        };
        let mut narrative = format!(
            "{} sold {x:.0} between {window_start} and {window_end}, against a median of {:.0} (MAD {:.1}) over the previous {window_count} windows of {recent} days",
            subject.label, score.median, score.mad
        );
        if let Some(l) = lift {
            narrative.push_str(&format!(
                ". A year earlier the same {recent} days sold {:.0} against a median of {:.0} in the windows before them, a seasonal lift of {:.2}× (weekly demand correlates r = {:.2} with the same weeks a year before), so {expected:.0} was expected",
                l.last_year_recent, l.last_year_median, l.factor, l.correlation
            ));
        }
        narrative.push_str(&format!(
            "; robust z-score {z_text} (threshold {threshold})."
        ));
        if let Some(c) = cover {
            narrative.push_str(&format!(
                " At the recent rate of {recent_rate:.1}/day, the {:.0} on hand last {c:.1} days (vendor lead time {lead} days).",
                item.on_hand
            ));
        }
        let mut provenance = vec![
            NumberSource::planops(
                "recentQty",
                format!("sum of daily sales history over the last {recent} days"),
            ),
            NumberSource::planops(
                "robustZ",
                "0.6745 × (recent − median) / MAD of baseline window totals",
            ),
            NumberSource::odoo("onHand", "product.product.qty_available in the warehouse"),
        ];
        if let Some(l) = lift {
            provenance.push(NumberSource::planops(
                "seasonalFactor",
                format!(
                    "the recent window a season (52 weeks) earlier, {:.0}, over the median of the baseline windows then, {:.0}",
                    l.last_year_recent, l.last_year_median
                ),
            ));
        }
        let numbers = SpikeNumbers {
            window_start,
            window_end,
            recent_qty: x,
            baseline_median: score.median,
            baseline_mad: score.mad,
            baseline_windows: window_count as u32,
            robust_z: score.z,
            change_qty: change,
            days_of_cover_at_recent_rate: cover,
            demand_class: class,
            seasonal_factor: lift.map(|l| l.factor),
        };
        let finding = Finding {
            subject,
            numbers: ExceptionNumbers::DemandSpike(numbers),
            impact,
            urgency,
            severity: SeverityBasis::Priority { floor: None },
            provenance,
            summary,
            narrative,
        };
        found.push(finding.into_exception(rule, thresholds));
    }
    found
}

/// How the recent window stood against the baseline windows a season earlier.
#[derive(Debug, Clone, Copy)]
struct SeasonalLift {
    factor: f64,
    last_year_recent: f64,
    last_year_median: f64,
    correlation: f64,
}

/// The lift of the recent window's dates last season, when the series shows a
/// season and last season had demand in both the window and its baseline.
fn seasonal_lift(
    series: &[f32],
    recent: usize,
    window_count: usize,
    scratch: &mut Vec<f64>,
) -> Option<SeasonalLift> {
    let correlation = season::seasonality(series)?;
    if correlation < season::SEASONAL_CORRELATION {
        return None;
    }
    let last_year_recent = season::window_a_season_before(series, 0, recent)?;
    scratch.clear();
    for w in 1..=window_count {
        scratch.push(season::window_a_season_before(series, w * recent, recent)?);
    }
    let last_year_median = stats::median_in_place(scratch)?;
    (last_year_median > 0.0 && last_year_recent > 0.0).then(|| SeasonalLift {
        factor: last_year_recent / last_year_median,
        last_year_recent,
        last_year_median,
        correlation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exception::{DemandClass, Severity};
    use crate::inputs::{DemandHistory, StockItem};
    use jiff::civil::date;

    const RULE: RuleRef<'static> = RuleRef {
        namespace: "ns",
        rule: "spike",
    };

    /// One value per week on its first day (an intermittent-looking series), then the
    /// recent week.
    fn weekly(sums: &[f32], recent: &[f32]) -> Vec<f32> {
        let mut daily = Vec::new();
        for &s in sums {
            daily.push(s);
            daily.extend([0.0; 6]);
        }
        daily.extend_from_slice(recent);
        daily
    }

    fn input(daily: Vec<f32>, on_hand: f64) -> PlanningInput {
        let mut input = PlanningInput::new(date(2025, 3, 1));
        input.items.push(StockItem {
            product_id: 5,
            warehouse_id: 1,
            on_hand,
            history: DemandHistory {
                end: Some(date(2025, 2, 28)),
                daily,
            },
            ..Default::default()
        });
        input
    }

    fn spike_numbers(e: &PlanningException) -> &SpikeNumbers {
        match &e.numbers {
            ExceptionNumbers::DemandSpike(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spike_hand_computed() {
        // Baseline week totals 10 12 14 16 18 (median 14, MAD 2); recent week 30:
        // z = 0.6745 × 16 / 2 = 5.396 ≥ 3.5, volume 30 ≥ 10, change 16 ≥ 5 → flagged.
        // No product record: impact = change 16 (no cost), on hand 60 at 30/7 per day
        // lasts 14 days; lead 0 → urgency 1/14.
        let params = DemandSpikeParams {
            baseline_days: Some(35),
            ..Default::default()
        };
        let daily = weekly(
            &[10.0, 12.0, 14.0, 16.0, 18.0],
            &[30.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        );
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(daily, 60.0),
        );
        assert_eq!(found.len(), 1);
        let n = spike_numbers(&found[0]);
        assert_eq!(n.recent_qty, 30.0);
        assert_eq!(n.baseline_median, 14.0);
        assert_eq!(n.baseline_mad, 2.0);
        assert_eq!(n.baseline_windows, 5);
        assert!((n.robust_z.unwrap() - 5.396).abs() < 1e-9);
        assert_eq!(n.change_qty, 16.0);
        assert_eq!(n.days_of_cover_at_recent_rate, Some(14.0));
        assert_eq!(n.window_start, date(2025, 2, 22));
        assert_eq!(n.window_end, date(2025, 2, 28));
        assert_eq!(n.demand_class, DemandClass::Intermittent);
        assert_eq!(found[0].impact, 16.0);
        assert!((found[0].urgency - 1.0 / 14.0).abs() < 1e-12);
        assert_eq!(found[0].severity, Severity::Low);
    }

    /// Two seasons ending yesterday: 10 to 12 a day, except the last week of each
    /// season, which sells 30 a day a year ago and `this_week` a day now.
    fn two_seasons_with_a_peak_week(this_week: f32) -> Vec<f32> {
        let days = 2 * season::SEASON_DAYS;
        (0..days)
            .map(|i| match i % season::SEASON_DAYS {
                s if s >= season::SEASON_DAYS - 7 && i >= season::SEASON_DAYS => this_week,
                s if s >= season::SEASON_DAYS - 7 => 30.0,
                s => 10.0 + ((s / 7) % 3) as f32,
            })
            .collect()
    }

    #[test]
    fn a_peak_like_last_years_is_not_a_spike_when_seasonal() {
        let params = |seasonal| DemandSpikeParams {
            baseline_days: Some(35),
            seasonal: Some(seasonal),
            ..Default::default()
        };
        let run = |seasonal, this_week| {
            detect(
                &params(seasonal),
                &RULE,
                &SeverityThresholds::default(),
                &input(two_seasons_with_a_peak_week(this_week), 500.0),
            )
        };
        // The baseline weeks sell 70 to 84; this week 210, as the same week did a
        // year ago. Against the baseline alone that is a spike.
        let plain = run(false, 30.0);
        assert_eq!(plain.len(), 1);
        assert_eq!(spike_numbers(&plain[0]).seasonal_factor, None);
        // Seasonal: last year's week sold 210 against a median of 77 before it, a
        // lift of 2.73; 210 ÷ 2.73 = 77 is the usual.
        assert!(run(true, 30.0).is_empty());
        // Twice last year's peak is a spike, measured against the seasonal 210.
        let found = run(true, 60.0);
        assert_eq!(found.len(), 1);
        let n = spike_numbers(&found[0]);
        let factor = n.seasonal_factor.expect("seasonal factor");
        assert!((factor - 210.0 / n.baseline_median).abs() < 1e-9, "{n:?}");
        assert!((n.change_qty - (420.0 - 210.0)).abs() < 1e-9, "{n:?}");
        assert!(
            found[0].narrative.contains("a seasonal lift of 2.73×"),
            "{}",
            found[0].narrative
        );
        // With too little history to judge a season, nothing is scaled.
        let series = two_seasons_with_a_peak_week(30.0);
        let short = series[series.len() - (season::days_to_judge() - 7)..].to_vec();
        let found = detect(
            &params(true),
            &RULE,
            &SeverityThresholds::default(),
            &input(short, 500.0),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(spike_numbers(&found[0]).seasonal_factor, None);
    }

    #[test]
    fn below_threshold_is_not_flagged() {
        // Recent 20: z = 0.6745 × 6 / 2 = 2.02 < 3.5.
        let params = DemandSpikeParams {
            baseline_days: Some(35),
            ..Default::default()
        };
        let daily = weekly(
            &[10.0, 12.0, 14.0, 16.0, 18.0],
            &[20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        );
        assert!(
            detect(
                &params,
                &RULE,
                &SeverityThresholds::default(),
                &input(daily, 0.0)
            )
            .is_empty()
        );
    }

    #[test]
    fn slow_mover_noise_is_not_flagged() {
        // Baseline week totals 0 0 1 0 0 (median 0, MAD 0, MeanAD 0.2) and 4 this week:
        // z = 4 / (1.2533 × 0.2) ≈ 16 but 4 < minRecentQty 10 → quiet.
        let params = DemandSpikeParams {
            baseline_days: Some(35),
            ..Default::default()
        };
        let daily = weekly(
            &[0.0, 0.0, 1.0, 0.0, 0.0],
            &[4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        );
        assert!(
            detect(
                &params,
                &RULE,
                &SeverityThresholds::default(),
                &input(daily.clone(), 0.0)
            )
            .is_empty()
        );
        // With the volume rule relaxed, the same series is a spike.
        let relaxed = DemandSpikeParams {
            baseline_days: Some(35),
            min_recent_qty: Some(0.0),
            min_change_qty: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            detect(
                &relaxed,
                &RULE,
                &SeverityThresholds::default(),
                &input(daily, 0.0)
            )
            .len(),
            1
        );
    }

    #[test]
    fn constant_baseline_relies_on_volume() {
        // A dead item (all-zero baseline) that sells 25 this week: no spread, z undefined,
        // flagged on volume.
        let params = DemandSpikeParams {
            baseline_days: Some(35),
            ..Default::default()
        };
        let daily = weekly(
            &[0.0; 5],
            &[5.0; 5]
                .iter()
                .chain(&[0.0, 0.0])
                .copied()
                .collect::<Vec<_>>(),
        );
        let found = detect(
            &params,
            &RULE,
            &SeverityThresholds::default(),
            &input(daily, 0.0),
        );
        let n = spike_numbers(&found[0]);
        assert_eq!(n.robust_z, None);
        assert_eq!(n.recent_qty, 25.0);
        assert_eq!(n.days_of_cover_at_recent_rate, Some(0.0));
        assert!(found[0].narrative.contains("undefined"));
    }

    #[test]
    fn too_little_history_is_skipped() {
        let params = DemandSpikeParams::default();
        // 2 baseline weeks + recent week: fewer than 3 windows.
        let daily = weekly(&[1.0, 1.0], &[100.0; 7]);
        assert!(
            detect(
                &params,
                &RULE,
                &SeverityThresholds::default(),
                &input(daily, 0.0)
            )
            .is_empty()
        );
        assert!(
            detect(
                &params,
                &RULE,
                &SeverityThresholds::default(),
                &input(vec![], 0.0)
            )
            .is_empty()
        );
    }

    #[test]
    fn downward_spike_only_when_asked() {
        // Baseline 40 42 44 46 48 (median 44, MAD 2), recent 10:
        // z = 0.6745 × (−34) / 2 = −11.47.
        let daily = weekly(
            &[40.0, 42.0, 44.0, 46.0, 48.0],
            &[10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        );
        let up = DemandSpikeParams {
            baseline_days: Some(35),
            ..Default::default()
        };
        assert!(
            detect(
                &up,
                &RULE,
                &SeverityThresholds::default(),
                &input(daily.clone(), 0.0)
            )
            .is_empty()
        );
        let both = DemandSpikeParams {
            baseline_days: Some(35),
            direction: Some(SpikeDirection::Both),
            ..Default::default()
        };
        let found = detect(
            &both,
            &RULE,
            &SeverityThresholds::default(),
            &input(daily, 0.0),
        );
        let n = spike_numbers(&found[0]);
        assert!((n.robust_z.unwrap() + 11.4665).abs() < 1e-9);
        assert_eq!(found[0].urgency, 1.0);
        assert_eq!(found[0].impact, 34.0);
    }
}
