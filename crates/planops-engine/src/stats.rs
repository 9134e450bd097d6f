//! Statistics the detectors share: robust location and scale, the inverse normal CDF
//! for safety-stock z values, and the daily demand forecast.

use super::exception::DemandClass;
use super::params::ForecastMethod;
use super::season::SeasonalBasis;

/// Median of `values`, reordering them in place (no allocation). `None` when empty.
/// An even count averages the two middle values.
pub fn median_in_place(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    let (lower, upper_mid, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper_mid = *upper_mid;
    if n % 2 == 1 {
        return Some(upper_mid);
    }
    // The lower half is unordered but all ≤ upper_mid: its maximum is the other middle.
    let lower_mid = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower_mid + upper_mid) / 2.0)
}

/// Median and median absolute deviation of `values`, using `scratch` (cleared and
/// refilled) so callers in a loop allocate once.
pub fn median_mad(values: &[f64], scratch: &mut Vec<f64>) -> Option<(f64, f64)> {
    scratch.clear();
    scratch.extend_from_slice(values);
    let median = median_in_place(scratch)?;
    for v in scratch.iter_mut() {
        *v = (*v - median).abs();
    }
    let mad = median_in_place(scratch)?;
    Some((median, mad))
}

/// Consistency constant: for normal data MAD ≈ 0.6745 σ.
pub const MAD_Z_FACTOR: f64 = 0.6745;

/// Scale of the mean absolute deviation: for normal data MeanAD ≈ 0.7979 σ, so
/// (x − median) / (1.2533 · MeanAD) is on the same scale as the MAD-based z.
pub const MEAN_AD_FACTOR: f64 = 1.253_314;

/// Robust z-score of `x` against a baseline (Iglewicz & Hoaglin's modified z):
/// `M = 0.6745 · (x − median) / MAD`. When more than half the baseline is identical
/// the MAD is 0; the score then falls back to `(x − median) / (1.2533 · MeanAD)`
/// (the IBM SPSS / Iglewicz–Hoaglin convention). When the baseline does not vary at
/// all there is no scale and the result is `None`: the caller decides on volume alone.
pub fn robust_z(x: f64, baseline: &[f64], scratch: &mut Vec<f64>) -> RobustZ {
    let Some((median, mad)) = median_mad(baseline, scratch) else {
        return RobustZ {
            median: 0.0,
            mad: 0.0,
            z: None,
        };
    };
    let z = if mad > 0.0 {
        Some(MAD_Z_FACTOR * (x - median) / mad)
    } else {
        let mean_ad =
            baseline.iter().map(|v| (v - median).abs()).sum::<f64>() / baseline.len() as f64;
        (mean_ad > 0.0).then(|| (x - median) / (MEAN_AD_FACTOR * mean_ad))
    };
    RobustZ { median, mad, z }
}

/// Result of [`robust_z`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustZ {
    /// Baseline median.
    pub median: f64,
    /// Baseline median absolute deviation.
    pub mad: f64,
    /// The score, `None` when the baseline has no spread.
    pub z: Option<f64>,
}

/// Inverse of the standard normal CDF (the z of a cycle service level), by Peter
/// Acklam's rational approximation: relative error below 1.15·10⁻⁹ over (0, 1), which
/// is far below what a service-level target means. `None` outside (0, 1).
pub fn inverse_normal_cdf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;

    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let z = if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    Some(z)
}

/// Syntetos–Boylan cut-off on the average demand interval (days per demand).
pub const ADI_CUTOFF: f64 = 1.32;
/// Syntetos–Boylan cut-off on the squared coefficient of variation of demand sizes.
pub const CV2_CUTOFF: f64 = 0.49;

/// A daily demand forecast with the statistics behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandForecast {
    /// Forecast demand per day.
    pub daily_rate: f64,
    /// Method actually used (never `Auto`).
    pub method: ForecastMethod,
    /// Classification of the window.
    pub class: DemandClass,
    /// Days in the window.
    pub days: usize,
    /// Days with demand.
    pub demand_days: usize,
    /// Mean daily demand.
    pub mean: f64,
    /// Population standard deviation of daily demand (zeros included).
    pub std_dev: f64,
    /// Average demand interval (days per day with demand); infinite without demand.
    pub adi: f64,
    /// Squared coefficient of variation of the non-zero sizes.
    pub cv2: f64,
    /// What a `Seasonal` forecast stands on, with the weekly correlation with
    /// the season before that chose it.
    pub seasonal: Option<(SeasonalBasis, Option<f64>)>,
}

