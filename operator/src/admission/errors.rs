//! The API server's `field.Error`, printed as Kubernetes 1.33 prints it
//! (`k8s.io/apimachinery/pkg/util/validation/field`): `<path>: <type>[: <value>][:
//! <detail>]`, the value quoted as Go's `%q` quotes, numbers as Go's `%v` prints them.

use std::fmt;

use serde_json::Value;

/// What kind of problem (`field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    /// A value of the wrong type (printed as `Invalid value`).
    TypeInvalid,
    NotSupported,
    TooLong,
    TooMany,
    Forbidden,
    Duplicate,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid | ErrorType::TypeInvalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::Duplicate => "Duplicate value",
        }
    }

    /// The schema problems after which the API server does not run the CEL rules
    /// (`hasBlockingErr`): the object has not the shape they were written for.
    pub fn blocks_rules(self) -> bool {
        matches!(
            self,
            ErrorType::NotSupported
                | ErrorType::Required
                | ErrorType::TooLong
                | ErrorType::TooMany
                | ErrorType::TypeInvalid
        )
    }
}

/// One problem of an object (`field.Error`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: ErrorType,
    /// `spec.gateway.nodePort`, `spec.gateway.trustedProxies[1]`; `<nil>` for the
    /// object itself.
    pub field: String,
    /// The value printed after the type; `None`: not printed.
    pub value: Option<Value>,
    pub detail: String,
}

/// The path the API server prints for the object itself.
pub const ROOT: &str = "<nil>";

impl FieldError {
    pub fn new(kind: ErrorType, field: &str, value: Option<Value>, detail: String) -> Self {
        FieldError {
            kind,
            field: if field.is_empty() { ROOT } else { field }.to_owned(),
            value,
            detail,
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(ErrorType::Required, field, None, detail.to_owned())
    }

    pub fn invalid(field: &str, value: impl Into<Value>, detail: String) -> Self {
        Self::new(ErrorType::Invalid, field, Some(value.into()), detail)
    }

    /// `<field> in body must be of type <expected>: "<actual>"`.
    pub fn type_invalid(field: &str, value: &Value, expected: &str) -> Self {
        let actual = json_type(value);
        Self::new(
            ErrorType::TypeInvalid,
            field,
            Some(actual.into()),
            format!(
                "{field} in body must be of type {expected}: {}",
                go_quote(actual)
            ),
        )
    }

    /// The line the API server adds when it skipped the CEL rules.
    pub fn rules_not_checked() -> Self {
        Self::new(
            ErrorType::Invalid,
            "",
            Some(Value::Null),
            "some validation rules were not checked because the object was invalid; \
             correct the existing errors to complete validation"
                .into(),
        )
    }

    /// `ErrorBody()`: the message without the path.
    pub fn body(&self) -> String {
        let mut s = self.kind.as_str().to_owned();
        let shows_value = !matches!(
            self.kind,
            ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong
        );
        if let (true, Some(value)) = (shows_value, &self.value) {
            s.push_str(": ");
            s.push_str(&go_value(value));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The JSON type of a value, as the OpenAPI validator names it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A bad value as `ErrorBody` prints it: strings quoted, `null` as the string
/// `"null"`, numbers and booleans plain, anything else as JSON.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// A number as Go's `%v` prints an `int64` or a `float64`.
pub fn go_number(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (None, Some(u), _) => u.to_string(),
        (None, None, Some(f)) => go_float(f),
        _ => n.to_string(),
    }
}

/// `%v` of a `float64`: the shortest representation, with an exponent (`1e+06`) from
/// 10^6 and below 10^-4.
pub fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
