//! JSON read strictly.

/// A JSON object whose members are read with their names checked, at every depth: a
/// repeated one is refused (RFC 8259 §4 leaves which one counts to each parser, so two
/// readers of one body could see two different requests, or two different keys in a
/// `jwks`). The admin API's patches and `/register` read bodies with it.
pub struct Members(pub serde_json::Map<String, serde_json::Value>);

/// Why [`object`] did not read a body.
#[derive(Debug)]
pub enum ObjectError {
    /// A member is named twice, in some object at some depth; the text says which.
    Repeated(String),
    /// JSON, but not an object.
    NotObject,
    /// Not JSON at all.
    NotJson,
}

/// `raw` as a JSON object with no member named twice at any depth ([`Members`]).
pub fn object(raw: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ObjectError> {
    match serde_json::from_slice::<Members>(raw) {
        Ok(members) => Ok(members.0),
        // The text `members` gives a repeat, below.
        Err(e) if e.to_string().starts_with("duplicate field") => Err(ObjectError::Repeated(e.to_string())),
        Err(_) if serde_json::from_slice::<serde_json::Value>(raw).is_ok() => Err(ObjectError::NotObject),
        Err(_) => Err(ObjectError::NotJson),
    }
}

/// Any JSON value, read as [`Members`] reads an object: no name twice in any object in it.
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(
                    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(serde_json::Value::Null))
            }
            fn visit_none<E>(self) -> Result<Strict, E> {
                Ok(Strict(serde_json::Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(item)) = seq.next_element::<Strict>()? {
                    items.push(item);
                }
                Ok(Strict(serde_json::Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Strict, A::Error> {
                Ok(Strict(serde_json::Value::Object(members(map)?)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The members of a JSON object, none named twice, their values read as [`Strict`].
fn members<'de, A: serde::de::MapAccess<'de>>(
    mut map: A,
) -> Result<serde_json::Map<String, serde_json::Value>, A::Error> {
    let mut members = serde_json::Map::new();
    while let Some((name, Strict(value))) = map.next_entry::<String, Strict>()? {
        if members.contains_key(&name) {
            return Err(serde::de::Error::custom(format_args!("duplicate field `{name}`")));
        }
        members.insert(name, value);
    }
    Ok(members)
}

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Members, A::Error> {
                Ok(Members(members(map)?))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<serde_json::Value, String> {
        serde_json::from_str::<Members>(raw)
            .map(|m| serde_json::Value::Object(m.0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn no_name_twice_at_any_depth() {
        let good = r#"{"a":1,"b":{"keys":[{"kty":"EC","x":"1"},{"kty":"RSA"}]},"c":[1,-2,3.5,true,null,"s"],"d":18446744073709551615}"#;
        assert_eq!(
            read(good).unwrap(),
            serde_json::from_str::<serde_json::Value>(good).unwrap()
        );
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"jwks":{"keys":[],"keys":[{"kty":"EC"}]}}"#,
            r#"{"jwks":{"keys":[{"kty":"EC","kty":"RSA"}]}}"#,
            r#"{"x":[[{"y":1,"y":1}]]}"#,
        ] {
            assert!(read(bad).unwrap_err().contains("duplicate field"), "{bad}");
        }
        assert!(read("[1]").is_err(), "an object is expected");
    }
}
