//! Dockerfile parsing and Docker's shell-style word expansion.
//!
//! The parser decides structure only: stages, keywords, flags, JSON (exec) vs shell form and
//! heredoc bodies. Argument text is kept raw (quotes and escapes intact) wherever Docker expands
//! it later, because only the executor knows which ARG/ENV values are in scope at each step; it
//! runs those words through [`expand`], which is also where quotes are removed.

use std::collections::HashSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dockerfile parse error line {} column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// From the `# escape=` directive; default `\`. Pass it to [`expand`].
    pub escape: char,
    /// Things the parser accepted but ignores, worth showing to the user.
    pub notes: Vec<String>,
    /// ARGs before the first FROM: (name, raw default).
    pub meta_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// Raw (unexpanded) image word after FROM.
    pub base: String,
    /// Raw `--platform` value.
    pub platform: Option<String>,
    pub line: usize,
    /// The FROM line as written (continuations joined).
    pub original: String,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The instruction as written, continuation lines joined (escape-newline removed), as Docker
    /// prints it in "Step n/m : ...".
    pub original: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CmdForm {
    /// JSON array form.
    Exec(Vec<String>),
    /// Shell form, raw text.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter with quotes removed.
    pub name: String,
    /// Body lines, each ending in '\n' (leading tabs already stripped for `<<-`).
    pub content: String,
    /// False if the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no expansion in the body.
    pub expand: bool,
    /// `<<-`.
    pub chomp_tabs: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// None for `HEALTHCHECK NONE`.
    pub test: Option<CmdForm>,
    /// Raw flags without `--`: interval, timeout, start-period, start-interval, retries.
    pub flags: Vec<(String, String)>,
}

/// Flags are (name without `--`, raw value); a bare `--name` has the value "true".
/// Flag values are raw: run them through [`expand`] (it strips quotes too).
/// JSON-form words (COPY/ADD/VOLUME) are stored as decoded by JSON; they have no quotes left to
/// strip, but Docker still substitutes variables in them, so the executor expands them as well.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Run { cmd: CmdForm, flags: Vec<(String, String)>, heredocs: Vec<Heredoc> },
    Cmd(CmdForm),
    Entrypoint(CmdForm),
    Shell(Vec<String>),
    Copy { add: bool, srcs: Vec<String>, dest: String, flags: Vec<(String, String)>, heredocs: Vec<Heredoc> },
    /// Raw key, raw value (quotes intact).
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// Name, raw default.
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    StopSignal(String),
    Maintainer(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Healthcheck(Health),
    /// The raw nested instruction, e.g. "RUN echo hi" (already checked to parse).
    Onbuild(String),
}

impl Kind {
    /// The canonical keyword, e.g. for messages.
    pub fn keyword(&self) -> &'static str {
        match self {
            Kind::Run { .. } => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Copy { add: true, .. } => "ADD",
            Kind::Copy { add: false, .. } => "COPY",
            Kind::Env(_) => "ENV",
            Kind::Label(_) => "LABEL",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
        }
    }
}

const KEYWORDS: &[&str] = &[
    "from", "run", "cmd", "entrypoint", "shell", "copy", "add", "env", "label", "arg", "workdir", "user",
    "stopsignal", "maintainer", "expose", "volume", "healthcheck", "onbuild",
];

/// Parse a Dockerfile into stages. See the module docs for what stays raw.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut df = Dockerfile { escape: '\\', notes: Vec::new(), meta_args: Vec::new(), stages: Vec::new() };
    let mut i = read_directives(&lines, &mut df)?;
    let esc = df.escape;
    let mut stage_names = HashSet::new();

    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let trimmed = first.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = first.len() - trimmed.len();
        let (head, mut cont) = strip_continuation(trimmed, esc);
        let mut logical = head.to_string();
        let first_len = logical.len();
        while cont && i < lines.len() {
            let l = lines[i];
            i += 1;
            // Docker drops comment lines and blank lines inside a continued instruction.
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (part, c) = strip_continuation(l, esc);
            logical.push_str(part);
            cont = c;
        }
        let logical = logical.trim_end();
        if logical.is_empty() {
            continue;
        }
        let ctx = Ctx { text: logical, line: start + 1, indent: first[..indent].chars().count(), first_len, esc };

        // Heredoc bodies follow the instruction's (joined) line, one after another.
        let mut heredocs = Vec::new();
        for (name, expand, chomp_tabs) in heredoc_markers(logical, esc) {
            let mut content = String::new();
            loop {
                let Some(l) = lines.get(i) else {
                    return Err(ctx.err(0, format!("unterminated heredoc: no line {name} after it")));
                };
                i += 1;
                let body = if chomp_tabs { l.trim_start_matches('\t') } else { l };
                if body == name {
                    break;
                }
                content.push_str(body);
                content.push('\n');
            }
            heredocs.push(Heredoc { name, content, expand, chomp_tabs });
        }

        match parse_line(&ctx, heredocs)? {
            Parsed::From { name, base, platform } => {
                if let Some(n) = &name {
                    if !stage_names.insert(n.clone()) {
                        return Err(ctx.err(0, format!("duplicate stage name {n:?}")));
                    }
                }
                df.stages.push(Stage { name, base, platform, line: ctx.line, original: logical.to_string(), instructions: Vec::new() });
            }
            Parsed::Instr(kind) => match df.stages.last_mut() {
                Some(stage) => stage.instructions.push(Instruction { line: ctx.line, original: logical.to_string(), kind }),
                None => match kind {
                    Kind::Arg(args) => df.meta_args.extend(args),
                    k => {
                        return Err(ctx.err(0, format!("no FROM before {}: only ARG may come before the first FROM", k.keyword())))
                    }
                },
            },
        }
    }
    if df.stages.is_empty() {
        return Err(ParseError { line: 1, column: 1, message: "the Dockerfile has no FROM".into() });
    }
    Ok(df)
}

/// Parser directives: `# key=value` lines at the very top. The first line that is not a known
/// directive (an unknown one included, which is then just a comment) ends them.
fn read_directives(lines: &[&str], df: &mut Dockerfile) -> Result<usize, ParseError> {
    let mut seen: Vec<String> = Vec::new();
    for (idx, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else { return Ok(idx) };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            return Ok(idx);
        }
        if seen.contains(&key) {
            return Err(ParseError { line: idx + 1, column: 1, message: format!("only one {key} parser directive can be used") });
        }
        match key.as_str() {
            "escape" => {
                df.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    v => {
                        let column = line.rfind(v).map_or(1, |o| line[..o].chars().count() + 1);
                        return Err(ParseError { line: idx + 1, column, message: format!("invalid escape token '{v}' does not match ` or \\") });
                    }
                }
            }
            k => df.notes.push(format!("the {k} directive ({value}) is ignored")),
        }
        seen.push(key);
    }
    Ok(lines.len())
}

