//! The authorizer: a **simulation**. No card network or payment provider is called and
//! no money moves. It stands where a real provider's authorization call would be, with
//! seed 004's rule: an amount below the limit is authorized, an amount at or above it
//! is declined.
//!
//! The limit (`DECLINE_AT`, default `1000`) is in major units and applies in every
//! currency: 1000 means 1000.00 USD, 1000.00 EUR, 1000 JPY. It is compared exactly, in
//! the minor units of the payment's currency, never through a float.

use std::fmt;
use std::str::FromStr;

use sales_contracts::Money;

/// What the authorizer decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Declined { reason: String },
}

/// An amount in major units, exactly: `mantissa / 10^scale` (e.g. `999.99` is 99999 / 10^2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclineLimit {
    mantissa: i128,
    scale: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "DECLINE_AT must be a non-negative decimal amount in major units such as 1000 or 999.99 (at most 18 digits), got {0:?}"
)]
pub struct InvalidLimit(pub String);

impl FromStr for DeclineLimit {
    type Err = InvalidLimit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidLimit(s.to_owned());
        let text = s.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let fraction = fraction.trim_end_matches('0');
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || text.ends_with('.') {
            return Err(invalid());
        }
        if whole.len() + fraction.len() > 18 {
            return Err(invalid());
        }
        let digits = format!("{whole}{fraction}");
        let mantissa: i128 = digits.parse().map_err(|_| invalid())?;
        let scale = u32::try_from(fraction.len()).map_err(|_| invalid())?;
        Ok(DeclineLimit { mantissa, scale })
    }
}

impl DeclineLimit {
    /// Whether `amount` (minor units of its currency) is at or above the limit:
    /// `amount / 10^d >= mantissa / 10^scale`, i.e. `amount * 10^scale >= mantissa * 10^d`.
    pub fn reached_by(&self, amount: Money) -> bool {
        let digits = amount.currency.minor_unit_digits();
        // Both sides stay below 10^38: |amount| < 10^19, scale <= 18, mantissa < 10^18, digits <= 3.
        let lhs = i128::from(amount.amount) * 10i128.pow(self.scale);
        let rhs = self.mantissa * 10i128.pow(digits);
        lhs >= rhs
    }

    /// The limit written with at least `digits` decimal places: `1000` -> `1000.00`.
    pub fn display_with(&self, digits: u32) -> String {
        let places = self.scale.max(digits);
        let scaled = self.mantissa * 10i128.pow(places - self.scale);
        if places == 0 {
            return scaled.to_string();
        }
        let unit = 10i128.pow(places);
        format!(
            "{}.{:0width$}",
            scaled / unit,
            scaled % unit,
            width = places as usize
        )
    }
}

impl fmt::Display for DeclineLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_with(0))
    }
}

/// The simulated authorizer.
#[derive(Clone, Copy, Debug)]
pub struct Authorizer {
    decline_at: DeclineLimit,
}

impl Authorizer {
    pub fn new(decline_at: DeclineLimit) -> Self {
        Authorizer { decline_at }
    }

    /// Authorize `amount`: declined at or above the limit, approved below it.
    pub fn decide(&self, amount: Money) -> Decision {
        if self.decline_at.reached_by(amount) {
            Decision::Declined {
                reason: format!(
                    "amount at or above the {} limit",
                    self.decline_at
                        .display_with(amount.currency.minor_unit_digits())
                ),
            }
        } else {
            Decision::Approved
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sales_contracts::Currency;

    fn usd(cents: i64) -> Money {
        Money::new(cents, Currency::USD)
    }

    #[test]
    fn seed_004_rule_authorized_iff_below_1000() {
        let a = Authorizer::new("1000".parse().unwrap());
        assert_eq!(a.decide(usd(20050)), Decision::Approved);
        assert_eq!(a.decide(usd(99999)), Decision::Approved);
        assert_eq!(
            a.decide(usd(100000)),
            Decision::Declined {
                reason: "amount at or above the 1000.00 limit".into()
            }
        );
        assert!(matches!(a.decide(usd(100001)), Decision::Declined { .. }));
    }

    #[test]
    fn limit_applies_in_each_currencys_minor_units() {
        let a = Authorizer::new("1000".parse().unwrap());
        let jpy: Currency = "JPY".parse().unwrap();
        let kwd: Currency = "KWD".parse().unwrap();
        assert_eq!(a.decide(Money::new(999, jpy)), Decision::Approved);
        assert_eq!(
            a.decide(Money::new(1000, jpy)),
            Decision::Declined {
                reason: "amount at or above the 1000 limit".into()
            }
        );
        assert_eq!(a.decide(Money::new(999_999, kwd)), Decision::Approved);
        assert!(matches!(
            a.decide(Money::new(1_000_000, kwd)),
            Decision::Declined { .. }
        ));
    }

    #[test]
    fn fractional_limits_compare_exactly() {
        let limit: DeclineLimit = "999.995".parse().unwrap();
        assert!(!limit.reached_by(usd(99999)));
        assert!(limit.reached_by(usd(100000)));
        assert_eq!(limit.display_with(2), "999.995");
        let limit: DeclineLimit = "0.5".parse().unwrap();
        assert!(!limit.reached_by(usd(49)));
        assert!(limit.reached_by(usd(50)));
        assert_eq!(limit.display_with(2), "0.50");
        assert_eq!(limit.display_with(0), "0.5");
        assert_eq!("10.00".parse::<DeclineLimit>().unwrap().to_string(), "10");
        assert!(!limit.reached_by(Money::new(i64::MIN, Currency::USD)));
        // The largest limit and the largest amount do not overflow.
        let huge: DeclineLimit = "999999999999999999".parse().unwrap();
        assert!(!huge.reached_by(usd(i64::MAX)));
        let tiny: DeclineLimit = "0.00000000000000001".parse().unwrap();
        assert!(tiny.reached_by(usd(i64::MAX)) && !tiny.reached_by(usd(0)));
    }

    #[test]
    fn bad_limits_are_refused() {
        for bad in [
            "",
            "-1",
            "1e3",
            "abc",
            "1.",
            ".5",
            "1.2.3",
            "1 000",
            "9999999999999999999",
        ] {
            assert!(bad.parse::<DeclineLimit>().is_err(), "{bad:?} accepted");
        }
    }
}
