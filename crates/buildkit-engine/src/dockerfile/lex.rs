//! Word expansion as BuildKit's Dockerfile shell lexer does it for one word (a COPY source,
//! a FROM base name, an ENV value): quotes, the escape token, `$VAR`, `${VAR}` and the
//! `:-`, `-`, `:+`, `+`, `:?`, `?` modifiers. What it cannot be sure of (a variable whose
//! value is unknown, the pattern modifiers `#`, `%`, `/`, a lexing error BuildKit would
//! report itself) gives `None`: the caller then checks nothing that depends on the word.

/// What a variable holds, as far as the checker knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Var {
    Set(String),
    Unset,
    Unknown,
}

/// Expands `word`; `None` when the result cannot be known.
pub(crate) fn expand(word: &str, escape: char, env: &dyn Fn(&str) -> Var) -> Option<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut lx = Lexer {
        chars: &chars,
        pos: 0,
        escape,
        env,
    };
    let out = lx.until(None)?;
    (lx.pos == chars.len()).then_some(out)
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Var,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Reads up to (and consuming) `stop`, or to the end when `stop` is `None`.
    fn until(&mut self, stop: Option<char>) -> Option<String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.next() else {
                // A missing `}` is a lexing error BuildKit reports itself.
                return stop.is_none().then_some(out);
            };
            if Some(c) == stop {
                return Some(out);
            }
            match c {
                '\'' => loop {
                    match self.next()? {
                        '\'' => break,
                        q => out.push(q),
                    }
                },
                '"' => loop {
                    match self.next()? {
                        '"' => break,
                        '$' => out.push_str(&self.dollar()?),
                        e if e == self.escape => match self.peek()? {
                            n @ ('"' | '$') => {
                                self.pos += 1;
                                out.push(n);
                            }
                            n if n == self.escape => {
                                self.pos += 1;
                                out.push(n);
                            }
                            _ => out.push(e),
                        },
                        q => out.push(q),
                    }
                },
                '$' => out.push_str(&self.dollar()?),
                e if e == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn value(&self, name: &str) -> Var {
        (self.env)(name)
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Option<String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return None;
                }
                let colon = self.peek() == Some(':');
                if colon {
                    self.pos += 1;
                }
                let op = self.next()?;
                if op == '}' && !colon {
                    return known(self.value(&name));
                }
                let var = self.value(&name);
                let word = |lx: &mut Self| lx.until(Some('}'));
                match op {
                    '-' => {
                        let w = word(self)?;
                        match var {
                            Var::Unknown => None,
                            Var::Set(v) if !(colon && v.is_empty()) => Some(v),
                            _ => Some(w),
                        }
                    }
                    '+' => {
                        let w = word(self)?;
                        match var {
                            Var::Unknown => None,
                            Var::Set(v) if !(colon && v.is_empty()) => Some(w),
                            _ => Some(String::new()),
                        }
                    }
                    '?' => {
                        word(self)?;
                        match var {
                            Var::Set(v) if !(colon && v.is_empty()) => Some(v),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                known(self.value(&name))
            }
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => None,
            _ => Some("$".to_owned()),
        }
    }
}

fn known(v: Var) -> Option<String> {
    match v {
        Var::Set(v) => Some(v),
        Var::Unset => Some(String::new()),
        Var::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Var {
        match name {
            "A" => Var::Set("a".into()),
            "E" => Var::Set(String::new()),
            "U" => Var::Unknown,
            _ => Var::Unset,
        }
    }

    fn x(w: &str) -> Option<String> {
        expand(w, '\\', &env)
    }

    #[test]
    fn expands_like_the_dockerfile_lexer() {
        assert_eq!(x("$A.txt").as_deref(), Some("a.txt"));
        assert_eq!(x("${A}b").as_deref(), Some("ab"));
        assert_eq!(x("${NO}a.txt").as_deref(), Some("a.txt"));
        assert_eq!(x("${E:-d}").as_deref(), Some("d"));
        assert_eq!(x("${E-d}").as_deref(), Some(""));
        assert_eq!(x("${A:+x}").as_deref(), Some("x"));
        assert_eq!(x("${NO+x}").as_deref(), Some(""));
        assert_eq!(x("'$A'").as_deref(), Some("$A"));
        assert_eq!(x("\"$A b\"").as_deref(), Some("a b"));
        assert_eq!(x("a\\$A").as_deref(), Some("a$A"));
        assert_eq!(x("cost$").as_deref(), Some("cost$"));
        assert_eq!(x("$U"), None);
        assert_eq!(x("${A#a}"), None);
        assert_eq!(x("\"open"), None);
        assert_eq!(x("${NO:?must}"), None);
    }
}