/// `# key = value` → (key, value); keys are `[A-Za-z][A-Za-z0-9]*`, value non-empty.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let key_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// Docker treats the escape char as the last non-blank char of a line as a continuation; the
/// escape and the blanks after it go, everything before it (spaces included) stays.
fn strip_continuation(line: &str, esc: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(esc) {
        Some(head) => (head, true),
        None => (line, false),
    }
}

/// One joined instruction line and where it sits in the file, for error positions.
struct Ctx<'a> {
    text: &'a str,
    line: usize,
    /// Chars of indentation stripped from the first physical line.
    indent: usize,
    /// Bytes of `text` that came from the first physical line.
    first_len: usize,
    esc: char,
}

impl Ctx<'_> {
    /// An error at byte offset `off` of the joined line; offsets past the first physical line
    /// cannot be mapped back to a column, so they report column 1.
    fn err(&self, off: usize, message: String) -> ParseError {
        let column = match self.text.get(..off) {
            Some(prefix) if off <= self.first_len => self.indent + prefix.chars().count() + 1,
            _ => 1,
        };
        ParseError { line: self.line, column, message }
    }
}

enum Parsed {
    From { name: Option<String>, base: String, platform: Option<String> },
    Instr(Kind),
}

fn parse_line(ctx: &Ctx, heredocs: Vec<Heredoc>) -> Result<Parsed, ParseError> {
    let text = ctx.text;
    let kw_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let kw_raw = &text[..kw_end];
    let kw = kw_raw.to_ascii_lowercase();
    if !KEYWORDS.contains(&kw.as_str()) {
        return Err(ctx.err(0, format!("unknown instruction: {}", kw_raw.to_uppercase())));
    }
    let upper = kw.to_uppercase();
    let (raw_flags, args_off) = take_flags(text, kw_end, ctx.esc).map_err(|(o, m)| ctx.err(o, m))?;
    let args = &text[args_off..];
    let err = |msg: String| ctx.err(args_off, msg);

    let allowed: Option<&[&str]> = match kw.as_str() {
        "run" => None, // RUN flags grow with every BuildKit release; the executor judges them.
        "from" => Some(&["platform"]),
        "copy" => Some(&["from", "chown", "chmod", "link", "exclude", "parents"]),
        "add" => Some(&["chown", "chmod", "link", "exclude", "parents", "checksum", "keep-git-dir", "unpack"]),
        "healthcheck" => Some(&["interval", "timeout", "start-period", "start-interval", "retries"]),
        _ => Some(&[]),
    };
    let mut flags = Vec::new();
    for (name, value, off) in raw_flags {
        if allowed.is_some_and(|a| !a.contains(&name.as_str())) {
            return Err(ctx.err(off, format!("unknown flag: --{name} for {upper}")));
        }
        flags.push((name, value));
    }
    let words = || split_words(args, ctx.esc).map_err(&err);
    let required = |s: &str| if s.is_empty() { Err(err(format!("{upper} requires exactly one argument"))) } else { Ok(s.to_string()) };

    let kind = match kw.as_str() {
        "from" => {
            let w = words()?;
            let name = match w.len() {
                1 => None,
                3 if w[1].eq_ignore_ascii_case("as") => {
                    let name = w[2].to_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(err(format!("invalid name for build stage: {:?}, name can't start with a number or contain symbols", w[2])));
                    }
                    Some(name)
                }
                _ => return Err(err("FROM requires either one or three arguments (FROM image [AS name])".into())),
            };
            let platform = flags.into_iter().find(|(n, _)| n == "platform").map(|(_, v)| v);
            return Ok(Parsed::From { name, base: w[0].clone(), platform });
        }
        "run" => {
            if args.is_empty() {
                return Err(err("RUN requires at least one argument".into()));
            }
            let cmd = maybe_json(args);
            let heredocs = if matches!(cmd, CmdForm::Shell(_)) { heredocs } else { Vec::new() };
            Kind::Run { cmd, flags, heredocs }
        }
        "cmd" => Kind::Cmd(maybe_json(args)),
        "entrypoint" => Kind::Entrypoint(maybe_json(args)),
        "shell" => match maybe_json(args) {
            CmdForm::Exec(v) if !v.is_empty() => Kind::Shell(v),
            CmdForm::Exec(_) => return Err(err("SHELL requires at least one argument".into())),
            CmdForm::Shell(_) => return Err(err("SHELL requires the arguments to be in JSON form".into())),
        },
        "copy" | "add" => {
            let mut w = match maybe_json(args) {
                CmdForm::Exec(v) => v,
                CmdForm::Shell(_) => words()?,
            };
            if w.len() < 2 {
                return Err(err(format!("{upper} requires at least two arguments: source(s) and destination")));
            }
            let dest = w.pop().unwrap_or_default();
            Kind::Copy { add: kw == "add", srcs: w, dest, flags, heredocs }
        }
        "env" => Kind::Env(key_values(&upper, args, ctx.esc).map_err(err)?),
        "label" => Kind::Label(key_values(&upper, args, ctx.esc).map_err(err)?),
        "arg" => {
            let w = words()?;
            if w.is_empty() {
                return Err(err("ARG requires at least one argument".into()));
            }
            let mut out = Vec::new();
            for word in w {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n, Some(d.to_string())),
                    None => (word.as_str(), None),
                };
                if name.is_empty() {
                    return Err(err(format!("ARG name can not be empty in {word:?}")));
                }
                out.push((name.to_string(), default));
            }
            Kind::Arg(out)
        }
        "workdir" => Kind::Workdir(required(args)?),
        "user" => Kind::User(required(args)?),
        "stopsignal" => Kind::StopSignal(required(args)?),
        "maintainer" => Kind::Maintainer(required(args)?),
        "expose" => {
            let w = words()?;
            if w.is_empty() {
                return Err(err("EXPOSE requires at least one argument".into()));
            }
            Kind::Expose(w)
        }
        "volume" => {
            let w = match maybe_json(args) {
                CmdForm::Exec(v) => v,
                CmdForm::Shell(_) => words()?,
            };
            if w.is_empty() || w.iter().any(|v| v.trim().is_empty()) {
                return Err(err("VOLUME specified can not be an empty string".into()));
            }
            Kind::Volume(w)
        }
        "healthcheck" => {
            let ty_end = args.find(char::is_whitespace).unwrap_or(args.len());
            let (ty, rest) = (&args[..ty_end], args[ty_end..].trim());
            let test = if ty.eq_ignore_ascii_case("none") {
                if !rest.is_empty() {
                    return Err(err("HEALTHCHECK NONE takes no arguments".into()));
                }
                None
            } else if ty.eq_ignore_ascii_case("cmd") {
                if rest.is_empty() {
                    return Err(err("missing command after HEALTHCHECK CMD".into()));
                }
                Some(maybe_json(rest))
            } else if ty.is_empty() {
                return Err(err("HEALTHCHECK requires an argument (CMD or NONE)".into()));
            } else {
                return Err(err(format!("unknown type {ty:?} in HEALTHCHECK (try CMD)")));
            };
            Kind::Healthcheck(Health { test, flags })
        }
        "onbuild" => {
            let sub_end = args.find(char::is_whitespace).unwrap_or(args.len());
            let sub = args[..sub_end].to_ascii_lowercase();
            match sub.as_str() {
                "" => return Err(err("ONBUILD requires at least one argument".into())),
                "onbuild" => return Err(err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())),
                "from" | "maintainer" => return Err(err(format!("{} isn't allowed as an ONBUILD trigger", sub.to_uppercase()))),
                _ => {}
            }
            // Validate the trigger now, as Docker does, rather than when a child image runs it.
            let nested = Ctx { text: args, line: ctx.line, indent: 0, first_len: 0, esc: ctx.esc };
            parse_line(&nested, Vec::new()).map_err(|e| err(e.message))?;
            Kind::Onbuild(args.to_string())
        }
        _ => return Err(ctx.err(0, format!("unknown instruction: {upper}"))),
    };
    Ok(Parsed::Instr(kind))
}

