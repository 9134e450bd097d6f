//! Seasonal demand: whether a daily series repeats from one year to the next,
//! and what the same weeks of earlier years say about the days ahead.
//!
//! A season is 52 weeks (364 days), so each day lines up with the same weekday
//! a year before. Weekly totals are used to judge seasonality: the Pearson
//! correlation of each week's total with the same week's a season earlier. A
//! product whose demand swings with the calendar correlates strongly (the sim's
//! heaters and shovels do, r ≈ 0.9); one with steady demand and noise does not.
//!
//! The forecast is the same period of each earlier season in the history,
//! averaged, times this year's trend: the last [`TREND_DAYS`] against the same
//! days a season before. The trend is bounded to [`TREND_BOUNDS`], so one odd
//! month cannot double or halve a year's pattern unnoticed.

use crate::params;

/// One season: 52 weeks.
pub const SEASON_DAYS: usize = params::SEASON_DAYS as usize;
/// Days that measure how this year runs against the last (8 weeks).
pub const TREND_DAYS: usize = 56;
/// Bounds of the year-on-year trend factor.
pub const TREND_BOUNDS: (f64, f64) = (0.5, 2.0);
/// Weekly correlation with the season before from which a series counts as seasonal.
pub const SEASONAL_CORRELATION: f64 = 0.5;
/// Fewest pairs of weeks the correlation is taken over.
pub const MIN_OVERLAP_WEEKS: usize =
    (params::SEASONALITY_HISTORY_DAYS - params::SEASON_DAYS) as usize / 7;

/// Days of history a series needs before [`seasonality`] can judge it.
pub const fn days_to_judge() -> usize {
    params::SEASONALITY_HISTORY_DAYS as usize
}

