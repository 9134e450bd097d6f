//! The text tables the commands print.

use std::fmt::Write as _;

use crate::engine::{ExceptionNumbers, PlanningException};

/// The key numbers of an exception, in a few words.
pub fn key_numbers(e: &PlanningException) -> String {
    match &e.numbers {
        ExceptionNumbers::ProjectedStockout(n) => format!(
            "on hand {:.0}, {:.1}/day, below safety {}{}, order {:.0}",
            n.on_hand,
            n.daily_demand,
            n.below_safety_date,
            n.stockout_date
                .map(|d| format!(", out {d}"))
                .unwrap_or_default(),
            n.suggested_order_qty
        ),
        ExceptionNumbers::DemandSpike(n) => format!(
            "{:.0} in {}..{} vs median {:.0}{}{}",
            n.recent_qty,
            n.window_start,
            n.window_end,
            n.baseline_median,
            n.seasonal_factor
                .map(|f| format!(" × season {f:.2}"))
                .unwrap_or_default(),
            n.robust_z
                .map(|z| format!(", z {z:.1}"))
                .unwrap_or_default()
        ),
        ExceptionNumbers::SupplierDelay(n) => format!(
            "{:?}{}{}, open value {:.0}",
            n.reason,
            n.days_late
                .map(|d| format!(", {d} days late"))
                .unwrap_or_default(),
            n.lead_time_ratio
                .map(|r| format!(", lead time ×{r:.2}"))
                .unwrap_or_default(),
            n.open_value
        ),
        ExceptionNumbers::OrderAtRisk(n) => format!(
            "short {:.0} of {:.0} by {}, {:.0} at risk",
            n.shortfall_qty, n.open_qty, n.commitment_date, n.value_at_risk
        ),
        ExceptionNumbers::FieldThreshold(n) => {
            format!("{} = {} (limit {})", n.field, n.actual, n.threshold)
        }
    }
}

/// A text table of the top exceptions.
pub fn exception_table(exceptions: &[PlanningException], top: usize, subjects: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} exceptions over {subjects} subjects{}",
        exceptions.len(),
        if exceptions.len() > top {
            format!(" (top {top})")
        } else {
            String::new()
        }
    );
    if exceptions.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "  {:<36} {:<9} {:<8} {:>10}  numbers",
        "subject", "warehouse", "severity", "priority"
    );
    for e in exceptions.iter().take(top) {
        let (subject, warehouse) = match e.subject.label.rsplit_once(" × ") {
            Some((s, w)) => (s, w),
            None => (e.subject.label.as_str(), "-"),
        };
        let subject: String = subject.chars().take(36).collect();
        let _ = writeln!(
            out,
            "  {:<36} {:<9} {:<8} {:>10.1}  {}",
            subject,
            warehouse,
            format!("{:?}", e.severity),
            e.priority,
            key_numbers(e)
        );
    }
    out
}
