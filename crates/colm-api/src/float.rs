//! Request floats, read as JSON's f64 and narrowed to the f32 the models sample with.
//!
//! Narrowing rounds **away from zero**: the f32 is never closer to zero than the number sent.
//! Every range a request float must meet (`temperature` in [0, 2], `top_p` in (0, 1],
//! penalties in [-2, 2], `logit_bias` in [-100, 100]) refuses values beyond a bound further
//! from zero, or of the wrong sign, so a value outside its range stays outside after narrowing
//! (round-to-nearest read `2.0000000000000004` as 2 and `-2e-202` as -0), and the range check
//! (`SamplingParams::check_ranges`) sees what the document's bounds mean. A value inside its
//! range moves by at most one f32 step (≈ 6e-8 relative).

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

/// `x` as the nearest f32 no closer to zero than `x` (±0 stays ±0, beyond f32 is ±∞).
pub fn outward(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f).abs() < x.abs() {
        // The next f32 away from zero: the bit pattern of a finite f32 grows with its
        // magnitude, for either sign.
        f32::from_bits(f.to_bits() + 1)
    } else {
        f
    }
}

/// `deserialize_with` for an optional request float.
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(outward))
}

/// `deserialize_with` for an optional map of request floats (`logit_bias`).
pub fn option_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<HashMap<String, f32>>, D::Error> {
    Ok(Option::<HashMap<String, f64>>::deserialize(d)?
        .map(|m| m.into_iter().map(|(k, v)| (k, outward(v))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_never_moves_a_value_toward_zero() {
        // Beyond a bound by less than an f32 step: still beyond it.
        assert!(outward(2.000_000_000_000_000_4) > 2.0);
        assert!(outward(-100.000_000_000_001) < -100.0);
        assert!(outward(1.000_000_000_1) > 1.0);
        // Negative, too small for f32: still negative.
        let tiny = outward(-2e-202);
        assert!(tiny < 0.0, "{tiny}");
        assert!(outward(1e-300) > 0.0);
        // Exact values stay, others move one step at most.
        for x in [0.0, -0.0, 0.5, 1.0, 2.0, -2.0, 100.0] {
            assert_eq!(f64::from(outward(x)), x);
        }
        let seven = outward(0.7);
        assert!(f64::from(seven) >= 0.7 && seven - 0.7f32 <= f32::EPSILON);
        assert_eq!(outward(1e300), f32::INFINITY);
        assert_eq!(outward(-1e300), f32::NEG_INFINITY);
    }
}
