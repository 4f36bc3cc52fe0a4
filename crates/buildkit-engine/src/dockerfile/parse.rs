//! The Dockerfile as BuildKit's parser reads it: parser directives (`# escape=`,
//! `# syntax=`), comments, line continuations, heredocs, instructions with their
//! `--flags`, and the JSON or shell form of their arguments. Errors carry the line BuildKit
//! reports them on.

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub escape: char,
    /// The `# syntax=` directive (any of BuildKit's spellings), when there is one.
    pub syntax: Option<String>,
    pub instructions: Vec<Instruction>,
}

/// One instruction (an `ONBUILD` holds its trigger in `trigger`).
#[derive(Debug, Clone)]
pub(crate) struct Instruction {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// Lower case (`copy`).
    pub cmd: String,
    /// As written, as the instruction has them (`--from=build`).
    pub flags: Vec<String>,
    /// The rest of the logical line after the flags, trimmed.
    pub rest: String,
    /// The arguments in JSON form, when they are a JSON array of strings.
    pub json: Option<Vec<String>>,
    /// Heredoc names (`<<EOF` gives `EOF`).
    pub heredocs: Vec<String>,
    pub trigger: Option<Box<Instruction>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

const MAYBE_JSON: [&str; 7] = ["add", "copy", "volume", "cmd", "entrypoint", "run", "shell"];

/// Whitespace as BuildKit's `reWhitespace` splits on.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Splits on runs of whitespace, as `reWhitespace.Split`.
pub(crate) fn whitespace_words(s: &str) -> Vec<String> {
    s.split(is_ws)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `# key=value` parser directive, as BuildKit's directive parser reads one.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#')?.trim_start();
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let key = key.to_ascii_lowercase();
    let value = value.trim();
    if value.is_empty() || !matches!(key.as_str(), "syntax" | "escape" | "check") {
        return None;
    }
    Some((key, value.to_owned()))
}

/// The line less a continuation token at its end, and whether it continues.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        // An escaped escape token does not continue the line ("a \\").
        if before.is_empty() || !before.ends_with(escape) {
            return (before, true);
        }
    }
    (line, false)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Parses `text` (the whole Dockerfile).
pub(crate) fn parse(text: &str) -> Result<Parsed, ParseError> {
    if text.is_empty() {
        return Err(err(0, "the Dockerfile cannot be empty"));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut directives_done = false;
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i].trim_start();
        i += 1;
        let start = i;
        if !directives_done {
            match directive(raw) {
                Some((key, value)) => {
                    if seen.contains(&key) {
                        return Err(err(
                            start,
                            format!("only one {key} parser directive can be used"),
                        ));
                    }
                    seen.push(key.clone());
                    match key.as_str() {
                        "escape" => {
                            escape = match value.as_str() {
                                "\\" => '\\',
                                "`" => '`',
                                _ => {
                                    return Err(err(
                                        start,
                                        format!(
                                            "invalid escape token '{value}' does not match ` or \\"
                                        ),
                                    ));
                                }
                            }
                        }
                        "syntax" => syntax = Some(value),
                        _ => {}
                    }
                    continue;
                }
                None => directives_done = true,
            }
        }
        if is_comment(raw) {
            continue;
        }
        let (first, mut continues) = continuation(raw, escape);
        if !continues && first.is_empty() {
            continue;
        }
        let mut logical = first.to_owned();
        while continues && i < lines.len() {
            let l = lines[i];
            i += 1;
            if is_comment(l) || l.trim().is_empty() {
                continue;
            }
            let (part, more) = continuation(l, escape);
            logical.push_str(part);
            continues = more;
        }
        let mut ins = instruction(&logical, escape, start)?;
        let heredoc_holder = match &ins.trigger {
            Some(t) => t.cmd.clone(),
            None => ins.cmd.clone(),
        };
        let json = ins
            .trigger
            .as_ref()
            .map_or(ins.json.is_some(), |t| t.json.is_some());
        if matches!(heredoc_holder.as_str(), "run" | "copy" | "add")
            && !json
            && logical.contains("<<")
        {
            for name in heredoc_names(&logical) {
                let (name, chomp) = name;
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let candidate = if chomp { l.trim_start_matches('\t') } else { l };
                    if candidate == name {
                        terminated = true;
                        break;
                    }
                }
                if !terminated {
                    return Err(err(start, "unterminated heredoc"));
                }
                ins.heredocs.push(name);
            }
        }
        out.push(ins);
    }
    if out.is_empty() {
        return Err(err(lines.len(), "file with no instructions"));
    }
    Ok(Parsed {
        escape,
        syntax: syntax.or_else(|| other_syntax_spelling(text)),
        instructions: out,
    })
}

