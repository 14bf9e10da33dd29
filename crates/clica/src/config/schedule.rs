//! The learning-rate schedule: linear warm-up, then constant, cosine decay, or
//! warm-up–stable–decay (constant at the peak, then a linear decay over the phase's end).

use super::TrainSection;
use serde::{Deserialize, Serialize};

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Constant after warm-up.
    Constant,
    /// Cosine decay from the peak to `peak · final_lr_fraction` after warm-up.
    Cosine,
    /// Warm-up–stable–decay: the peak until the last `train.decay_fraction` of the steps
    /// after warm-up, then a linear decay to `peak · final_lr_fraction` at the last step.
    Wsd,
    /// Piecewise linear through `train.lr_knots` (fractions of the post-warm-up steps,
    /// multiples of the peak); `final_lr_fraction` is not used.
    Piecewise,
}

/// The share of a phase's post-warm-up steps over which [`ScheduleKind::Wsd`] decays when
/// `train.decay_fraction` is not set.
pub const DEFAULT_DECAY_FRACTION: f64 = 0.2;

impl TrainSection {
    /// The learning rate at (1-based) step `step` of a phase of `total` steps whose peak
    /// learning rate is `peak` (`train.lr` for the contrastive phase; the supervised baseline
    /// may have its own peak and number of steps): linear warm-up over
    /// `min(warmup_steps, total)` steps, then the schedule.
    pub fn lr_with_peak(&self, peak: f64, step: u64, total: u64) -> f64 {
        let warmup = self.warmup_steps.min(total);
        if warmup > 0 && step <= warmup {
            return peak * step as f64 / warmup as f64;
        }
        match self.schedule {
            ScheduleKind::Constant => peak,
            ScheduleKind::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step.saturating_sub(warmup)) as f64 / span;
                let floor = peak * self.final_lr_fraction;
                floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
            ScheduleKind::Wsd => {
                let span = total.saturating_sub(warmup) as f64;
                let fraction = self.decay_fraction.unwrap_or(DEFAULT_DECAY_FRACTION);
                let decay = (span * fraction).max(1.0);
                let into = step.saturating_sub(warmup) as f64 - (span - decay);
                if into <= 0.0 {
                    return peak;
                }
                let floor = peak * self.final_lr_fraction;
                peak + (floor - peak) * (into / decay).min(1.0)
            }
            ScheduleKind::Piecewise => {
                let knots = self
                    .lr_knots
                    .as_deref()
                    .expect("validation requires lr_knots with the piecewise schedule");
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step.saturating_sub(warmup) as f64 / span).min(1.0);
                peak * piecewise(knots, t)
            }
        }
    }
}

/// The multiple at `t` of the piecewise-linear curve through `knots` (fractions rising from 0
/// to 1, as validation checks).
fn piecewise(knots: &[[f64; 2]], t: f64) -> f64 {
    let i = knots
        .windows(2)
        .position(|w| t <= w[1][0])
        .unwrap_or(knots.len().saturating_sub(2));
    match knots.get(i..i + 2) {
        Some([[t0, m0], [t1, m1]]) => m0 + (m1 - m0) * ((t - t0) / (t1 - t0)).clamp(0.0, 1.0),
        _ => knots.first().map_or(1.0, |k| k[1]),
    }
}

