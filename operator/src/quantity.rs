//! Kubernetes quantities (`1Gi`, `500M`, `1.5Gi`, `2e9`, `100m`), read the way the
//! API server reads them: the storage sizes the operator compares, the memory limit
//! the Kafka heap is derived from.

/// A Kubernetes quantity (`1Gi`, `500M`, `1.5Gi`, `2e9`, `100m`) in thousandths,
/// rounded up; `None` if it is not one (or is negative, or absurdly large).
pub fn quantity_millis(quantity: &str) -> Option<u128> {
    let text = quantity.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let pow = |base: u128, exp: u32| base.checked_pow(exp);
    // value = mantissa / scale * numerator / denominator, in thousandths.
    let (numerator, denominator): (u128, u128) = match suffix {
        "" => (1000, 1),
        "m" => (1, 1),
        "k" => (pow(10, 6)?, 1),
        "M" => (pow(10, 9)?, 1),
        "G" => (pow(10, 12)?, 1),
        "T" => (pow(10, 15)?, 1),
        "P" => (pow(10, 18)?, 1),
        "E" => (pow(10, 21)?, 1),
        "Ki" => (1000 * pow(2, 10)?, 1),
        "Mi" => (1000 * pow(2, 20)?, 1),
        "Gi" => (1000 * pow(2, 30)?, 1),
        "Ti" => (1000 * pow(2, 40)?, 1),
        "Pi" => (1000 * pow(2, 50)?, 1),
        "Ei" => (1000 * pow(2, 60)?, 1),
        exponent if exponent.starts_with(['e', 'E']) => {
            let exp: i32 = exponent[1..].parse().ok()?;
            if !(-30..=30).contains(&exp) {
                return None;
            }
            let factor = pow(10, exp.unsigned_abs())?;
            if exp >= 0 {
                (1000 * factor, 1)
            } else {
                (1000, factor)
            }
        }
        _ => return None,
    };
    let top = mantissa.checked_mul(numerator)?;
    let bottom = scale.checked_mul(denominator)?;
    Some(top.div_ceil(bottom))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn quantities_compare_as_the_api_server_does() {
        let gi = 1000 * (1u128 << 30);
        assert_eq!(quantity_millis("1Gi"), Some(gi));
        assert_eq!(quantity_millis("1024Mi"), Some(gi));
        assert_eq!(quantity_millis("1.5Gi"), Some(gi * 3 / 2));
        assert_eq!(quantity_millis("1G"), Some(1_000_000_000_000));
        assert_eq!(quantity_millis("1e9"), Some(1_000_000_000_000));
        assert_eq!(quantity_millis("1E3"), Some(1_000_000));
        assert_eq!(quantity_millis("1500m"), Some(1500));
        assert_eq!(quantity_millis("1073741824"), Some(gi));
        assert!(quantity_millis("1G") < quantity_millis("1Gi"));
        for bad in ["", "Gi", "1Gb", "-1Gi", "1.2.3Gi", "ten", "1e99"] {
            assert_eq!(quantity_millis(bad), None, "{bad}");
        }
    }
}