/// A stage name, lowercased, must look like `[a-z][a-z0-9-_.]*`.
fn valid_stage_name(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next().is_some_and(|c| c.is_ascii_lowercase())
        && cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// (name, raw value, byte offset in the line).
type RawFlag = (String, String, usize);

/// Leading `--name[=value]` words after the keyword (starting at byte `from` of `text`).
/// Returns the flags with their byte offsets, and the offset where the arguments start.
/// A lone `--` ends the flags.
fn take_flags(text: &str, from: usize, esc: char) -> Result<(Vec<RawFlag>, usize), (usize, String)> {
    let mut flags = Vec::new();
    let mut pos = from;
    loop {
        pos += text[pos..].len() - text[pos..].trim_start().len();
        if !text[pos..].starts_with("--") {
            return Ok((flags, pos));
        }
        let end = scan_word(text, pos, esc).map_err(|m| (pos, m))?;
        let word = &text[pos + 2..end];
        if word.is_empty() {
            let rest = end + text[end..].len() - text[end..].trim_start().len();
            return Ok((flags, rest));
        }
        let (name, value) = word.split_once('=').unwrap_or((word, "true"));
        flags.push((name.to_string(), value.to_string(), pos));
        pos = end;
    }
}

/// Exec form if the text is a JSON array of strings; anything else, broken JSON included, is the
/// shell form (as in Docker).
fn maybe_json(args: &str) -> CmdForm {
    if args.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(args) {
            return CmdForm::Exec(v);
        }
    }
    CmdForm::Shell(args.to_string())
}