/// Forecasts a daily demand rate from `series` (oldest first; negative values, i.e.
/// net returns, count as no demand).
///
/// * `MovingAverage`: the window mean.
/// * `Ses`: simple exponential smoothing `ℓ ← α·x + (1 − α)·ℓ`, started from the
///   window mean so a short window is not dominated by its first day.
/// * `Sba`: Croston's method with the Syntetos–Boylan correction. On each day with
///   demand x after q days (q counts from the window start for the first demand):
///   first demand `z = x, p = q`; later `z ← z + α(x − z)`, `p ← p + α(q − p)`;
///   forecast `(1 − α/2) · z / p`. Smoothing sizes and intervals separately keeps the
///   many zero days of an intermittent item from dragging the rate to zero right after
///   a sale and spiking it on the day of one.
/// * `Auto`: Syntetos–Boylan–Croston classification; intermittent and lumpy series
///   (ADI ≥ 1.32) use `Sba`, smooth and erratic ones `Ses`.
///
/// No demand at all gives a rate of 0 (class `NoDemand`). `Seasonal` needs the
/// days ahead; here it forecasts as `Auto` does, and
/// [`crate::season::seasonal_profile`] replaces the rate where the history allows.
pub fn forecast_daily(series: &[f32], method: ForecastMethod, alpha: f64) -> DemandForecast {
    let days = series.len();
    let moments = Moments::of(series);
    let (sum, sum_sq, demand_days) = (moments.sum, moments.sum_sq, moments.demand_days);
    let mean = if days > 0 { sum / days as f64 } else { 0.0 };
    let std_dev = if days > 0 {
        (sum_sq / days as f64 - mean * mean).max(0.0).sqrt()
    } else {
        0.0
    };
    let (adi, cv2) = if demand_days > 0 {
        let n = demand_days as f64;
        // Zeros add nothing to the sums, so these are the non-zero sizes' moments.
        let size_mean = sum / n;
        let size_var = (sum_sq / n - size_mean * size_mean).max(0.0);
        (days as f64 / n, size_var / (size_mean * size_mean))
    } else {
        (f64::INFINITY, 0.0)
    };
    let class = match (demand_days, adi >= ADI_CUTOFF, cv2 >= CV2_CUTOFF) {
        (0, _, _) => DemandClass::NoDemand,
        (_, false, false) => DemandClass::Smooth,
        (_, false, true) => DemandClass::Erratic,
        (_, true, false) => DemandClass::Intermittent,
        (_, true, true) => DemandClass::Lumpy,
    };
    let method = match method {
        ForecastMethod::Auto | ForecastMethod::Seasonal if adi >= ADI_CUTOFF => ForecastMethod::Sba,
        ForecastMethod::Auto | ForecastMethod::Seasonal => ForecastMethod::Ses,
        other => other,
    };
    let daily_rate = if demand_days == 0 {
        0.0
    } else {
        match method {
            ForecastMethod::MovingAverage | ForecastMethod::Auto | ForecastMethod::Seasonal => mean,
            // A constant series smooths to itself; saying so exactly keeps the
            // unrolled sum's last-bit rounding out of hand-checkable cases.
            ForecastMethod::Ses if std_dev == 0.0 => mean,
            ForecastMethod::Ses => {
                // SES started from ℓ₀ unrolls to ℓₙ = (1 − α)ⁿ·ℓ₀ + Σ α(1 − α)ⁿ⁻¹⁻ⁱ·xᵢ.
                let decay = (1.0 - alpha).powi(i32::try_from(days).unwrap_or(i32::MAX));
                ses_weighted_sum(series, alpha) + decay * mean
            }
            ForecastMethod::Sba => sba(series, alpha),
        }
    };
    DemandForecast {
        daily_rate,
        method,
        class,
        days,
        demand_days,
        mean,
        std_dev,
        adi,
        cv2,
        seasonal: None,
    }
}

/// Sum, sum of squares and count of days with demand, negatives as 0. Four lanes of
/// accumulators break the add-latency chain: this runs over a year of history for
/// every product × warehouse of a scan.
struct Moments {
    sum: f64,
    sum_sq: f64,
    demand_days: usize,
}

impl Moments {
    fn of(series: &[f32]) -> Moments {
        let mut sum = [0.0f64; 4];
        let mut sum_sq = [0.0f64; 4];
        let mut nonzero = [0usize; 4];
        let chunks = series.chunks_exact(4);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..4 {
                let x = f64::from(chunk[lane]).max(0.0);
                sum[lane] += x;
                sum_sq[lane] += x * x;
                nonzero[lane] += usize::from(x > 0.0);
            }
        }
        for (lane, &v) in rest.iter().enumerate() {
            let x = f64::from(v).max(0.0);
            sum[lane] += x;
            sum_sq[lane] += x * x;
            nonzero[lane] += usize::from(x > 0.0);
        }
        Moments {
            sum: sum.iter().sum(),
            sum_sq: sum_sq.iter().sum(),
            demand_days: nonzero.iter().sum(),
        }
    }
}