/// BuildKit also takes `// syntax=...` and a JSON `{"syntax": ...}` as the syntax directive.
fn other_syntax_spelling(text: &str) -> Option<String> {
    for line in text.lines() {
        let Some(body) = line.strip_prefix("//") else {
            break;
        };
        if let Some(("syntax", v)) = body
            .trim()
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
        {
            return Some(v.to_owned());
        }
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("syntax")?.as_str().map(str::to_owned)
}

/// The heredocs a line opens, as `(name, chomp)`.
fn heredoc_names(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for word in quoted_words(line) {
        let digits = word.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = digits.strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let rest = rest.trim_start();
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        let name: String = rest.chars().filter(|c| *c != '"' && *c != '\'').collect();
        if !name.is_empty() {
            out.push((name, chomp));
        }
    }
    out
}

/// Splits on whitespace outside quotes, keeping the quotes.
fn quoted_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// One logical line as an instruction.
fn instruction(line: &str, escape: char, at: usize) -> Result<Instruction, ParseError> {
    let line = line.trim_matches(|c: char| c.is_whitespace());
    let (cmd, rest) = match line.find(is_ws) {
        Some(n) => (&line[..n], line[n..].trim_start_matches(is_ws)),
        None => (line, ""),
    };
    let (flags, rest) = flags(rest, escape);
    let cmd = cmd.to_ascii_lowercase();
    let rest = rest.trim().to_owned();
    let mut json = None;
    if MAYBE_JSON.contains(&cmd.as_str())
        && rest.starts_with('[')
        && let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(&rest)
    {
        let strings: Option<Vec<String>> = values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
        match strings {
            Some(s) => json = Some(s),
            None => {
                return Err(err(
                    at,
                    "when using JSON array syntax, arrays must be comprised of strings only",
                ));
            }
        }
    }
    let trigger = if cmd == "onbuild" && !rest.is_empty() {
        Some(Box::new(instruction(&rest, escape, at)?))
    } else {
        None
    };
    Ok(Instruction {
        line: at,
        cmd,
        flags,
        rest,
        json,
        heredocs: Vec::new(),
        trigger,
    })
}

/// The leading `--flags` of an instruction's arguments, and what follows them.
fn flags(s: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let bytes: Vec<(usize, char)> = s.char_indices().collect();
    let mut k = 0;
    loop {
        while k < bytes.len() && bytes[k].1.is_whitespace() {
            k += 1;
        }
        if k >= bytes.len() {
            return (flags, "");
        }
        let pos = bytes[k].0;
        if !s[pos..].starts_with("--") {
            return (flags, &s[pos..]);
        }
        let mut word = String::new();
        let mut quote = None;
        while k < bytes.len() {
            let c = bytes[k].1;
            match quote {
                Some(q) if c == q => quote = None,
                None if c.is_whitespace() => break,
                None if c == '"' || c == '\'' => quote = Some(c),
                _ if c == escape && k + 1 < bytes.len() => {
                    k += 1;
                    word.push(bytes[k].1);
                }
                _ if c == escape => {}
                _ => word.push(c),
            }
            k += 1;
        }
        if word == "--" {
            let rest = bytes.get(k).map_or("", |(p, _)| &s[*p..]);
            return (flags, rest);
        }
        flags.push(word);
    }
}

/// Quote-aware words (BuildKit's `parseWords`), quotes kept.
pub(crate) fn words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match quote {
            None if c.is_whitespace() => {
                if blank_ok || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                blank_ok = false;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if let Some(n) = it.next() {
                        cur.push(c);
                        cur.push(n);
                    }
                    continue;
                }
                cur.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if let Some(n) = it.next() {
                        cur.push(c);
                        cur.push(n);
                    }
                    continue;
                }
                cur.push(c);
            }
        }
    }
    if blank_ok || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_continuations_comments_directives_and_heredocs() {
        let p = parse(
            "# escape=`\n# syntax=docker/dockerfile:1\nFROM scratch AS a\nCOPY --from=x `\n  # a comment\n\n  a.txt /b/\nRUN <<EOF cat\nhello\nEOF\ncopy [\"a b\", \"/\"]\n",
        )
        .unwrap();
        assert_eq!(p.escape, '`');
        assert_eq!(p.syntax.as_deref(), Some("docker/dockerfile:1"));
        let i = &p.instructions;
        assert_eq!(i.len(), 4);
        assert_eq!((i[1].line, i[1].cmd.as_str()), (4, "copy"));
        assert_eq!(i[1].flags, vec!["--from=x"]);
        assert_eq!(whitespace_words(&i[1].rest), vec!["a.txt", "/b/"]);
        assert_eq!(i[2].heredocs, vec!["EOF"]);
        assert_eq!(
            (i[3].line, i[3].json.clone()),
            (11, Some(vec!["a b".into(), "/".into()]))
        );
    }

    #[test]
    fn fails_where_buildkit_does() {
        assert_eq!(
            parse("").unwrap_err().message,
            "the Dockerfile cannot be empty"
        );
        assert_eq!(
            parse("# x\n\n").unwrap_err().message,
            "file with no instructions"
        );
        assert_eq!(parse("FROM scratch\nRUN <<EOF\nx\n").unwrap_err().line, 2);
        assert!(parse("FROM scratch\nCMD [1]\n").is_err());
        // Not JSON at all: the shell form.
        assert!(parse("FROM scratch\nCMD [oops\n").is_ok());
    }
}