/// ENV/LABEL arguments: `k=v ...` pairs, or the legacy `key value with spaces`.
fn key_values(kw: &str, args: &str, esc: char) -> Result<Vec<(String, String)>, String> {
    let spans = word_spans(args, esc)?;
    let Some(&(s0, e0)) = spans.first() else {
        return Err(format!("{kw} requires at least one argument"));
    };
    let first = &args[s0..e0];
    if !first.contains('=') {
        let value = args[e0..].trim();
        if value.is_empty() {
            return Err(format!("{kw} {first} needs a value: use {kw} {first}=value"));
        }
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    let mut out = Vec::new();
    for (s, e) in spans {
        let word = &args[s..e];
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!("syntax error - can't find = in {word:?}. Must be of the form: name=value"));
        };
        if k.is_empty() {
            return Err(format!("{kw} names can not be blank ({word:?})"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Heredoc delimiters among the words of a RUN/COPY/ADD shell-form line: (name, expand, chomp).
fn heredoc_markers(line: &str, esc: char) -> Vec<(String, bool, bool)> {
    let kw_end = line.find(char::is_whitespace).unwrap_or(line.len());
    if !matches!(line[..kw_end].to_ascii_lowercase().as_str(), "run" | "copy" | "add") {
        return Vec::new();
    }
    let Ok((_, off)) = take_flags(line, kw_end, esc) else { return Vec::new() };
    let args = &line[off..];
    if matches!(maybe_json(args), CmdForm::Exec(_)) {
        return Vec::new();
    }
    // A shell command need not split cleanly (e.g. an apostrophe in a RUN); then there are
    // simply no heredocs rather than an error.
    let Ok(words) = split_words(args, esc) else { return Vec::new() };
    words.iter().filter_map(|w| heredoc_word(w, esc)).collect()
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, optionally after a fd number (`3<<EOF`);
/// not the `<<<` here-string.
fn heredoc_word(word: &str, esc: char) -> Option<(String, bool, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit()).strip_prefix("<<")?;
    let (chomp, raw) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if raw.is_empty() || raw.contains('<') {
        return None;
    }
    let quoted = raw.contains(['"', '\'']);
    let name = expand(raw, esc, &|_| None).ok()?;
    (!name.is_empty()).then_some((name, !quoted, chomp))
}

/// End (byte offset) of the raw word starting at `start`: quote-aware like Docker's word
/// splitting, and `${...}` is kept whole so `${A:-x y}` stays one word.
fn scan_word(s: &str, start: usize, esc: char) -> Result<usize, String> {
    let mut it = s[start..].char_indices().map(|(o, c)| (o + start, c)).peekable();
    let mut depth = 0usize;
    while let Some((o, c)) = it.next() {
        match c {
            c if c == esc => {
                it.next();
            }
            c if c.is_whitespace() && depth == 0 => return Ok(o),
            '\'' => loop {
                match it.next() {
                    Some((_, '\'')) => break,
                    Some(_) => {}
                    None => return Err("unterminated single quote".into()),
                }
            },
            '"' => loop {
                match it.next() {
                    Some((_, '"')) => break,
                    Some((_, c)) if c == esc => {
                        it.next();
                    }
                    Some(_) => {}
                    None => return Err("unterminated double quote".into()),
                }
            },
            '$' if it.peek().is_some_and(|&(_, n)| n == '{') => {
                it.next();
                depth += 1;
            }
            '}' if depth > 0 => depth -= 1,
            _ => {}
        }
    }
    Ok(s.len())
}

fn word_spans(text: &str, esc: char) -> Result<Vec<(usize, usize)>, String> {
    let mut spans = Vec::new();
    let mut pos = 0;
    loop {
        pos += text[pos..].len() - text[pos..].trim_start().len();
        if pos >= text.len() {
            return Ok(spans);
        }
        let end = scan_word(text, pos, esc)?;
        spans.push((pos, end));
        pos = end;
    }
}

/// Split raw text into raw words (quotes and escapes kept); unquoted whitespace separates.
pub fn split_words(text: &str, escape: char) -> Result<Vec<String>, String> {
    Ok(word_spans(text, escape)?.into_iter().map(|(s, e)| text[s..e].to_string()).collect())
}

/// Expand one raw word: variables from `env`, quotes removed, escapes applied.
pub fn expand(word: &str, escape: char, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = Out::new(false);
    Lexer { s: word.chars().collect(), i: 0, esc: escape, env }.run(&mut out, false)?;
    Ok(out.cur)
}

/// Split raw text into words and expand them, as Docker does for EXPOSE/VOLUME/COPY words:
/// unquoted whitespace separates words, and so does whitespace inside the value of an unquoted
/// variable (`$PORTS` = "80 443" gives two words); quoted text never splits.
pub fn expand_words(text: &str, escape: char, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let mut out = Out::new(true);
    Lexer { s: text.chars().collect(), i: 0, esc: escape, env }.run(&mut out, false)?;
    out.brk();
    Ok(out.words)
}

/// The names of variables a raw text refers to (`$X`, `${X...}`, in modifier words too) — for
/// the build cache. Follows [`expand`]'s rules (nothing inside single quotes or after an
/// escape), so for RUN, whose shell sees every ARG as an env var, the caller should count all
/// ARGs in scope instead.
pub fn referenced_vars(text: &str, escape: char) -> Vec<String> {
    let cs: Vec<char> = text.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let (mut i, mut dquote) = (0, false);
    while i < cs.len() {
        let c = cs[i];
        i += 1;
        if c == escape {
            i += 1;
        } else if c == '"' {
            dquote = !dquote;
        } else if c == '\'' && !dquote {
            while i < cs.len() && cs[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            if cs.get(i) == Some(&'{') {
                i += 1;
            }
            let start = i;
            if cs.get(i).is_some_and(|c| c.is_alphabetic() || *c == '_') {
                while cs.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    i += 1;
                }
                let name: String = cs[start..i].iter().collect();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// Output of the lexer: one string (expand) or words (expand_words).
struct Out {
    words: Vec<String>,
    cur: String,
    in_word: bool,
    split: bool,
}

impl Out {
    fn new(split: bool) -> Self {
        Out { words: Vec::new(), cur: String::new(), in_word: false, split }
    }
    fn ch(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn quoted(&mut self, s: &str) {
        s.chars().for_each(|c| self.ch(c));
    }
    /// An unquoted variable's value: its whitespace separates words when splitting.
    fn unquoted(&mut self, s: &str) {
        for c in s.chars() {
            if self.split && c.is_whitespace() {
                self.brk();
            } else {
                self.ch(c);
            }
        }
    }
    fn brk(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.cur));
            self.in_word = false;
        }
    }
}

struct Lexer<'a> {
    s: Vec<char>,
    i: usize,
    esc: char,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        self.i += usize::from(c.is_some());
        c
    }

    /// Process to the end of input, or (in a `${name:-word}` word) to the closing brace.
    fn run(&mut self, out: &mut Out, in_braces: bool) -> Result<(), String> {
        while let Some(c) = self.bump() {
            match c {
                '}' if in_braces => return Ok(()),
                c if c == self.esc => {
                    // An escape at the very end is dropped, as in Docker.
                    if let Some(n) = self.bump() {
                        out.ch(n);
                    }
                }
                '\'' => loop {
                    match self.bump() {
                        Some('\'') => break,
                        Some(c) => out.ch(c),
                        None => return Err("unexpected end of text while looking for matching single-quote".into()),
                    }
                },
                '"' => self.double_quoted(out)?,
                '$' => match self.dollar()? {
                    Some(v) => out.unquoted(&v),
                    None => out.ch('$'),
                },
                c if out.split && c.is_whitespace() => out.brk(),
                c => out.ch(c),
            }
        }
        if in_braces {
            return Err("missing '}' in variable substitution".into());
        }
        Ok(())
    }

    /// Inside double quotes the escape char only escapes `"`, `$` and itself; before any other
    /// char it stays literal.
    fn double_quoted(&mut self, out: &mut Out) -> Result<(), String> {
        loop {
            match self.bump() {
                None => return Err("unexpected end of text while looking for matching double-quote".into()),
                Some('"') => return Ok(()),
                Some('$') => match self.dollar()? {
                    Some(v) => out.quoted(&v),
                    None => out.ch('$'),
                },
                Some(c) if c == self.esc => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.esc => {
                        self.i += 1;
                        out.ch(n);
                    }
                    Some(_) => out.ch(c),
                    None => {}
                },
                Some(c) => out.ch(c),
            }
        }
    }

    /// After a `$`: the value, or None when the `$` is literal (no name follows).
    fn dollar(&mut self) -> Result<Option<String>, String> {
        if self.peek() == Some('{') {
            self.i += 1;
            return self.braced().map(Some);
        }
        let name = self.name();
        Ok((!name.is_empty()).then(|| (self.env)(&name).unwrap_or_default()))
    }

    /// A variable name; like Docker, digits form a positional name and a few shell special
    /// parameters are one-char names (both normally unset, so they expand to "").
    fn name(&mut self) -> String {
        let mut n = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                    n.push(c);
                    self.i += 1;
                }
            }
            Some(c) if "@*#?-$!".contains(c) => {
                n.push(c);
                self.i += 1;
            }
            _ => {
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
                    n.push(c);
                    self.i += 1;
                }
            }
        }
        n
    }

    /// `${name}`, `${name:-word}`, `${name-word}`, `${name:+word}`, `${name+word}`,
    /// `${name:?word}`, `${name?word}` (the `{` already consumed).
    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: missing variable name after '${'".into());
        }
        let value = (self.env)(&name);
        let colon = self.peek() == Some(':');
        self.i += usize::from(colon);
        let op = match self.bump() {
            Some('}') if !colon => return Ok(value.unwrap_or_default()),
            Some(c @ ('-' | '+' | '?')) => c,
            Some(c) => return Err(format!("unsupported modifier '{c}' in substitution of ${{{name}}}")),
            None => return Err("missing '}' in variable substitution".into()),
        };
        let mut w = Out::new(false);
        self.run(&mut w, true)?;
        let word = w.cur;
        // With the colon, an empty value counts as unset.
        let set = value.as_ref().is_some_and(|v| !colon || !v.is_empty());
        Ok(match op {
            '-' if set => value.unwrap_or_default(),
            '-' => word,
            '+' if set => word,
            '+' => String::new(),
            _ if set => value.unwrap_or_default(),
            _ if word.is_empty() => return Err(format!("{name}: is not allowed to be unset")),
            _ => return Err(format!("{name}: {word}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instrs(df: &Dockerfile, stage: usize) -> Vec<Kind> {
        df.stages[stage].instructions.iter().map(|i| i.kind.clone()).collect()
    }

    fn perr(text: &str) -> ParseError {
        parse(text).expect_err("expected a parse error")
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("x y".into()),
            "PORTS" => Some("80 443".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> Result<String, String> {
        expand(word, '\\', &env)
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn tutorial_dockerfile() {
        let text = "# A classic\nFROM ubuntu:22.04\nMAINTAINER Jane Doe <jane@example.com>\nLABEL version=\"1.0\" description=\"a web app\"\n\
RUN apt-get update && \\\n    apt-get install -y nginx\nADD . /app\nWORKDIR /app\nRUN [\"make\", \"install\"]\nEXPOSE 80 443/tcp\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n";
        let df = parse(text).unwrap();
        assert_eq!(df.escape, '\\');
        assert!(df.meta_args.is_empty());
        assert_eq!(df.stages.len(), 1);
        let st = &df.stages[0];
        assert_eq!((st.base.as_str(), st.name.clone(), st.line), ("ubuntu:22.04", None, 2));
        assert_eq!(st.original, "FROM ubuntu:22.04");
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::Maintainer(s("Jane Doe <jane@example.com>")));
        assert_eq!(k[1], Kind::Label(vec![(s("version"), s("\"1.0\"")), (s("description"), s("\"a web app\""))]));
        assert_eq!(k[2], Kind::Run { cmd: CmdForm::Shell(s("apt-get update &&     apt-get install -y nginx")), flags: vec![], heredocs: vec![] });
        assert_eq!(st.instructions[2].original, "RUN apt-get update &&     apt-get install -y nginx");
        assert_eq!(st.instructions[2].line, 5);
        assert_eq!(k[3], Kind::Copy { add: true, srcs: vec![s(".")], dest: s("/app"), flags: vec![], heredocs: vec![] });
        assert_eq!(st.instructions[3].line, 7);
        assert_eq!(k[4], Kind::Workdir(s("/app")));
        assert_eq!(k[5], Kind::Run { cmd: CmdForm::Exec(vec![s("make"), s("install")]), flags: vec![], heredocs: vec![] });
        assert_eq!(k[6], Kind::Expose(vec![s("80"), s("443/tcp")]));
        assert_eq!(k[7], Kind::Cmd(CmdForm::Exec(vec![s("nginx"), s("-g"), s("daemon off;")])));
        assert_eq!(k[7].keyword(), "CMD");
    }

    #[test]
    fn comments_and_blank_lines_inside_continuation() {
        let df = parse("FROM a\nRUN echo one \\\n# a comment\n\n   # indented comment\n  two\nRUN x").unwrap();
        let st = &df.stages[0];
        assert_eq!(st.instructions[0].original, "RUN echo one   two");
        assert_eq!(st.instructions[1].line, 7);
    }

    #[test]
    fn continuation_with_trailing_whitespace_and_crlf() {
        let df = parse("FROM a\r\nRUN a \\  \r\n b\r\n").unwrap();
        assert_eq!(df.stages[0].instructions[0].original, "RUN a  b");
    }

    #[test]
    fn lowercase_keywords_and_indentation() {
        let df = parse("from a as Builder\n  run true\n").unwrap();
        assert_eq!(df.stages[0].name.as_deref(), Some("builder"));
        assert_eq!(df.stages[0].instructions[0].original, "run true");
    }

    #[test]
    fn escape_directive_backtick() {
        let text = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n    && echo done\nCOPY a\\b c:\\dest\\\n";
        let df = parse(text).unwrap();
        assert_eq!(df.escape, '`');
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::Run { cmd: CmdForm::Shell(s("dir c:\\     && echo done")), flags: vec![], heredocs: vec![] });
        // Backslash is an ordinary char: the trailing one is not a continuation.
        assert_eq!(k[1], Kind::Copy { add: false, srcs: vec![s("a\\b")], dest: s("c:\\dest\\"), flags: vec![], heredocs: vec![] });
    }

    #[test]
    fn directives_case_and_syntax_note() {
        let df = parse("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM a\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.notes, vec![s("the syntax directive (docker/dockerfile:1) is ignored")]);
    }

    #[test]
    fn directives_only_at_top() {
        // After a comment, a blank line or an unknown directive, `escape=` is just a comment.
        for text in ["# hello\n# escape=`\nFROM a\n", "\n# escape=`\nFROM a\n", "# foo=bar\n# escape=`\nFROM a\n"] {
            assert_eq!(parse(text).unwrap().escape, '\\', "{text:?}");
        }
        let df = parse("FROM a\n# escape=`\nRUN x \\\n y").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.stages[0].instructions[0].original, "RUN x  y");
    }

    #[test]
    fn directive_errors() {
        let e = perr("# escape=x\nFROM a\n");
        assert_eq!((e.line, e.column), (1, 10));
        let e = perr("# escape=`\n# escape=\\\nFROM a\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("only one escape"));
    }

    #[test]
    fn meta_args_and_stage_fields() {
        let df = parse("ARG VERSION=3.19\nARG OTHER\nFROM --platform=$BUILDPLATFORM alpine:${VERSION} AS build\nARG VERSION\n").unwrap();
        assert_eq!(df.meta_args, vec![(s("VERSION"), Some(s("3.19"))), (s("OTHER"), None)]);
        let st = &df.stages[0];
        assert_eq!(st.base, "alpine:${VERSION}");
        assert_eq!(st.platform.as_deref(), Some("$BUILDPLATFORM"));
        assert_eq!(st.name.as_deref(), Some("build"));
        assert_eq!(st.line, 3);
        assert_eq!(st.instructions[0].kind, Kind::Arg(vec![(s("VERSION"), None)]));
    }

    #[test]
    fn multi_stage_copy_from() {
        let text = "FROM golang:1.22 AS Build-Env\nWORKDIR /src\nCOPY . .\nRUN go build -o /out/app\n\nFROM scratch\nCOPY --from=build-env --chmod=755 /out/app /app\nENTRYPOINT [\"/app\"]\n";
        let df = parse(text).unwrap();
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stages[0].name.as_deref(), Some("build-env"));
        assert_eq!(df.stages[1].name, None);
        assert_eq!(df.stages[1].line, 6);
        let k = instrs(&df, 1);
        assert_eq!(
            k[0],
            Kind::Copy {
                add: false,
                srcs: vec![s("/out/app")],
                dest: s("/app"),
                flags: vec![(s("from"), s("build-env")), (s("chmod"), s("755"))],
                heredocs: vec![]
            }
        );
        assert_eq!(k[1], Kind::Entrypoint(CmdForm::Exec(vec![s("/app")])));
    }

    #[test]
    fn json_and_broken_json() {
        let df = parse("FROM a\nCMD [ \"a\" \nENTRYPOINT [\"a\", 1]\nRUN [\"echo\", \"a\\\"b\"]\nCMD []\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo $HOME").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::Cmd(CmdForm::Shell(s("[ \"a\""))));
        assert_eq!(k[1], Kind::Entrypoint(CmdForm::Shell(s("[\"a\", 1]"))));
        assert_eq!(k[2], Kind::Run { cmd: CmdForm::Exec(vec![s("echo"), s("a\"b")]), flags: vec![], heredocs: vec![] });
        assert_eq!(k[3], Kind::Cmd(CmdForm::Exec(vec![])));
        assert_eq!(k[4], Kind::Shell(vec![s("/bin/bash"), s("-c")]));
        assert_eq!(k[5], Kind::Cmd(CmdForm::Shell(s("echo $HOME"))));
    }

    #[test]
    fn shell_requires_json() {
        let e = perr("FROM a\nSHELL /bin/sh -c\n");
        assert_eq!((e.line, e.column), (2, 7));
        assert!(e.message.contains("JSON"));
    }

    #[test]
    fn env_forms() {
        let df = parse("FROM a\nENV a=b c=\"d e\" f=g\\ h\nENV KEY value with  spaces\nENV \"q\"='x y'\nENV X=${A:-a b}").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::Env(vec![(s("a"), s("b")), (s("c"), s("\"d e\"")), (s("f"), s("g\\ h"))]));
        assert_eq!(k[1], Kind::Env(vec![(s("KEY"), s("value with  spaces"))]));
        assert_eq!(k[2], Kind::Env(vec![(s("\"q\""), s("'x y'"))]));
        assert_eq!(k[3], Kind::Env(vec![(s("X"), s("${A:-a b}"))]));
    }

    #[test]
    fn env_errors() {
        assert!(perr("FROM a\nENV\n").message.contains("at least one"));
        assert!(perr("FROM a\nENV =x\n").message.contains("blank"));
        assert!(perr("FROM a\nENV a=1 b\n").message.contains("can't find ="));
        assert!(perr("FROM a\nENV lonely\n").message.contains("needs a value"));
        assert!(perr("FROM a\nENV a=\"open\n").message.contains("unterminated"));
    }

    #[test]
    fn label_quotes() {
        let df = parse("FROM a\nLABEL \"com.example.vendor\"=\"ACME Inc\" multi.label=\"a \\\"b\\\"\" other='x'\nLABEL legacy value here").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Label(vec![
                (s("\"com.example.vendor\""), s("\"ACME Inc\"")),
                (s("multi.label"), s("\"a \\\"b\\\"\"")),
                (s("other"), s("'x'"))
            ])
        );
        assert_eq!(k[1], Kind::Label(vec![(s("legacy"), s("value here"))]));
        if let Kind::Label(kv) = &k[0] {
            assert_eq!(ex(&kv[0].0).unwrap(), "com.example.vendor");
            assert_eq!(ex(&kv[1].1).unwrap(), "a \"b\"");
        }
    }

    #[test]
    fn arg_forms() {
        let df = parse("FROM a\nARG a=1 b c=\"x y\"\n").unwrap();
        assert_eq!(instrs(&df, 0)[0], Kind::Arg(vec![(s("a"), Some(s("1"))), (s("b"), None), (s("c"), Some(s("\"x y\"")))]));
        assert!(perr("FROM a\nARG =1\n").message.contains("empty"));
        assert!(perr("FROM a\nARG\n").message.contains("at least one"));
    }

    #[test]
    fn simple_rest_of_line_instructions() {
        let df = parse("FROM a\nUSER app:app\nSTOPSIGNAL SIGTERM\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /a /b\nWORKDIR  /my dir  \n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::User(s("app:app")));
        assert_eq!(k[1], Kind::StopSignal(s("SIGTERM")));
        assert_eq!(k[2], Kind::Volume(vec![s("/data"), s("/logs")]));
        assert_eq!(k[3], Kind::Volume(vec![s("/a"), s("/b")]));
        assert_eq!(k[4], Kind::Workdir(s("/my dir")));
        assert!(perr("FROM a\nUSER\n").message.contains("requires"));
        assert!(perr("FROM a\nVOLUME []\n").message.contains("empty"));
    }

    #[test]
    fn run_flags_kept() {
        let df = parse("FROM a\nRUN --mount=type=cache,target=/root/.cache --network=none --security=insecure --future-flag echo hi\nRUN -- --not-a-flag\n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Run {
                cmd: CmdForm::Shell(s("echo hi")),
                flags: vec![
                    (s("mount"), s("type=cache,target=/root/.cache")),
                    (s("network"), s("none")),
                    (s("security"), s("insecure")),
                    (s("future-flag"), s("true"))
                ],
                heredocs: vec![]
            }
        );
        assert_eq!(k[1], Kind::Run { cmd: CmdForm::Shell(s("--not-a-flag")), flags: vec![], heredocs: vec![] });
    }

    #[test]
    fn copy_json_and_link() {
        let df = parse("FROM a\nCOPY --link [\"my file.txt\", \"$HOME/\"]\nADD --checksum=sha256:abc https://x/y.tgz /y\n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Copy { add: false, srcs: vec![s("my file.txt")], dest: s("$HOME/"), flags: vec![(s("link"), s("true"))], heredocs: vec![] }
        );
        assert!(matches!(&k[1], Kind::Copy { add: true, flags, .. } if flags[0] == (s("checksum"), s("sha256:abc"))));
        assert!(perr("FROM a\nCOPY onlyone\n").message.contains("at least two"));
    }

    #[test]
    fn healthcheck_forms() {
        let df = parse("FROM a\nHEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1\nHEALTHCHECK none\nHEALTHCHECK CMD [\"true\"]\n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Healthcheck(Health {
                test: Some(CmdForm::Shell(s("curl -f http://localhost/ || exit 1"))),
                flags: vec![(s("interval"), s("5m")), (s("timeout"), s("3s"))]
            })
        );
        assert_eq!(k[1], Kind::Healthcheck(Health { test: None, flags: vec![] }));
        assert_eq!(k[2], Kind::Healthcheck(Health { test: Some(CmdForm::Exec(vec![s("true")])), flags: vec![] }));
        assert!(perr("FROM a\nHEALTHCHECK --bogus=1 CMD x\n").message.contains("--bogus"));
        assert!(perr("FROM a\nHEALTHCHECK RUN x\n").message.contains("try CMD"));
        assert!(perr("FROM a\nHEALTHCHECK NONE x\n").message.contains("no arguments"));
    }

    #[test]
    fn onbuild() {
        let df = parse("FROM a\nONBUILD RUN echo hi\nONBUILD copy --from=x a b\n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(k[0], Kind::Onbuild(s("RUN echo hi")));
        assert_eq!(k[1], Kind::Onbuild(s("copy --from=x a b")));
        assert!(perr("FROM a\nONBUILD ONBUILD RUN x\n").message.contains("chaining"));
        assert!(perr("FROM a\nONBUILD FROM b\n").message.contains("FROM isn't allowed"));
        assert!(perr("FROM a\nONBUILD maintainer me\n").message.contains("MAINTAINER"));
        let e = perr("FROM a\nONBUILD BOGUS x\n");
        assert_eq!((e.line, e.column), (2, 9));
        assert!(e.message.contains("unknown instruction: BOGUS"));
    }

    #[test]
    fn heredoc_run() {
        let text = "FROM a\nRUN <<EOF\napt-get update\n# not a comment\nFROM not-a-stage \\\nEOF\nRUN bash <<-'END'\n\techo $HOME\n\tEND\nRUN cat <<A <<\"B\" > f\na\nA\nb\nB\nCMD x";
        let df = parse(text).unwrap();
        assert_eq!(df.stages.len(), 1);
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Run {
                cmd: CmdForm::Shell(s("<<EOF")),
                flags: vec![],
                heredocs: vec![Heredoc {
                    name: s("EOF"),
                    content: s("apt-get update\n# not a comment\nFROM not-a-stage \\\n"),
                    expand: true,
                    chomp_tabs: false
                }]
            }
        );
        assert_eq!(
            k[1],
            Kind::Run {
                cmd: CmdForm::Shell(s("bash <<-'END'")),
                flags: vec![],
                heredocs: vec![Heredoc { name: s("END"), content: s("echo $HOME\n"), expand: false, chomp_tabs: true }]
            }
        );
        match &k[2] {
            Kind::Run { heredocs, .. } => {
                assert_eq!(heredocs.len(), 2);
                assert_eq!((heredocs[0].name.as_str(), heredocs[0].content.as_str(), heredocs[0].expand), ("A", "a\n", true));
                assert_eq!((heredocs[1].name.as_str(), heredocs[1].content.as_str(), heredocs[1].expand), ("B", "b\n", false));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(df.stages[0].instructions[3].line, 15);
        assert_eq!(k[3], Kind::Cmd(CmdForm::Shell(s("x"))));
    }

    #[test]
    fn heredoc_copy_and_non_heredocs() {
        let df = parse("FROM a\nCOPY --chmod=644 <<EOF /etc/motd\nhello\n\nEOF\nRUN echo \"<<EOF\" && cat <<< hi\nRUN [\"sh\", \"<<EOF\"]\n").unwrap();
        let k = instrs(&df, 0);
        assert_eq!(
            k[0],
            Kind::Copy {
                add: false,
                srcs: vec![s("<<EOF")],
                dest: s("/etc/motd"),
                flags: vec![(s("chmod"), s("644"))],
                heredocs: vec![Heredoc { name: s("EOF"), content: s("hello\n\n"), expand: true, chomp_tabs: false }]
            }
        );
        assert!(matches!(&k[1], Kind::Run { heredocs, .. } if heredocs.is_empty()));
        assert!(matches!(&k[2], Kind::Run { cmd: CmdForm::Exec(_), heredocs, .. } if heredocs.is_empty()));
        // An apostrophe in a shell command is not a parse error.
        let df = parse("FROM a\nRUN echo it's fine\n").unwrap();
        assert_eq!(instrs(&df, 0)[0], Kind::Run { cmd: CmdForm::Shell(s("echo it's fine")), flags: vec![], heredocs: vec![] });
        let e = perr("FROM a\nRUN <<EOF\nno end\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated heredoc"));
    }

    #[test]
    fn error_unknown_instruction_position() {
        let e = perr("FROM a\nRUN x\nFOO bar\n");
        assert_eq!((e.line, e.column), (3, 1));
        assert_eq!(e.message, "unknown instruction: FOO");
        assert_eq!(e.to_string(), "Dockerfile parse error line 3 column 1: unknown instruction: FOO");
        let e = perr("FROM a\n\n   frob x\n");
        assert_eq!((e.line, e.column), (3, 4));
    }

    #[test]
    fn error_unknown_copy_flag() {
        let e = perr("FROM a\nCOPY --chown=1 --bogus=2 a b\n");
        assert_eq!((e.line, e.column), (2, 16));
        assert!(e.message.contains("unknown flag: --bogus"), "{}", e.message);
        assert!(perr("FROM a\nADD --from=x a b\n").message.contains("--from"));
        assert!(perr("FROM --foo=1 a\n").message.contains("--foo"));
        assert!(perr("FROM a\nWORKDIR --x /a\n").message.contains("--x"));
        // A flag on a later physical line has no mappable column.
        assert_eq!(perr("FROM a\nCOPY \\\n --nope a b\n").column, 1);
    }

    #[test]
    fn error_bad_stage_name() {
        for bad in ["FROM a AS 1st", "FROM a AS my$stage", "FROM a AS _x"] {
            let e = perr(bad);
            assert_eq!(e.line, 1);
            assert!(e.message.contains("invalid name for build stage"), "{bad}: {}", e.message);
        }
        assert!(perr("FROM a AS b c").message.contains("one or three"));
        assert!(perr("FROM a FOR b").message.contains("one or three"));
        assert!(perr("FROM").message.contains("one or three"));
        assert!(perr("FROM a AS x\nFROM b AS X\n").message.contains("duplicate stage name"));
    }

    #[test]
    fn error_no_from() {
        for text in ["", "\n# only a comment\n", "ARG X=1\n"] {
            let e = perr(text);
            assert_eq!((e.line, e.column, e.message.as_str()), (1, 1, "the Dockerfile has no FROM"));
        }
    }

    #[test]
    fn error_instruction_before_from() {
        let e = perr("ARG A\n# c\nRUN echo\nFROM x\n");
        assert_eq!(e.line, 3);
        assert!(e.message.starts_with("no FROM before RUN"), "{}", e.message);
    }

    #[test]
    fn no_panic_on_odd_input() {
        for text in ["FROM a\nRUN \\", "\\", "FROM a\nCOPY \"\u{e9}", "FROM \u{e9}\u{e9} AS \u{e9}", "FROM a\nENV \u{e9}=\"", "# escape=\u{e9}", "FROM a\nRUN <<", "\u{feff}FROM a"] {
            let _ = parse(text);
        }
        assert!(parse("\u{feff}FROM a").is_ok());
    }

    #[test]
    fn expand_plain_and_braced() {
        assert_eq!(ex("$A").unwrap(), "alpha");
        assert_eq!(ex("${A}bet").unwrap(), "alphabet");
        assert_eq!(ex("$Abet").unwrap(), "");
        assert_eq!(ex("x$UNSET-y").unwrap(), "x-y");
        assert_eq!(ex("a$").unwrap(), "a$");
        assert_eq!(ex("$ a$/").unwrap(), "$ a$/");
        assert_eq!(ex("$1x").unwrap(), "x");
    }

    #[test]
    fn expand_modifiers() {
        assert_eq!(ex("${UNSET:-def}").unwrap(), "def");
        assert_eq!(ex("${EMPTY:-def}").unwrap(), "def");
        assert_eq!(ex("${A:-def}").unwrap(), "alpha");
        assert_eq!(ex("${UNSET-def}").unwrap(), "def");
        assert_eq!(ex("${EMPTY-def}").unwrap(), "");
        assert_eq!(ex("${A:+alt}").unwrap(), "alt");
        assert_eq!(ex("${EMPTY:+alt}").unwrap(), "");
        assert_eq!(ex("${UNSET:+alt}").unwrap(), "");
        assert_eq!(ex("${EMPTY+alt}").unwrap(), "alt");
        assert_eq!(ex("${UNSET+alt}").unwrap(), "");
        assert_eq!(ex("${UNSET:-${A}-x}").unwrap(), "alpha-x");
        assert_eq!(ex("${UNSET:-'}'}").unwrap(), "}");
        assert_eq!(ex("${UNSET:-\"a b\"}").unwrap(), "a b");
        assert_eq!(ex("${A:?must be set}").unwrap(), "alpha");
        assert_eq!(ex("${UNSET:?must be set}").unwrap_err(), "UNSET: must be set");
        assert!(ex("${UNSET?}").unwrap_err().contains("not allowed to be unset"));
    }

    #[test]
    fn expand_quotes_and_escapes() {
        assert_eq!(ex("'$A \\n'").unwrap(), "$A \\n");
        assert_eq!(ex("\"$A \\$A \\\" \\\\ \\n\"").unwrap(), "alpha $A \" \\ \\n");
        assert_eq!(ex("\\$A\\ b\\\\").unwrap(), "$A b\\");
        assert_eq!(ex("a\"b\"'c'").unwrap(), "abc");
        assert_eq!(ex("trailing\\").unwrap(), "trailing");
        assert!(ex("'open").unwrap_err().contains("single-quote"));
        assert!(ex("\"open").unwrap_err().contains("double-quote"));
        assert!(ex("${A").unwrap_err().contains("missing '}'"));
        assert!(ex("${A:-x").unwrap_err().contains("missing '}'"));
        assert!(ex("${}").is_err());
        assert!(ex("${A%x}").unwrap_err().contains("unsupported"));
    }

    #[test]
    fn expand_backtick_escape() {
        let e = |w: &str| expand(w, '`', &env).unwrap();
        assert_eq!(e("C:\\dir\\$A"), "C:\\dir\\alpha");
        assert_eq!(e("`$A"), "$A");
        assert_eq!(e("\"a`\"b\""), "a\"b");
    }

    #[test]
    fn expand_words_splitting() {
        let w = |t: &str| expand_words(t, '\\', &env).unwrap();
        assert_eq!(w("  a  'b c' \"$SP\" $SP d\\ e "), vec!["a", "b c", "x y", "x", "y", "d e"]);
        assert_eq!(w("$PORTS 8080"), vec!["80", "443", "8080"]);
        assert_eq!(w("${UNSET:-1 2}"), vec!["1", "2"]);
        assert_eq!(w("$UNSET x"), vec!["x"]);
        assert!(w("").is_empty());
        assert!(expand_words("'x", '\\', &env).is_err());
    }

    #[test]
    fn split_words_raw() {
        assert_eq!(split_words(" a=\"b c\"  d\\ e 'f g' ${X:-1 2}", '\\').unwrap(), vec!["a=\"b c\"", "d\\ e", "'f g'", "${X:-1 2}"]);
        assert!(split_words("\"x", '\\').is_err());
        assert!(split_words("", '\\').unwrap().is_empty());
    }

    #[test]
    fn referenced_vars_cases() {
        assert_eq!(referenced_vars("$A/${B:-$C} ${D:+x} $A", '\\'), vec!["A", "B", "C", "D"]);
        assert_eq!(referenced_vars("'$NOPE' \"$YES\" \\$NO $ $1 ${_U}", '\\'), vec!["YES", "_U"]);
        assert_eq!(referenced_vars("\"it's $X\"", '\\'), vec!["X"]);
        assert_eq!(referenced_vars("`$NO \\$YES", '`'), vec!["YES"]);
    }
}
