//! Just enough JSON writing for `status --json` and `info --json`: the
//! documents are flat and built by hand, so a serializer crate would cost
//! size for nothing.

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            '\t' => out += "\\t",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An object under construction: `Object::new().field("a", 1).finish()`.
#[derive(Default)]
pub struct Object(String);

impl Object {
    pub fn new() -> Self {
        Object(String::from("{"))
    }

    /// Adds `"key":value` where `value` is already JSON.
    pub fn raw(mut self, key: &str, value: impl AsRef<str>) -> Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0 += &string(key);
        self.0.push(':');
        self.0 += value.as_ref();
        self
    }

    pub fn str(self, key: &str, value: &str) -> Self {
        self.raw(key, string(value))
    }

    pub fn num(self, key: &str, value: impl std::fmt::Display) -> Self {
        self.raw(key, value.to_string())
    }

    pub fn opt_num(self, key: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn bool(self, key: &str, value: bool) -> Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `[a,b,...]` from items already in JSON.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().collect();
    format!("[{}]", v.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_builds() {
        assert_eq!(string("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\u0001é""#);
        let o = Object::new()
            .str("s", "x")
            .num("n", 3)
            .opt_num("m", None::<u32>)
            .bool("b", true)
            .raw("l", array(["1".to_string(), "2".to_string()]))
            .finish();
        assert_eq!(o, r#"{"s":"x","n":3,"m":null,"b":true,"l":[1,2]}"#);
        assert_eq!(Object::new().finish(), "{}");
    }
}