/// Pearson correlation of weekly totals with the totals of the same weeks one
/// season earlier, over complete weeks ending on the series' last day. `None`
/// when fewer than [`MIN_OVERLAP_WEEKS`] pairs exist or either side never varies.
pub fn seasonality(series: &[f32]) -> Option<f64> {
    let lag = SEASON_DAYS / 7;
    // Newest week first; negative days (net returns) count as no demand.
    let weeks: Vec<f64> = series
        .rchunks_exact(7)
        .map(|w| w.iter().map(|&v| f64::from(v).max(0.0)).sum())
        .collect();
    let pairs = weeks.len().checked_sub(lag)?;
    if pairs < MIN_OVERLAP_WEEKS {
        return None;
    }
    let now = &weeks[..pairs];
    let before = &weeks[lag..lag + pairs];
    let n = pairs as f64;
    let (mx, my) = (now.iter().sum::<f64>() / n, before.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in now.iter().zip(before) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// What a seasonal forecast stands on, for the exception's explanation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeasonalBasis {
    /// Earlier seasons averaged.
    pub seasons: usize,
    /// Mean daily demand of the days ahead, the same dates in earlier seasons.
    pub same_period_rate: f64,
    /// Mean daily demand of the last [`TREND_DAYS`].
    pub recent_rate: f64,
    /// Mean daily demand of the same days in earlier seasons.
    pub recent_rate_before: f64,
    /// `recent_rate / recent_rate_before`, within [`TREND_BOUNDS`] (1 when the
    /// earlier seasons had no demand in those days).
    pub trend: f64,
}

fn sum(days: &[f32]) -> f64 {
    days.iter().map(|&v| f64::from(v).max(0.0)).sum()
}

/// Expected demand for each of the next `days` days (written to `daily`, which
/// is cleared first): the same days of each earlier season the history holds,
/// averaged, times the trend. Days more than a season ahead repeat the last
/// season's profile. `None` when the history is shorter than a season plus
/// [`TREND_DAYS`].
pub fn seasonal_profile(
    series: &[f32],
    days: usize,
    daily: &mut Vec<f64>,
) -> Option<SeasonalBasis> {
    let n = series.len();
    let seasons = n.checked_sub(TREND_DAYS)? / SEASON_DAYS;
    if seasons == 0 {
        return None;
    }
    let recent_rate = sum(&series[n - TREND_DAYS..]) / TREND_DAYS as f64;
    let mut before = 0.0;
    for k in 1..=seasons {
        let start = n - k * SEASON_DAYS;
        before += sum(&series[start - TREND_DAYS..start]);
    }
    let recent_rate_before = before / (seasons * TREND_DAYS) as f64;
    let trend = if recent_rate_before > 0.0 {
        (recent_rate / recent_rate_before).clamp(TREND_BOUNDS.0, TREND_BOUNDS.1)
    } else {
        1.0
    };
    daily.clear();
    let mut same_period = 0.0;
    for t in 0..days {
        // Day t ahead is day t of the season that starts a whole number of
        // seasons back; beyond one season the profile wraps around.
        let offset = t % SEASON_DAYS;
        let mut total = 0.0;
        for k in 1..=seasons {
            total += f64::from(series[n - k * SEASON_DAYS + offset]).max(0.0);
        }
        let mean = total / seasons as f64;
        same_period += mean;
        daily.push(mean * trend);
    }
    Some(SeasonalBasis {
        seasons,
        same_period_rate: if days > 0 {
            same_period / days as f64
        } else {
            0.0
        },
        recent_rate,
        recent_rate_before,
        trend,
    })
}

/// How the same windows stood a season ago: the total of the window that
/// ends `end_back` days before the series' end, one season earlier.
pub fn window_a_season_before(series: &[f32], end_back: usize, len: usize) -> Option<f64> {
    let end = series.len().checked_sub(end_back + SEASON_DAYS)?;
    let start = end.checked_sub(len)?;
    Some(sum(&series[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `years` seasons of a yearly cosine of `amplitude` around `base` units a day.
    fn cosine(years: usize, base: f64, amplitude: f64) -> Vec<f32> {
        (0..years * SEASON_DAYS)
            .map(|d| {
                let phase = std::f64::consts::TAU * d as f64 / SEASON_DAYS as f64;
                (base * (1.0 + amplitude * phase.cos())) as f32
            })
            .collect()
    }

    #[test]
    fn a_yearly_swing_is_seasonal_and_steady_demand_is_not() {
        let swing = cosine(2, 10.0, 0.8);
        assert!(seasonality(&swing).unwrap() > 0.99);
        // Steady demand with weekly noise that does not repeat a year later.
        let steady: Vec<f32> = (0..2 * SEASON_DAYS as u64)
            .map(|d| 10.0 + ((d.wrapping_mul(2_654_435_761) >> 11) % 13) as f32)
            .collect();
        let r = seasonality(&steady).unwrap();
        assert!(r < SEASONAL_CORRELATION, "r = {r}");
        // Constant demand has no correlation at all, and short history no verdict.
        assert_eq!(seasonality(&[5.0; 2 * SEASON_DAYS]), None);
        assert_eq!(seasonality(&swing[..days_to_judge() - 7]), None);
        assert!(seasonality(&swing[..days_to_judge()]).is_some());
    }

    #[test]
    fn the_profile_repeats_last_season_scaled_by_the_trend() {
        // One season of 1..=364 units, then 56 days at twice last season's pace.
        let mut series: Vec<f32> = (1..=SEASON_DAYS).map(|d| d as f32).collect();
        series.extend((1..=TREND_DAYS).map(|d| 2.0 * d as f32));
        let mut daily = Vec::new();
        let basis = seasonal_profile(&series, 3, &mut daily).unwrap();
        assert_eq!(basis.seasons, 1);
        // The same 56 days a season ago sold 1..=56: mean 28.5; now twice that.
        assert_eq!(basis.recent_rate_before, 28.5);
        assert_eq!(basis.recent_rate, 57.0);
        assert_eq!(basis.trend, 2.0);
        // Days ahead: days 57, 58, 59 of last season, doubled.
        assert_eq!(daily, vec![114.0, 116.0, 118.0]);
        assert_eq!(basis.same_period_rate, 58.0);
    }

    #[test]
    fn two_seasons_are_averaged_and_the_trend_is_bounded() {
        let series = cosine(2, 10.0, 0.5);
        let mut longer = series.clone();
        longer.extend(std::iter::repeat_n(100.0, TREND_DAYS));
        let mut daily = Vec::new();
        let basis = seasonal_profile(&longer, SEASON_DAYS + 10, &mut daily).unwrap();
        assert_eq!(basis.seasons, 2);
        assert_eq!(basis.trend, TREND_BOUNDS.1);
        assert_eq!(daily.len(), SEASON_DAYS + 10);
        // Beyond one season ahead the profile wraps around.
        assert_eq!(daily[SEASON_DAYS], daily[0]);
        assert_eq!(
            seasonal_profile(&series[..SEASON_DAYS], 7, &mut daily),
            None
        );
    }

    #[test]
    fn a_window_a_season_before() {
        let series: Vec<f32> = (0..SEASON_DAYS + 14).map(|d| d as f32).collect();
        // The last 7 days a season back: days 7..14 → 7 + … + 13 = 70.
        assert_eq!(window_a_season_before(&series, 0, 7), Some(70.0));
        assert_eq!(window_a_season_before(&series, 7, 7), Some(21.0));
        assert_eq!(window_a_season_before(&series, 8, 7), None);
    }
}
