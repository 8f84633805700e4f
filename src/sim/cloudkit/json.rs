//! Direct JSON writing for large responses: records are written field by field into one
//! `String` (no intermediate `serde_json::Value` tree), honouring `desiredKeys`.

use std::collections::HashSet;
use std::fmt::Write as _;

/// Append `s` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => {
                out.push_str(&s[start..i]);
                let _ = write!(out, "\\u{:04x}", c as u32);
                start = i + c.len_utf8();
                continue;
            }
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(esc);
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Append a finite float (non-finite values become 0, which JSON cannot otherwise carry).
pub fn number(out: &mut String, x: f64) {
    if x.is_finite() {
        let _ = write!(out, "{x:?}");
    } else {
        out.push('0');
    }
}

/// The `desiredKeys` of a request: None = every field.
pub type Desired = Option<HashSet<String>>;

/// Writes the members of a record's `fields` object.
pub struct Fields<'a> {
    out: &'a mut String,
    first: bool,
    desired: Option<&'a HashSet<String>>,
}

impl<'a> Fields<'a> {
    /// Start writing members into `out` (the caller writes the braces).
    pub fn new(out: &'a mut String, desired: &'a Desired) -> Self {
        Fields {
            out,
            first: true,
            desired: desired.as_ref(),
        }
    }

    /// True if the request wants this field.
    pub fn wants(&self, name: &str) -> bool {
        self.desired.is_none_or(|d| d.contains(name))
    }

    /// Start `"name":{"value":`; false (and nothing written) when not wanted.
    fn open(&mut self, name: &str) -> bool {
        if !self.wants(name) {
            return false;
        }
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, name);
        self.out.push_str(":{\"value\":");
        true
    }

    fn close(&mut self, ty: &str) {
        self.out.push_str(",\"type\":\"");
        self.out.push_str(ty);
        self.out.push_str("\"}");
    }

    /// An integer-valued field (`INT64`, `TIMESTAMP`).
    pub fn int(&mut self, name: &str, v: i64, ty: &str) {
        if self.open(name) {
            let _ = write!(self.out, "{v}");
            self.close(ty);
        }
    }

    /// A string-valued field (`STRING`, `ENCRYPTED_BYTES`).
    pub fn string(&mut self, name: &str, v: &str, ty: &str) {
        if self.open(name) {
            string(self.out, v);
            self.close(ty);
        }
    }

    /// A `DOUBLE` field.
    pub fn double(&mut self, name: &str, v: f64) {
        if self.open(name) {
            number(self.out, v);
            self.close("DOUBLE");
        }
    }

    /// A field whose value the closure writes as raw JSON.
    pub fn raw(&mut self, name: &str, ty: &str, value: impl FnOnce(&mut String)) {
        if self.open(name) {
            value(self.out);
            self.close(ty);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_parse_back() {
        for s in [
            "plain",
            "quote\"back\\slash",
            "new\nline\u{1}ctl",
            "Été 写真 🐶",
            "a/b:c*d?e<f>g|h\"i",
        ] {
            let mut out = String::new();
            string(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn fields_honour_desired_keys() {
        let desired: Desired = Some(["b".to_string()].into());
        let mut out = String::from("{");
        let mut f = Fields::new(&mut out, &desired);
        f.int("a", 1, "INT64");
        f.int("b", 2, "INT64");
        f.double("c", 1.5);
        out.push('}');
        assert_eq!(out, r#"{"b":{"value":2,"type":"INT64"}}"#);
        let all: Desired = None;
        let mut out = String::from("{");
        let mut f = Fields::new(&mut out, &all);
        f.double("c", 1.0);
        f.string("d", "x", "STRING");
        out.push('}');
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["c"]["value"], 1.0);
        assert_eq!(v["d"]["type"], "STRING");
    }
}
