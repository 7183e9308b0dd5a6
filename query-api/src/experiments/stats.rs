//! The two-proportion comparison of design §12: each variant's conversion rate
//! (converting users / users exposed) against the first variant's.
//!
//! - `difference` = p₁ − p₀;
//! - `ci95` = difference ± 1.96 · √(p₀(1−p₀)/n₀ + p₁(1−p₁)/n₁) (the unpooled Wald
//!   interval);
//! - `p_value`: two-sided, from z = (p₁ − p₀) / √(p(1−p)(1/n₀ + 1/n₁)) with the pooled
//!   p = (x₀ + x₁)/(n₀ + n₁), and Φ(z) = erfc(−z/√2)/2 (`libm`'s `erfc`).
//!
//! Undefined when either variant has exposed nobody (`None`); with no conversions on
//! either side the difference is 0 and the p-value 1.

use serde::Serialize;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub difference: f64,
    pub ci95: [f64; 2],
    pub p_value: f64,
}

/// `x1` of `n1` against the baseline's `x0` of `n0`.
pub fn compare(x0: u64, n0: u64, x1: u64, n1: u64) -> Option<Comparison> {
    if n0 == 0 || n1 == 0 {
        return None;
    }
    let (n0f, n1f) = (n0 as f64, n1 as f64);
    let (p0, p1) = (x0 as f64 / n0f, x1 as f64 / n1f);
    let difference = p1 - p0;
    let se = (p0 * (1.0 - p0) / n0f + p1 * (1.0 - p1) / n1f).sqrt();
    let pooled = (x0 + x1) as f64 / (n0f + n1f);
    let pooled_se = (pooled * (1.0 - pooled) * (1.0 / n0f + 1.0 / n1f)).sqrt();
    let p_value = if pooled_se > 0.0 { 2.0 * upper_tail((difference / pooled_se).abs()) } else { 1.0 };
    Some(Comparison { difference, ci95: [difference - Z95 * se, difference + Z95 * se], p_value })
}

/// P(Z > z) for a standard normal Z.
fn upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// The Physicians' Health Study (aspirin and heart attacks), the worked example of
    /// Agresti, *Categorical Data Analysis*, §2.2: 189 of 11,034 on placebo and 104 of
    /// 11,037 on aspirin; difference 0.0077, 95 % interval (0.005, 0.011); z ≈ 5.0.
    #[test]
    fn the_aspirin_study_matches_the_textbook() {
        let c = compare(104, 11_037, 189, 11_034).expect("defined");
        assert!(close(c.difference, 0.0077, 0.00005), "{c:?}");
        assert!(close(c.ci95[0], 0.005, 0.0005) && close(c.ci95[1], 0.011, 0.0005), "{c:?}");
        // z = 5.0 gives a two-sided p of 5.7e-7.
        assert!(c.p_value > 1e-7 && c.p_value < 1e-6, "{c:?}");
    }

    /// Standard normal tail values from any table: P(|Z| > 1.96) = 0.05, P(|Z| > 2.576)
    /// = 0.01, P(|Z| > 1) = 0.3173.
    #[test]
    fn the_normal_tail_matches_the_tables() {
        assert!(close(2.0 * upper_tail(1.959_964), 0.05, 1e-6));
        assert!(close(2.0 * upper_tail(2.575_829), 0.01, 1e-6));
        assert!(close(2.0 * upper_tail(1.0), 0.317_310_5, 1e-6));
    }

    /// 45 of 100 against 30 of 100: pooled p 0.375, z = 0.15 / 0.068465 = 2.1909,
    /// two-sided p 0.02846; Wald interval 0.15 ± 1.96 · 0.06764 = (0.0174, 0.2826).
    #[test]
    fn a_hand_computed_comparison() {
        let c = compare(30, 100, 45, 100).expect("defined");
        assert!(close(c.difference, 0.15, 1e-12));
        assert!(close(c.p_value, 0.02846, 0.00005), "{c:?}");
        assert!(close(c.ci95[0], 0.0174, 0.0001) && close(c.ci95[1], 0.2826, 0.0001), "{c:?}");
    }

    #[test]
    fn nobody_exposed_is_undefined_and_no_conversions_is_no_difference() {
        assert_eq!(compare(0, 0, 1, 10), None);
        assert_eq!(
            compare(0, 10, 0, 10),
            Some(Comparison { difference: 0.0, ci95: [0.0, 0.0], p_value: 1.0 })
        );
    }
}
