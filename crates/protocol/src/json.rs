//! JSON read strictly.

/// A JSON object whose members are read with their names checked: a repeated one is
/// refused (RFC 8259 §4 leaves which one counts to each parser, so two readers of one
/// body could see two different requests). The admin API's patches and `/register` read
/// bodies with it.
pub struct Members(pub serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = serde_json::Map::new();
                while let Some((name, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format_args!("duplicate field `{name}`")));
                    }
                    members.insert(name, value);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visit)
    }
}
