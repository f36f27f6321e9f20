//! proptest strategies for JSON documents, shared by the tests of the modules that encode and
//! parse them.

use proptest::prelude::*;
use serde_json::Value;

/// JSON scalars, with the extremes and awkward values spelled out.
pub(crate) fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        // Any finite f64, including subnormals and -0.0: JSON cannot hold NaN or infinities.
        any::<u64>()
            .prop_map(f64::from_bits)
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

/// Nested JSON values up to a few levels deep.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}