/// Σ α(1 − α)ⁿ⁻¹⁻ⁱ·xᵢ, the part of SES that does not depend on the starting level.
/// Walked newest first, so weights shrink (no overflow for any α) and four lanes with
/// weight steps of (1 − α)⁴ keep the loop free of a serial dependency.
fn ses_weighted_sum(series: &[f32], alpha: f64) -> f64 {
    let beta = 1.0 - alpha;
    let step = beta.powi(4);
    let mut weight = [
        alpha,
        alpha * beta,
        alpha * beta * beta,
        alpha * beta * beta * beta,
    ];
    let mut acc = [0.0f64; 4];
    let chunks = series.rchunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        // chunk[3] is the newest of the four.
        for lane in 0..4 {
            acc[lane] += weight[lane] * f64::from(chunk[3 - lane]).max(0.0);
            weight[lane] *= step;
        }
    }
    // The oldest values, newest of them last in `rest`.
    for (lane, &v) in rest.iter().rev().enumerate() {
        acc[lane] += weight[lane] * f64::from(v).max(0.0);
    }
    acc.iter().sum()
}

fn sba(series: &[f32], alpha: f64) -> f64 {
    let mut size: Option<f64> = None;
    let mut interval = 0.0;
    let mut since_last = 0.0;
    for &v in series {
        since_last += 1.0;
        let x = f64::from(v);
        if x <= 0.0 {
            continue;
        }
        match size.as_mut() {
            None => {
                size = Some(x);
                interval = since_last;
            }
            Some(z) => {
                *z += alpha * (x - *z);
                interval += alpha * (since_last - interval);
            }
        }
        since_last = 0.0;
    }
    match size {
        Some(z) if interval > 0.0 => (1.0 - alpha / 2.0) * z / interval,
        _ => 0.0,
    }
}

