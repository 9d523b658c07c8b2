//! Request parameters as received (RFC 6749 §3.1), shared by the authorization and the
//! logout request: one rule for unknown, empty and repeated parameters.

/// Fills the fields of `params` that `slot` names from `pairs`. Unknown names are
/// ignored; so is a parameter without a value (RFC 6749 §3.1: "treated as if [it was]
/// omitted", OIDC Core §3.1.2.1), so `state=&state=x` is `state=x`, not a repeat. Returns
/// the names sent more than once with a value, each once, in the order they were first
/// repeated; their first value is kept.
pub fn fill<P>(
    params: &mut P,
    pairs: impl IntoIterator<Item = (String, String)>,
    slot: for<'a> fn(&'a mut P, &str) -> Option<&'a mut Option<String>>,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut repeated: Vec<String> = Vec::new();
    for (k, v) in pairs {
        let Some(field) = slot(params, &k) else { continue };
        if v.is_empty() {
            continue;
        }
        if seen.contains(&k) {
            if !repeated.contains(&k) {
                repeated.push(k);
            }
            continue;
        }
        *field = Some(v);
        seen.push(k);
    }
    repeated
}

/// Whether `value` holds NUL (U+0000). PostgreSQL's text cannot, SQLite's can: a value
/// that would be stored or looked up is refused with one (or found nowhere) before it
/// reaches a store, so both stores answer alike instead of one failing.
pub fn holds_nul(value: &str) -> bool {
    value.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Two {
        a: Option<String>,
        b: Option<String>,
    }

    fn slot<'a>(p: &'a mut Two, name: &str) -> Option<&'a mut Option<String>> {
        match name {
            "a" => Some(&mut p.a),
            "b" => Some(&mut p.b),
            _ => None,
        }
    }

    #[test]
    fn empty_is_omitted_and_unknown_is_ignored() {
        let pairs = [
            ("a", ""),
            ("x", "1"),
            ("a", "2"),
            ("b", "3"),
            ("a", "4"),
            ("b", "5"),
            ("b", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut p = Two::default();
        let repeated = fill(&mut p, pairs, slot);
        assert_eq!(repeated, ["a", "b"]);
        assert_eq!((p.a.as_deref(), p.b.as_deref()), (Some("2"), Some("3")));
        let pairs = [("a", ""), ("a", "1"), ("b", "2"), ("b", "")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut p = Two::default();
        assert!(fill(&mut p, pairs, slot).is_empty());
        assert_eq!((p.a.as_deref(), p.b.as_deref()), (Some("1"), Some("2")));
    }
}
