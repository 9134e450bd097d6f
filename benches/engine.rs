//! Detector throughput: projected stockout and demand spike over 1k / 10k / 50k
//! products × 3 warehouses × 365 days of history. Prints the median of several runs.
//!
//! Run with `cargo bench --bench engine`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jiff::civil::{Date, date};
use planops::engine::inputs::{
    DatedQty, DemandHistory, Orderpoint, PlanningInput, Product, StockItem, SupplierInfo,
    Warehouse, add_days,
};
use planops::engine::params::{DemandSpikeParams, DetectorSpec, ProjectedStockoutParams};
use planops::engine::{RuleRef, SeverityThresholds, evaluate};

const WAREHOUSES: i64 = 3;
const HISTORY_DAYS: usize = 365;

/// xorshift64*: deterministic data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn build(products: usize, today: Date) -> PlanningInput {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut input = PlanningInput::new(today);
    input.warehouses = (1..=WAREHOUSES)
        .map(|id| Warehouse {
            id,
            code: format!("WH{id}"),
        })
        .collect();
    for p in 0..products as i64 {
        input.products.push(Product {
            id: p + 1,
            default_code: Some(format!("SKU{p:06}")),
            name: format!("Product {p}"),
            standard_price: 1.0 + rng.unit() * 50.0,
            suppliers: vec![SupplierInfo {
                id: p + 1,
                partner_id: 1 + (p % 40),
                partner_name: format!("Vendor {}", p % 40),
                min_qty: (rng.next() % 50) as f64,
                delay_days: (rng.next() % 30) as u32,
                price: 1.0,
                sequence: 1,
                date_start: None,
                date_end: None,
            }],
        });
        for w in 1..=WAREHOUSES {
            // A third of the series is intermittent (sales on ~1 day in 5).
            let intermittent = rng.next().is_multiple_of(3);
            let level = rng.unit() * 20.0;
            let daily: Vec<f32> = (0..HISTORY_DAYS)
                .map(|_| {
                    if intermittent && !rng.next().is_multiple_of(5) {
                        0.0
                    } else {
                        (level * (0.5 + rng.unit())).round() as f32
                    }
                })
                .collect();
            let receipts = (0..(rng.next() % 3))
                .map(|_| DatedQty {
                    date: add_days(today, (rng.next() % 60) as i64),
                    qty: (rng.next() % 200) as f64,
                })
                .collect();
            let deliveries = (0..(rng.next() % 4))
                .map(|_| DatedQty {
                    date: add_days(today, (rng.next() % 30) as i64 - 5),
                    qty: (rng.next() % 40) as f64,
                })
                .collect();
            let orderpoint = (rng.next().is_multiple_of(2)).then(|| Orderpoint {
                id: p * 10 + w,
                min_qty: level * 7.0,
                max_qty: level * 21.0,
                qty_multiple: 5.0,
                ..Default::default()
            });
            input.items.push(StockItem {
                product_id: p + 1,
                warehouse_id: w,
                on_hand: (rng.unit() * level * 40.0).round(),
                virtual_available: None,
                receipts,
                deliveries,
                history: DemandHistory {
                    end: Some(add_days(today, -1)),
                    daily,
                },
                orderpoint,
            });
        }
    }
    input
}

fn median_time(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut found = 0;
    for _ in 0..runs {
        let start = Instant::now();
        found = black_box(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[runs / 2], found)
}

fn main() {
    let today = date(2025, 3, 1);
    let rule = RuleRef {
        namespace: "bench",
        rule: "rule",
    };
    let thresholds = SeverityThresholds::default();
    let stockout = DetectorSpec {
        projected_stockout: Some(ProjectedStockoutParams {
            horizon_days: Some(90),
            history_days: Some(365),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Default horizon: lead time + review period + 7 days per product.
    let stockout_default = DetectorSpec {
        projected_stockout: Some(ProjectedStockoutParams {
            history_days: Some(365),
            ..Default::default()
        }),
        ..Default::default()
    };
    let spike = DetectorSpec {
        demand_spike: Some(DemandSpikeParams::default()),
        ..Default::default()
    };
    println!("detector            products  items    exceptions  median");
    for products in [1_000usize, 10_000, 50_000] {
        let input = build(products, today);
        let runs = if products >= 50_000 { 5 } else { 9 };
        for (name, spec) in [
            ("stockout H=90d", &stockout),
            ("stockout H=default", &stockout_default),
            ("demandSpike", &spike),
        ] {
            let (time, found) = median_time(runs, || {
                evaluate(&rule, spec, &thresholds, &input)
                    .map(|v| v.len())
                    .unwrap_or(0)
            });
            println!(
                "{name:<19} {products:>8}  {:>7}  {found:>10}  {:>8.1} ms",
                input.items.len(),
                time.as_secs_f64() * 1e3
            );
        }
    }
}
