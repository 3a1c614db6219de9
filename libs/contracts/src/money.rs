//! Money: integer minor units plus an ISO 4217 currency code. Never floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// An ISO 4217 currency code: three upper-case ASCII letters, e.g. `USD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("currency must be a three-letter ISO 4217 code such as \"USD\", got {0:?}")]
pub struct InvalidCurrency(pub String);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// How many decimal places the currency's minor unit has (ISO 4217 exponent).
    pub fn minor_unit_digits(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = InvalidCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_alphabetic) {
            let upper = s.to_ascii_uppercase();
            let b = upper.as_bytes();
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(InvalidCurrency(s.to_owned()))
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Za-z]{3}$"))
            .description(Some("ISO 4217 currency code"))
            .examples([serde_json::json!("USD")])
            .into()
    }
}

impl ToSchema for Currency {}

/// An amount of money in the currency's minor units (cents for USD): `{"amount": 1999,
/// "currency": "USD"}` is 19.99 US dollars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Amount in minor units (for USD: cents).
    #[schema(example = 1999)]
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("cannot add {0} to {1}: currencies differ")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflows")]
    Overflow,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(0, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(other.currency, self.currency));
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        self.amount
            .checked_mul(quantity)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        if digits == 0 {
            return write!(f, "{} {}", self.amount, self.currency);
        }
        let scale = 10i64.pow(digits);
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let scale = scale as u64;
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / scale,
            abs % scale,
            self.currency,
            width = digits as usize
        )
    }
}

/// An amount in major units as seed 004's clients send it: a JSON number such as
/// `200.50` (or a string `"200.50"`). It is read from the number's exact text, never
/// through a float, and turned into minor units for a given currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecimalAmount(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecimalError {
    #[error("amount must be a decimal number such as 200.50, got {0:?}")]
    NotANumber(String),
    #[error("amount {amount} has more decimal places than {currency} allows ({digits})")]
    TooPrecise {
        amount: String,
        currency: Currency,
        digits: u32,
    },
    #[error("amount {0} is too large")]
    TooLarge(String),
}

impl DecimalAmount {
    pub fn new(text: impl Into<String>) -> Self {
        DecimalAmount(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The amount in `currency`'s minor units: `200.5` USD is 20050.
    pub fn to_minor(&self, currency: Currency) -> Result<Money, DecimalError> {
        let text = self.0.trim();
        let not_a_number = || DecimalError::NotANumber(self.0.clone());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_number());
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) || digits.ends_with('.') {
            return Err(not_a_number());
        }
        let places = currency.minor_unit_digits();
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > places as usize {
            return Err(DecimalError::TooPrecise {
                amount: self.0.clone(),
                currency,
                digits: places,
            });
        }
        let too_large = || DecimalError::TooLarge(self.0.clone());
        let whole: i64 = whole.parse().map_err(|_| too_large())?;
        let mut frac: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| too_large())?
        };
        frac *= 10i64.pow(places - fraction.len() as u32);
        let minor = whole
            .checked_mul(10i64.pow(places))
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(too_large)?;
        Ok(Money::new(if negative { -minor } else { minor }, currency))
    }

    /// Major units of `money` as exact decimal text: 20050 USD cents is `200.5`,
    /// 20000 is `200`.
    pub fn from_money(money: Money) -> Self {
        let places = money.currency.minor_unit_digits();
        let scale = 10u64.pow(places);
        let abs = money.amount.unsigned_abs();
        let sign = if money.amount < 0 { "-" } else { "" };
        let whole = abs / scale;
        let frac = abs % scale;
        if frac == 0 {
            return DecimalAmount(format!("{sign}{whole}"));
        }
        let frac = format!("{frac:0width$}", width = places as usize);
        DecimalAmount(format!("{sign}{whole}.{}", frac.trim_end_matches('0')))
    }
}

impl Serialize for DecimalAmount {
    /// As a JSON number written from the exact text (no float on the way).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::value::RawValue::from_string(self.0.clone()) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for DecimalAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None => text,
        };
        if text.contains(['e', 'E'])
            || text.is_empty()
            || text.starts_with(['{', '[', 'n', 't', 'f'])
        {
            return Err(serde::de::Error::custom(format!(
                "amount must be a decimal number such as 200.50, got {text}"
            )));
        }
        Ok(DecimalAmount(text.to_owned()))
    }
}

impl utoipa::PartialSchema for DecimalAmount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "Amount in major units (200.50 is two hundred dollars and fifty cents); read exactly, never as a float",
            ))
            .examples([serde_json::json!(200.5)])
            .into()
    }
}

impl ToSchema for DecimalAmount {}

/// Schemas of amounts in requests that take only some of them, for
/// `#[schema(schema_with = ...)]` on a field whose Rust type stays [`Money`] or
/// [`DecimalAmount`]: what the document says must be what the route accepts.
pub mod request_schemas {
    use utoipa::PartialSchema;
    use utoipa::openapi::schema::{
        KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };

    use super::Currency;

    /// The most a decimal amount in major units may be in a request (10^13: any
    /// price or payment, with its cents still exact in 64 bits).
    pub const MAX_DECIMAL_AMOUNT: f64 = 1e13;

