//! What the admin forms share: one field error from core mapped next to its field, and
//! reading a submitted form as pairs (repeated names, like checkboxes, are kept).

use std::collections::HashMap;

/// A validation error to show next to `field` (core's `Error::Invalid { field, .. }`).
#[derive(Debug, Clone, Default)]
pub struct FormErrors(Option<(String, String)>);

impl FormErrors {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(Some((field.into(), message.into())))
    }

    /// The message for `field`, if the error is about it.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.as_ref().filter(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }

    /// The error, whatever its field, for the summary at the top of the form.
    pub fn summary(&self) -> Option<(&str, &str)> {
        self.0.as_ref().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// A submitted form: every value of every name, in order.
#[derive(Debug, Clone, Default)]
pub struct Pairs(HashMap<String, Vec<String>>);

impl Pairs {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        Self(map)
    }

    /// The first value of `name`, or "".
    pub fn one(&self, name: &str) -> String {
        self.0.get(name).and_then(|v| v.first()).cloned().unwrap_or_default()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    /// A checkbox: present and not "off".
    pub fn checked(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v.iter().any(|x| is_checked(x)))
    }
}

/// Whether a checkbox's submitted value means checked: anything but "off".
pub fn is_checked(value: &str) -> bool {
    value != "off"
}

/// Splits a textarea into its non-empty lines (or whitespace-separated items).
pub fn lines(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// An optional whole number of seconds; "" means none.
pub fn optional_seconds(field: &'static str, text: &str) -> Result<Option<i64>, FormErrors> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| FormErrors::one(field, "must be a whole number of seconds, or empty for the default"))
}

/// An optional text; blank means none.
pub fn optional_text(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_helpers() {
        let p = Pairs::new(vec![
            ("g".into(), "a".into()),
            ("g".into(), "b".into()),
            ("x".into(), "on".into()),
        ]);
        assert_eq!(p.all("g"), vec!["a", "b"]);
        assert_eq!(p.one("g"), "a");
        assert_eq!(p.one("missing"), "");
        assert!(p.checked("x"));
        assert!(!p.checked("y"));
        assert_eq!(lines(" a\r\n\n b c "), vec!["a", "b", "c"]);
        assert_eq!(optional_seconds("t", " ").ok(), Some(None));
        assert_eq!(optional_seconds("t", "60").ok(), Some(Some(60)));
        assert!(optional_seconds("t", "x").err().is_some_and(|e| e.get("t").is_some()));
        let e = FormErrors::one("name", "bad");
        assert_eq!(e.get("name"), Some("bad"));
        assert_eq!(e.get("kind"), None);
    }
}
