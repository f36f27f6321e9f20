//! `parse_stored` against `serde_json::from_slice`: the same verdict and the same value on
//! valid documents, damaged ones and arbitrary bytes.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::document::strategies::json_value;
use proptest::prelude::*;

/// Both parsers on `bytes`: equal values with their fields in the same order (a map's `==`
/// ignores order, its serialization does not), or both refuse.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = parse_stored(bytes);
    let theirs = serde_json::from_slice::<Value>(bytes);
    match (ours, theirs) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(
                serde_json::to_vec(&a).unwrap(),
                serde_json::to_vec(&b).unwrap()
            );
            prop_assert_eq!(a, b);
        }
        (Err(_), Err(_)) => {}
        (a, b) => prop_assert!(false, "parse_stored {a:?} but from_slice {b:?}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn valid_documents_parse_to_the_value_written(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let parsed = parse_stored(&bytes).unwrap();
        prop_assert_eq!(serde_json::to_vec(&parsed).unwrap(), bytes.clone());
        prop_assert_eq!(parsed, value);
        agree(&bytes)?;
    }

    #[test]
    fn damaged_documents_get_the_same_verdict(
        value in json_value(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = serde_json::to_vec(&value).unwrap();
        agree(&bytes[..cut.index(bytes.len() + 1)])?;
        let mut changed = bytes.clone();
        let at = flip.index(changed.len());
        changed[at] = byte;
        agree(&changed)?;
    }

    #[test]
    fn arbitrary_bytes_get_the_same_verdict(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        agree(&bytes)?;
    }
}

#[test]
fn a_repeated_key_keeps_its_first_place_and_its_last_value() {
    let bytes = br#"{"a":1,"b":{"c":[1,2],"c":[3]},"a":3}"#;
    let value = parse_stored(bytes).unwrap();
    assert_eq!(value, serde_json::from_slice::<Value>(bytes).unwrap());
    assert_eq!(
        value.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(value["a"], 3);
    assert_eq!(value["b"]["c"], serde_json::json!([3]));
}

#[test]
fn nesting_past_serde_json_limit_is_refused_as_by_from_slice() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert!(serde_json::from_slice::<Value>(deep.as_bytes()).is_err());
    assert!(parse_stored(deep.as_bytes()).is_err());
}
