//! The sales-system operator.
#![forbid(unsafe_code)]