    fn money(minimum: i64, nullable: bool) -> Object {
        let kind = if nullable {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        };
        ObjectBuilder::new()
            .schema_type(kind)
            .description(Some(format!(
                "An amount in the currency's minor units (cents for USD), at least {minimum}: \
                 `{{\"amount\": 1999, \"currency\": \"USD\"}}` is 19.99 US dollars."
            )))
            .property(
                "amount",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(minimum))
                    .examples([serde_json::json!(1999)]),
            )
            .required("amount")
            .property("currency", Currency::schema())
            .required("currency")
            .build()
    }

    /// [`super::Money`] whose amount cannot be negative (a price).
    pub fn non_negative_money() -> Object {
        money(0, false)
    }

    /// An optional (`null`able) [`super::Money`] whose amount cannot be negative.
    pub fn optional_non_negative_money() -> Object {
        money(0, true)
    }

    /// [`super::Money`] of at least one minor unit (a payment).
    pub fn positive_money() -> Object {
        money(1, false)
    }

    fn decimal(minimum: f64) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "Amount in major units with at most two decimal places (200.50 is two hundred \
                 dollars and fifty cents; a currency without minor units, such as JPY, takes \
                 whole numbers only); read exactly, never as a float",
            ))
            .minimum(Some(minimum))
            .maximum(Some(MAX_DECIMAL_AMOUNT))
            .multiple_of(Some(0.01))
            .examples([serde_json::json!(200.5)])
            .build()
    }

    /// [`super::DecimalAmount`] that cannot be negative (a price).
    pub fn non_negative_decimal_amount() -> Object {
        decimal(0.0)
    }

    /// [`super::DecimalAmount`] of at least one cent (a payment).
    pub fn positive_decimal_amount() -> Object {
        decimal(0.01)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_amounts_are_exact() {
        let usd = Currency::USD;
        let parse =
            |json: &str| serde_json::from_str::<DecimalAmount>(json).map(|d| d.to_minor(usd));
        assert_eq!(parse("200.50").unwrap().unwrap().amount, 20050);
        assert_eq!(parse("200").unwrap().unwrap().amount, 20000);
        assert_eq!(parse("0.1").unwrap().unwrap().amount, 10);
        assert_eq!(parse("\"19.99\"").unwrap().unwrap().amount, 1999);
        assert_eq!(parse("1.230").unwrap().unwrap().amount, 123);
        assert!(matches!(
            parse("1.234").unwrap(),
            Err(DecimalError::TooPrecise { .. })
        ));
        assert!(parse("1e3").is_err());
        assert!(parse("true").is_err());
        assert!(matches!(
            parse("\"12a\"").unwrap(),
            Err(DecimalError::NotANumber(_))
        ));
        assert!(matches!(
            parse("99999999999999999999").unwrap(),
            Err(DecimalError::TooLarge(_))
        ));
        let jpy: Currency = "JPY".parse().unwrap();
        assert!(DecimalAmount::new("1.5").to_minor(jpy).is_err());
        assert_eq!(DecimalAmount::new("150").to_minor(jpy).unwrap().amount, 150);
    }

    #[test]
    fn decimal_amounts_print_as_json_numbers() {
        let show = |cents| {
            serde_json::to_string(&DecimalAmount::from_money(Money::new(cents, Currency::USD)))
                .unwrap()
        };
        assert_eq!(show(20050), "200.5");
        assert_eq!(show(20000), "200");
        assert_eq!(show(5), "0.05");
        assert_eq!(show(-150), "-1.5");
        let v: serde_json::Value =
            serde_json::from_str(&format!("{{\"amount\": {}}}", show(20050))).unwrap();
        assert_eq!(v["amount"], serde_json::json!(200.5));
    }

    #[test]
    fn currency_parses_and_normalises() {
        assert_eq!("usd".parse::<Currency>().unwrap(), Currency::USD);
        assert!("US".parse::<Currency>().is_err());
        assert!("U$D".parse::<Currency>().is_err());
        assert!("ÜSD".parse::<Currency>().is_err());
    }

    #[test]
    fn money_adds_only_same_currency() {
        let eur: Currency = "EUR".parse().unwrap();
        let a = Money::new(150, Currency::USD);
        assert_eq!(a.checked_add(a).unwrap().amount, 300);
        assert_eq!(
            a.checked_add(Money::new(1, eur)),
            Err(MoneyError::CurrencyMismatch(eur, Currency::USD))
        );
        assert_eq!(
            Money::new(i64::MAX, Currency::USD).checked_mul(2),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn money_displays_with_minor_units() {
        assert_eq!(Money::new(1999, Currency::USD).to_string(), "19.99 USD");
        assert_eq!(Money::new(-5, Currency::USD).to_string(), "-0.05 USD");
        assert_eq!(
            Money::new(500, "JPY".parse().unwrap()).to_string(),
            "500 JPY"
        );
        assert_eq!(
            Money::new(1234, "KWD".parse().unwrap()).to_string(),
            "1.234 KWD"
        );
    }

    #[test]
    fn money_json_shape() {
        let m: Money = serde_json::from_str(r#"{"amount": 250, "currency": "usd"}"#).unwrap();
        assert_eq!(m, Money::new(250, Currency::USD));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"amount":250,"currency":"USD"}"#
        );
        assert!(serde_json::from_str::<Money>(r#"{"amount": 2.5, "currency": "USD"}"#).is_err());
    }
}