/// `q`-quantile (0–1) of `values` by linear interpolation between order statistics,
/// sorting `values` in place. `None` when empty.
pub fn quantile_in_place(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(values[lo] + (values[hi] - values[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median_in_place(&mut []), None);
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median_in_place(&mut [5.0]), Some(5.0));
    }

    #[test]
    fn median_and_mad_by_hand() {
        // Sorted 1 2 3 4 100: median 3; deviations 2 1 0 1 97 → MAD 1.
        let mut scratch = Vec::new();
        assert_eq!(
            median_mad(&[100.0, 1.0, 2.0, 3.0, 4.0], &mut scratch),
            Some((3.0, 1.0))
        );
    }

    #[test]
    fn robust_z_by_hand() {
        let mut scratch = Vec::new();
        // Baseline 10 12 14 16 18 → median 14, deviations 4 2 0 2 4 → MAD 2.
        // x = 30 → 0.6745 · 16 / 2 = 5.396.
        let r = robust_z(30.0, &[10.0, 12.0, 14.0, 16.0, 18.0], &mut scratch);
        assert_eq!((r.median, r.mad), (14.0, 2.0));
        assert!(close(r.z.unwrap(), 5.396, 1e-9));
    }

    #[test]
    fn robust_z_with_zero_mad_uses_mean_absolute_deviation() {
        let mut scratch = Vec::new();
        // Baseline 5 5 5 5 9 → median 5, MAD 0; MeanAD = 4/5 = 0.8.
        // x = 9 → 4 / (1.253314 · 0.8) = 3.98942.
        let r = robust_z(9.0, &[5.0, 5.0, 5.0, 5.0, 9.0], &mut scratch);
        assert_eq!(r.mad, 0.0);
        assert!(close(r.z.unwrap(), 4.0 / (1.253_314 * 0.8), 1e-12));
        // A constant baseline has no scale at all.
        let r = robust_z(9.0, &[5.0, 5.0, 5.0], &mut scratch);
        assert_eq!(r.z, None);
        assert_eq!(r.median, 5.0);
        // An empty baseline neither.
        assert_eq!(robust_z(1.0, &[], &mut scratch).z, None);
    }

    #[test]
    fn inverse_normal_matches_tables() {
        let cases = [
            (0.5, 0.0),
            (0.9, 1.281_551_565_5),
            (0.95, 1.644_853_626_9),
            (0.975, 1.959_963_984_5),
            (0.98, 2.053_748_910_6),
            (0.99, 2.326_347_874_0),
            (0.995, 2.575_829_303_5),
            (0.9999, 3.719_016_485_5),
            (0.01, -2.326_347_874_0),
            (0.05, -1.644_853_626_9),
        ];
        for (p, z) in cases {
            let got = inverse_normal_cdf(p).unwrap();
            assert!(close(got, z, 1e-8), "p={p}: got {got}, want {z}");
        }
        assert_eq!(inverse_normal_cdf(0.0), None);
        assert_eq!(inverse_normal_cdf(1.0), None);
        assert_eq!(inverse_normal_cdf(f64::NAN), None);
    }

    #[test]
    fn forecast_without_history_is_zero() {
        let f = forecast_daily(&[], ForecastMethod::Auto, 0.1);
        assert_eq!(f.daily_rate, 0.0);
        assert_eq!(f.class, DemandClass::NoDemand);
        let f = forecast_daily(&[0.0; 30], ForecastMethod::Ses, 0.1);
        assert_eq!(f.daily_rate, 0.0);
        assert_eq!(f.std_dev, 0.0);
    }

    #[test]
    fn ses_by_hand() {
        // Series 10 20, α = 0.5, start at mean 15: 15 → 12.5 → 16.25.
        let f = forecast_daily(&[10.0, 20.0], ForecastMethod::Ses, 0.5);
        assert!(close(f.daily_rate, 16.25, 1e-12));
        assert_eq!(f.class, DemandClass::Smooth);
        // Population σ of 10, 20 is 5.
        assert!(close(f.std_dev, 5.0, 1e-12));
    }

    #[test]
    fn ses_closed_form_matches_the_recurrence() {
        for len in [1usize, 2, 3, 4, 5, 7, 90, 365] {
            let series: Vec<f32> = (0..len).map(|i| ((i * 7919) % 23) as f32 - 3.0).collect();
            for alpha in [0.05, 0.1, 0.3, 0.99] {
                let f = forecast_daily(&series, ForecastMethod::Ses, alpha);
                let mut level = f.mean;
                for &v in &series {
                    level += alpha * (f64::from(v).max(0.0) - level);
                }
                assert!(
                    close(f.daily_rate, level, 1e-9),
                    "len {len} α {alpha}: {} vs {level}",
                    f.daily_rate
                );
            }
        }
    }

    #[test]
    fn auto_picks_sba_for_intermittent_demand() {
        // Demand 6 on day 3 and 6 on day 7, zeros elsewhere; 8 days.
        // ADI = 8/2 = 4 ≥ 1.32, CV² = 0 → intermittent → SBA.
        // First demand: z = 6, p = 3. Second after 4 days: z = 6, p = 3 + 0.1·(4 − 3) = 3.1.
        // Rate = 0.95 · 6 / 3.1 = 1.838709…
        let series = [0.0, 0.0, 6.0, 0.0, 0.0, 0.0, 6.0, 0.0];
        let f = forecast_daily(&series, ForecastMethod::Auto, 0.1);
        assert_eq!(f.method, ForecastMethod::Sba);
        assert_eq!(f.class, DemandClass::Intermittent);
        assert!(close(f.adi, 4.0, 1e-12));
        assert!(close(f.daily_rate, 0.95 * 6.0 / 3.1, 1e-12));
        // The plain mean would be 1.5.
        assert!(close(f.mean, 1.5, 1e-12));
    }

    #[test]
    fn classification_quadrants() {
        // Sizes 1 and 9 every day: ADI 1, CV² = 16/25 = 0.64 → erratic.
        let f = forecast_daily(&[1.0, 9.0, 1.0, 9.0], ForecastMethod::Auto, 0.1);
        assert_eq!(f.class, DemandClass::Erratic);
        assert_eq!(f.method, ForecastMethod::Ses);
        // Sizes 1 and 9 every other day: ADI 2 → lumpy.
        let f = forecast_daily(&[1.0, 0.0, 9.0, 0.0], ForecastMethod::Auto, 0.1);
        assert_eq!(f.class, DemandClass::Lumpy);
        assert_eq!(f.method, ForecastMethod::Sba);
    }

    #[test]
    fn negative_history_counts_as_no_demand() {
        let f = forecast_daily(&[-5.0, 4.0], ForecastMethod::MovingAverage, 0.1);
        assert!(close(f.daily_rate, 2.0, 1e-12));
        assert_eq!(f.demand_days, 1);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile_in_place(&mut [4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert!(close(
            quantile_in_place(&mut [1.0, 2.0, 3.0, 4.0, 5.0], 0.9).unwrap(),
            4.6,
            1e-12
        ));
        assert_eq!(quantile_in_place(&mut [], 0.9), None);
    }
}
