//! Reader for OpenWrt's UCI file syntax, the node's one config format: the
//! same file is `/etc/config/re6st` on OpenWrt and any path elsewhere.
//!
//! ```text
//! # comment
//! config node 'node'
//!     option registry 'http://re6st.example/'
//!     list peer '192.0.2.1:1194'
//! ```
//! Values are bare words, `'single'` (no escapes) or `"double"` (backslash
//! escapes) quoted, and adjacent pieces concatenate (`'a'"b"` is `ab`), as in
//! libuci. `package NAME` lines (from `uci export`) are accepted and ignored.

use std::fmt;

/// One `config TYPE ['NAME']` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    /// 1-based line of the `config` keyword.
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// An `option` (`list == false`) or one `list` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: String,
    pub list: bool,
    pub line: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Split one line into words, honouring quotes; stops at an unquoted `#`.
fn words(line: &str, n: usize) -> Result<Vec<String>, Error> {
    let err = |msg: &str| Error {
        line: n,
        msg: msg.to_string(),
    };
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(out),
            _ => {}
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                c if c.is_whitespace() => break,
                '\'' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => word.push(c),
                            None => return Err(err("unterminated ' quote")),
                        }
                    }
                }
                '"' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some(c) => word.push(c),
                                None => return Err(err("unterminated \" quote")),
                            },
                            Some(c) => word.push(c),
                            None => return Err(err("unterminated \" quote")),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    if let Some(c) = chars.next() {
                        word.push(c);
                    }
                }
                c => {
                    chars.next();
                    word.push(c);
                }
            }
        }
        out.push(word);
    }
}

/// Parse a whole file.
pub fn parse(text: &str) -> Result<Vec<Section>, Error> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let w = words(line, n)?;
        let err = |msg: String| Error { line: n, msg };
        match w.first().map(String::as_str) {
            None | Some("package") => {}
            Some("config") => {
                if w.len() < 2 || w.len() > 3 {
                    return Err(err("expected: config TYPE ['NAME']".into()));
                }
                sections.push(Section {
                    kind: w[1].clone(),
                    name: w.get(2).cloned(),
                    line: n,
                    entries: Vec::new(),
                });
            }
            Some(kw @ ("option" | "list")) => {
                if w.len() != 3 {
                    return Err(err(format!("expected: {kw} NAME 'VALUE'")));
                }
                let section = sections
                    .last_mut()
                    .ok_or_else(|| err(format!("{kw} before any config section")))?;
                section.entries.push(Entry {
                    name: w[1].clone(),
                    value: w[2].clone(),
                    list: kw == "list",
                    line: n,
                });
            }
            Some(other) => return Err(err(format!("unknown keyword {other:?}"))),
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openwrt_style_file() {
        let text =
            "package re6st\n\n# node\nconfig node 'node'\n\toption registry 'http://192.0.2.1/'\n\
                    \tlist peer '198.51.100.1:1194' # first\n\tlist peer \"203.0.113.9:1194\"\n\
                    config lan\n\toption ifname br-lan\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].kind.as_str(), s[0].name.as_deref()),
            ("node", Some("node"))
        );
        assert_eq!(s[0].entries.len(), 3);
        assert_eq!(s[0].entries[1].value, "198.51.100.1:1194");
        assert!(s[0].entries[2].list && !s[0].entries[0].list);
        assert_eq!(s[0].entries[2].line, 7);
        assert_eq!(
            (s[1].name.as_deref(), s[1].entries[0].value.as_str()),
            (None, "br-lan")
        );
    }

    #[test]
    fn quoting_like_libuci() {
        let w = words(r#"option x 'a b'"c\"d"e\ f"#, 1).unwrap();
        assert_eq!(w, ["option", "x", "a bc\"de f"]);
        assert_eq!(
            words("option x '#not a comment'", 1).unwrap()[2],
            "#not a comment"
        );
        assert_eq!(words("option x ''", 1).unwrap()[2], "");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("config node\n\toption x 'open\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("unterminated"));
        assert_eq!(parse("option x y\n").unwrap_err().line, 1);
        assert_eq!(parse("config a\nbogus x y\n").unwrap_err().line, 2);
        assert_eq!(parse("config a\noption x\n").unwrap_err().line, 2);
        assert!(parse("config\n").is_err());
    }
}
