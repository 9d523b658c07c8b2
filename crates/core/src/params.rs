//! Request parameters as received (RFC 6749 §3.1), shared by the authorization and the
//! logout request: one rule for unknown, empty and repeated parameters.

/// Fills the fields of `params` that `slot` names from `pairs`. Unknown names are
/// ignored; an empty value counts as absent (OIDC Core §3.1.2.1) but still as sent, so
/// `state=&state=x` is a repeat. Returns the names sent more than once, each once, in
/// the order they were first repeated; their first value is kept.
pub fn fill<P>(
    params: &mut P,
    pairs: impl IntoIterator<Item = (String, String)>,
    slot: for<'a> fn(&'a mut P, &str) -> Option<&'a mut Option<String>>,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut repeated: Vec<String> = Vec::new();
    for (k, v) in pairs {
        let Some(field) = slot(params, &k) else { continue };
        if seen.contains(&k) {
            if !repeated.contains(&k) {
                repeated.push(k);
            }
            continue;
        }
        *field = Some(v).filter(|v| !v.is_empty());
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
    fn empty_is_absent_but_sent_and_unknown_is_ignored() {
        let pairs = [("a", ""), ("x", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("b", "5")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let mut p = Two::default();
        let repeated = fill(&mut p, pairs, slot);
        assert_eq!(repeated, ["a", "b"]);
        assert_eq!((p.a, p.b.as_deref()), (None, Some("3")));
    }
}