/// Checks `train.lr_knots`: at least two knots, fractions rising strictly from exactly 0 to
/// exactly 1, multiples finite and ≥ 0. The message names what is wrong.
pub(crate) fn check_knots(knots: &[[f64; 2]]) -> Result<(), String> {
    if knots.len() < 2 {
        return Err(format!("needs at least two knots, got {}", knots.len()));
    }
    if knots[0][0] != 0.0 || knots[knots.len() - 1][0] != 1.0 {
        return Err("the first knot's fraction must be 0 and the last one's 1".into());
    }
    for w in knots.windows(2) {
        if w[1][0].partial_cmp(&w[0][0]) != Some(std::cmp::Ordering::Greater) {
            return Err(format!(
                "fractions must rise strictly, got {} then {}",
                w[0][0], w[1][0]
            ));
        }
    }
    if let Some(k) = knots.iter().find(|k| !(k[1].is_finite() && k[1] >= 0.0)) {
        return Err(format!("multiples must be finite and ≥ 0, got {}", k[1]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(schedule: ScheduleKind) -> TrainSection {
        TrainSection {
            steps: 1000,
            lr: 1.0,
            warmup_steps: 100,
            schedule,
            final_lr_fraction: 0.1,
            ..TrainSection::default()
        }
    }

    #[test]
    fn cosine_warms_up_and_decays() {
        let t = section(ScheduleKind::Cosine);
        let lr = |step| t.lr_with_peak(1.0, step, 1000);
        assert!((lr(50) - 0.5).abs() < 1e-12);
        assert!((lr(100) - 1.0).abs() < 1e-12);
        assert!((lr(550) - 0.55).abs() < 1e-12);
        assert!((lr(1000) - 0.1).abs() < 1e-12);
        // Past the end it stays at the floor.
        assert!((lr(2000) - 0.1).abs() < 1e-12);
        assert!((t.lr_with_peak(2.0, 550, 1000) - 1.1).abs() < 1e-12);
        assert!((t.lr_with_peak(2.0, 50, 1000) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn wsd_holds_the_peak_then_decays_linearly_to_the_floor() {
        let mut t = section(ScheduleKind::Wsd);
        // 900 steps after warm-up; the default decays over the last 180.
        let lr = |t: &TrainSection, step| t.lr_with_peak(1.0, step, 1000);
        assert!((lr(&t, 50) - 0.5).abs() < 1e-12);
        assert_eq!(lr(&t, 100), 1.0);
        assert_eq!(lr(&t, 820), 1.0);
        assert!((lr(&t, 910) - 0.55).abs() < 1e-12);
        assert!((lr(&t, 1000) - 0.1).abs() < 1e-12);
        assert!((lr(&t, 2000) - 0.1).abs() < 1e-12);
        t.decay_fraction = Some(0.5);
        assert_eq!(lr(&t, 550), 1.0);
        assert!((lr(&t, 775) - 0.55).abs() < 1e-12);
        // Over the whole phase: a straight line from the end of warm-up.
        t.decay_fraction = Some(1.0);
        assert!((lr(&t, 550) - 0.55).abs() < 1e-12);
    }

    #[test]
    fn piecewise_passes_through_its_knots_and_is_linear_between() {
        let mut t = section(ScheduleKind::Piecewise);
        t.lr_knots = Some(vec![
            [0.0, 1.0],
            [0.2, 1.0],
            [0.3, 0.2],
            [0.9, 0.2],
            [1.0, 0.0],
        ]);
        // 900 steps after warm-up: knots at steps 100, 280, 370, 910, 1000.
        let lr = |step| t.lr_with_peak(2.0, step, 1000);
        assert!((lr(50) - 1.0).abs() < 1e-12);
        assert_eq!(lr(100), 2.0);
        assert_eq!(lr(280), 2.0);
        assert!((lr(325) - 1.2).abs() < 1e-12);
        assert!((lr(370) - 0.4).abs() < 1e-12);
        assert!((lr(600) - 0.4).abs() < 1e-12);
        assert!((lr(955) - 0.2).abs() < 1e-12);
        assert_eq!(lr(1000), 0.0);
        assert_eq!(lr(2000), 0.0);
    }

    #[test]
    fn knots_are_checked() {
        assert!(check_knots(&[[0.0, 1.0], [1.0, 0.1]]).is_ok());
        for (bad, want) in [
            (vec![[0.0, 1.0]], "at least two"),
            (vec![[0.1, 1.0], [1.0, 0.1]], "must be 0"),
            (vec![[0.0, 1.0], [0.9, 0.1]], "must be 0"),
            (
                vec![[0.0, 1.0], [0.5, 1.0], [0.5, 0.2], [1.0, 0.1]],
                "rise strictly",
            ),
            (
                vec![[0.0, 1.0], [f64::NAN, 1.0], [1.0, 0.1]],
                "rise strictly",
            ),
            (vec![[0.0, 1.0], [1.0, -0.1]], "≥ 0"),
            (vec![[0.0, f64::INFINITY], [1.0, 0.1]], "≥ 0"),
        ] {
            let e = check_knots(&bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }

    #[test]
    fn constant_warms_up_then_holds() {
        let t = section(ScheduleKind::Constant);
        assert!((t.lr_with_peak(1.0, 50, 1000) - 0.5).abs() < 1e-12);
        assert_eq!(t.lr_with_peak(1.0, 100, 1000), 1.0);
        assert_eq!(t.lr_with_peak(1.0, 999, 1000), 1.0);
    }

    #[test]
    fn warmup_is_capped_at_the_phase_length() {
        // A 40-step phase warms up over its 40 steps, reaching the peak at its end.
        let t = section(ScheduleKind::Cosine);
        assert!((t.lr_with_peak(1.0, 20, 40) - 0.5).abs() < 1e-12);
        assert!((t.lr_with_peak(1.0, 40, 40) - 1.0).abs() < 1e-12);
        let none = TrainSection {
            warmup_steps: 0,
            ..section(ScheduleKind::Cosine)
        };
        assert!((none.lr_with_peak(1.0, 0, 1000) - 1.0).abs() < 1e-12);
    }
}
