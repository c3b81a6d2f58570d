//! `--format`: the subset of Go's text/template that docker's CLI users write, plus the
//! column alignment (Go's tabwriter) docker uses for `table` formats.
//!
//! Values are JSON-shaped ([`Val`]) with object keys kept in order, so inspect output keeps
//! the daemon's field order and numbers keep their exact text.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON-shaped value whose objects keep their keys in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    /// The number's text as received (ints stay ints).
    Num(String),
    Str(String),
    Arr(Vec<Val>),
    Obj(Vec<(String, Val)>),
}

impl Val {
    pub fn obj<K: Into<String>>(fields: Vec<(K, Val)>) -> Val {
        Val::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn from_json_slice(bytes: &[u8]) -> Result<Val, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Any serializable value (e.g. a generated API type), keeping its field order.
    pub fn from_serialize<T: serde::Serialize>(value: &T) -> Val {
        serde_json::to_vec(value)
            .ok()
            .and_then(|b| Val::from_json_slice(&b).ok())
            .unwrap_or(Val::Null)
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Num(n) => n.parse::<i64>().ok().or_else(|| n.parse::<f64>().ok().map(|f| f as i64)),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Go template truth: false, 0, nil and empty values are false.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => n.parse::<f64>().map(|f| f != 0.0).unwrap_or(true),
            Val::Str(s) => !s.is_empty(),
            Val::Arr(a) => !a.is_empty(),
            Val::Obj(o) => !o.is_empty(),
        }
    }

    /// The same object with its keys sorted (how Go marshals a map).
    pub fn sorted_keys(&self) -> Val {
        match self {
            Val::Obj(fields) => {
                let mut fields = fields.clone();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Val::Obj(fields)
            }
            other => other.clone(),
        }
    }

    /// Go's `%v` rendering: `[a b]` for lists, `map[k:v]` for objects (keys sorted).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Val::Null => out.push_str("<nil>"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => out.push_str(n),
            Val::Str(s) => out.push_str(s),
            Val::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_text(out);
                }
                out.push(']');
            }
            Val::Obj(fields) => {
                let mut sorted: Vec<&(String, Val)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push_str("map[");
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_text(out);
                }
                out.push(']');
            }
        }
    }

    /// Compact JSON. `escape_html` escapes `<`, `>` and `&` as Go's json.Marshal does.
    pub fn to_json(&self, escape_html: bool) -> String {
        let mut out = String::new();
        self.write_json(&mut out, escape_html, None, 0);
        out
    }

    /// Indented JSON, as Go's json.Indent with the given indent (docker inspect uses 4
    /// spaces), escaping `<`, `>` and `&` or not.
    pub fn to_json_pretty_with(&self, indent: &str, escape_html: bool) -> String {
        let mut out = String::new();
        self.write_json(&mut out, escape_html, Some(indent), 0);
        out
    }

    fn write_json(&self, out: &mut String, escape_html: bool, indent: Option<&str>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(ind) = indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(ind);
                }
            }
        };
        match self {
            Val::Null => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Num(n) => out.push_str(n),
            Val::Str(s) => write_json_string(out, s, escape_html),
            Val::Arr(items) => {
                out.push('[');
                if !items.is_empty() {
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        newline(out, depth + 1);
                        v.write_json(out, escape_html, indent, depth + 1);
                    }
                    newline(out, depth);
                }
                out.push(']');
            }
            Val::Obj(fields) => {
                out.push('{');
                if !fields.is_empty() {
                    for (i, (k, v)) in fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        newline(out, depth + 1);
                        write_json_string(out, k, escape_html);
                        out.push(':');
                        if indent.is_some() {
                            out.push(' ');
                        }
                        v.write_json(out, escape_html, indent, depth + 1);
                    }
                    newline(out, depth);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Str(s)
    }
}
impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Num(n.to_string())
    }
}
impl From<bool> for Val {
    fn from(b: bool) -> Val {
        Val::Bool(b)
    }
}
impl From<Vec<String>> for Val {
    fn from(v: Vec<String>) -> Val {
        Val::Arr(v.into_iter().map(Val::Str).collect())
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Num(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val, E> {
        Ok(Val::Num(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val, E> {
        Ok(Val::Num(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        Val::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Val>()? {
            items.push(v);
        }
        Ok(Val::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Val>()? {
            fields.push((k, v));
        }
        Ok(Val::Obj(fields))
    }
}

// ---------------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("template parsing error: template: :{line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("template parsing error: template: :{line}:{col}: executing \"\" at <{at}>: {msg}")]
    Exec {
        line: usize,
        col: usize,
        at: String,
        msg: String,
    },
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| before.len() - i - 1).unwrap_or(before.len());
    (line, col)
}

// ---------------------------------------------------------------------------------------
// Lexing

#[derive(Clone, Debug, PartialEq)]
enum TokKind {
    /// `.A.B` (empty for `.`)
    Field(Vec<String>),
    /// `$x.A` (name without `$`; empty for `$`)
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: TokKind,
    /// byte offset in the template source
    pos: usize,
    /// source text of the token (for error messages)
    text: String,
    space_before: bool,
}

enum Segment {
    Text(String),
    Action { toks: Vec<Tok>, pos: usize },
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn split_segments(src: &str) -> Result<Vec<Segment>, FormatError> {
    let mut segs = Vec::new();
    let mut rest_start = 0;
    let perr = |pos: usize, msg: String| FormatError::Parse {
        line: line_col(src, pos).0,
        msg,
    };
    while let Some(found) = src[rest_start..].find("{{") {
        let open = rest_start + found;
        let mut text = src[rest_start..open].to_string();
        let mut inner_start = open + 2;
        if src[inner_start..].starts_with("- ")
            || src[inner_start..].starts_with("-\t")
            || src[inner_start..].starts_with("-\n")
        {
            text = text.trim_end().to_string();
            inner_start += 1;
        }
        if !text.is_empty() {
            segs.push(Segment::Text(text));
        }
        // comments
        let after_ws = inner_start + (src[inner_start..].len() - src[inner_start..].trim_start().len());
        if src[after_ws..].starts_with("/*") {
            let end = src[after_ws..]
                .find("*/")
                .ok_or_else(|| perr(open, "unclosed comment".into()))?;
            let mut close = after_ws + end + 2;
            let rest = &src[close..];
            let trimmed = rest.trim_start();
            let mut trim_right = false;
            if trimmed.starts_with("-}}") && trimmed.len() < rest.len() {
                trim_right = true;
                close += rest.len() - trimmed.len() + 3;
            } else if trimmed.starts_with("}}") {
                close += rest.len() - trimmed.len() + 2;
            } else {
                return Err(perr(open, "comment ends before closing delimiter".into()));
            }
            rest_start = close;
            if trim_right {
                rest_start += src[rest_start..].len() - src[rest_start..].trim_start().len();
            }
            continue;
        }
        let (toks, end, trim_right) = lex_action(src, inner_start)?;
        segs.push(Segment::Action { toks, pos: open });
        rest_start = end;
        if trim_right {
            rest_start += src[rest_start..].len() - src[rest_start..].trim_start().len();
        }
    }
    if rest_start < src.len() {
        segs.push(Segment::Text(src[rest_start..].to_string()));
    }
    Ok(segs)
}

/// Lexes one action starting after `{{`; returns its tokens, the offset after `}}`, and
/// whether it ended with the `-}}` trim marker.
fn lex_action(src: &str, start: usize) -> Result<(Vec<Tok>, usize, bool), FormatError> {
    let perr = |pos: usize, msg: String| FormatError::Parse {
        line: line_col(src, pos).0,
        msg,
    };
    let bytes = src.as_bytes();
    let mut i = start;
    let mut toks = Vec::new();
    let mut space = true;
    loop {
        if i >= src.len() {
            return Err(perr(start, "unclosed action".into()));
        }
        let rest = &src[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            // ` -}}`
            let trimmed = rest.trim_start();
            if trimmed.starts_with("-}}") {
                return Ok((toks, i + (rest.len() - trimmed.len()) + 3, true));
            }
            i += c.len_utf8();
            space = true;
            continue;
        }
        if rest.starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        let tok_start = i;
        let kind = match c {
            '|' => {
                i += 1;
                TokKind::Pipe
            }
            '(' => {
                i += 1;
                TokKind::LParen
            }
            ')' => {
                i += 1;
                TokKind::RParen
            }
            ',' => {
                i += 1;
                TokKind::Comma
            }
            '=' => {
                i += 1;
                TokKind::Assign
            }
            ':' if rest.starts_with(":=") => {
                i += 2;
                TokKind::Declare
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < src.len() {
                    let ch = src[j..].chars().next().unwrap();
                    j += ch.len_utf8();
                    match ch {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\n' => break,
                        '\\' => {
                            let e = src[j..].chars().next().unwrap_or('\\');
                            j += e.len_utf8();
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                '\\' => s.push('\\'),
                                '"' => s.push('"'),
                                '\'' => s.push('\''),
                                '0' => s.push('\0'),
                                other => {
                                    return Err(perr(i, format!("invalid syntax: unknown escape \\{other}")))
                                }
                            }
                        }
                        other => s.push(other),
                    }
                }
                if !closed {
                    return Err(perr(i, "unterminated quoted string".into()));
                }
                i = j;
                TokKind::Str(s)
            }
            '`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| perr(i, "unterminated raw quoted string".into()))?;
                let s = src[i + 1..i + 1 + end].to_string();
                i += end + 2;
                TokKind::Str(s)
            }
            '.' | '$' => {
                let mut j = i + 1;
                let mut var = None;
                if c == '$' {
                    let name_end = j + src[j..].find(|ch: char| !is_ident_char(ch)).unwrap_or(src.len() - j);
                    var = Some(src[j..name_end].to_string());
                    j = name_end;
                }
                let mut chain = Vec::new();
                if c == '.' {
                    // first segment already consumed the dot
                    let end = j + src[j..].find(|ch: char| !is_ident_char(ch)).unwrap_or(src.len() - j);
                    if end > j {
                        chain.push(src[j..end].to_string());
                    } else if j < src.len() && bytes[j].is_ascii_digit() {
                        return Err(perr(i, "unexpected . in operand".into()));
                    }
                    j = end;
                }
                while j < src.len() && bytes[j] == b'.' {
                    let end =
                        j + 1 + src[j + 1..].find(|ch: char| !is_ident_char(ch)).unwrap_or(src.len() - j - 1);
                    if end == j + 1 {
                        return Err(perr(i, "unexpected . after term".into()));
                    }
                    chain.push(src[j + 1..end].to_string());
                    j = end;
                }
                i = j;
                match var {
                    Some(name) => TokKind::Var(name, chain),
                    None => TokKind::Field(chain),
                }
            }
            c if c.is_ascii_digit() || ((c == '-' || c == '+') && rest[1..].starts_with(|d: char| d.is_ascii_digit())) => {
                let mut j = i + 1;
                while j < src.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'.' || bytes[j] == b'_') {
                    j += 1;
                }
                let text = src[i..j].to_string();
                if text.parse::<f64>().is_err() && text.parse::<i64>().is_err() {
                    return Err(perr(i, format!("bad number syntax: \"{text}\"")));
                }
                i = j;
                TokKind::Num(text)
            }
            c if is_ident_char(c) => {
                let end = i + src[i..].find(|ch: char| !is_ident_char(ch)).unwrap_or(src.len() - i);
                let word = src[i..end].to_string();
                i = end;
                TokKind::Ident(word)
            }
            other => return Err(perr(i, format!("unexpected \"{other}\" in command"))),
        };
        toks.push(Tok {
            kind,
            pos: tok_start,
            text: src[tok_start..i].to_string(),
            space_before: space,
        });
        space = false;
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone)]
enum Arg {
    Field { chain: Vec<String>, pos: usize, text: String },
    Var { name: String, chain: Vec<String>, pos: usize, text: String },
    Func { name: String, pos: usize },
    Lit(Val),
    Sub { pipe: Box<Pipe>, chain: Vec<String>, pos: usize, text: String },
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If { pipe: Pipe, then: Vec<Node>, els: Vec<Node> },
    Range { pipe: Pipe, body: Vec<Node>, els: Vec<Node> },
    With { pipe: Pipe, body: Vec<Node>, els: Vec<Node> },
}

const FUNCS: &[&str] = &[
    "json", "join", "index", "len", "lower", "upper", "title", "split", "truncate", "pad", "print",
    "printf", "println", "eq", "ne", "lt", "le", "gt", "ge", "not", "and", "or",
];

/// Functions that render their argument unchanged when docker renders a table header.
const HEADER_IDENTITY_FUNCS: &[&str] = &["json", "join", "lower", "upper", "title", "split", "truncate", "pad"];

struct Parser<'a> {
    src: &'a str,
    segs: Vec<Segment>,
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> FormatError {
        FormatError::Parse {
            line: line_col(self.src, pos).0,
            msg: msg.into(),
        }
    }

    /// Parses nodes until an `end`/`else` (returned with the rest of that action's tokens)
    /// or the end of input.
    fn parse_list(&mut self, nested: bool) -> Result<(Vec<Node>, Option<(String, Vec<Tok>, usize)>), FormatError> {
        let mut nodes = Vec::new();
        while self.i < self.segs.len() {
            let seg_index = self.i;
            self.i += 1;
            let (toks, pos) = match &self.segs[seg_index] {
                Segment::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Segment::Action { toks, pos } => (toks.clone(), *pos),
            };
            let keyword = match toks.first().map(|t| &t.kind) {
                Some(TokKind::Ident(w)) => w.as_str(),
                Some(_) => "",
                None => return Err(self.err(pos, "missing value for command")),
            };
            match keyword {
                "end" | "else" => {
                    if !nested {
                        return Err(self.err(pos, format!("unexpected {{{{{keyword}}}}}")));
                    }
                    return Ok((nodes, Some((keyword.to_string(), toks[1..].to_vec(), pos))));
                }
                "if" | "range" | "with" => {
                    let node = self.parse_control(keyword, &toks[1..], pos)?;
                    nodes.push(node);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(self.err(pos, format!("{keyword} is not supported")));
                }
                _ => {
                    let pipe = parse_pipe_toks(self.src, &toks, pos, true)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        if nested {
            return Err(self.err(self.src.len(), "unexpected EOF"));
        }
        Ok((nodes, None))
    }

    fn parse_control(&mut self, keyword: &str, toks: &[Tok], pos: usize) -> Result<Node, FormatError> {
        if toks.is_empty() {
            return Err(self.err(pos, format!("missing value for {keyword}")));
        }
        let pipe = parse_pipe_toks(self.src, toks, pos, true)?;
        let (body, stop) = self.parse_list(true)?;
        let (stop_word, stop_toks, stop_pos) = stop.expect("nested list ends with a keyword");
        let els = if stop_word == "else" {
            if stop_toks.is_empty() {
                let (els, stop2) = self.parse_list(true)?;
                let (w, _, p) = stop2.expect("nested list ends with a keyword");
                if w != "end" {
                    return Err(self.err(p, "expected end; found {{else}}"));
                }
                els
            } else if matches!(&stop_toks[0].kind, TokKind::Ident(w) if w == "if" || w == "with") {
                // `{{else if …}}` chains: a nested control that consumes the single {{end}}.
                let inner_kw = match &stop_toks[0].kind {
                    TokKind::Ident(w) => w.clone(),
                    _ => unreachable!(),
                };
                vec![self.parse_control(&inner_kw, &stop_toks[1..], stop_pos)?]
            } else {
                return Err(self.err(stop_pos, "unexpected tokens after else"));
            }
        } else {
            if !stop_toks.is_empty() {
                return Err(self.err(stop_pos, "unexpected tokens after end"));
            }
            Vec::new()
        };
        Ok(match keyword {
            "if" => Node::If { pipe, then: body, els },
            "range" => Node::Range { pipe, body, els },
            _ => Node::With { pipe, body, els },
        })
    }
}

fn parse_pipe_toks(src: &str, toks: &[Tok], pos: usize, allow_decl: bool) -> Result<Pipe, FormatError> {
    let mut p = TokParser { src, toks, i: 0, pos };
    let pipe = p.pipe(allow_decl)?;
    if p.i < toks.len() {
        return Err(p.err(toks[p.i].pos, format!("unexpected {} in operand", toks[p.i].text)));
    }
    Ok(pipe)
}

struct TokParser<'a> {
    src: &'a str,
    toks: &'a [Tok],
    i: usize,
    pos: usize,
}

impl<'a> TokParser<'a> {
    fn err(&self, pos: usize, msg: impl Into<String>) -> FormatError {
        FormatError::Parse {
            line: line_col(self.src, pos).0,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.i).map(|t| &t.kind)
    }

    fn pipe(&mut self, allow_decl: bool) -> Result<Pipe, FormatError> {
        let mut decl = Vec::new();
        let mut assign = false;
        if allow_decl {
            // `$x :=`, `$x =`, `$i, $e :=`
            let mut j = self.i;
            let mut names = Vec::new();
            loop {
                match self.toks.get(j).map(|t| &t.kind) {
                    Some(TokKind::Var(name, chain)) if chain.is_empty() => {
                        names.push(name.clone());
                        j += 1;
                    }
                    _ => break,
                }
                match self.toks.get(j).map(|t| &t.kind) {
                    Some(TokKind::Comma) if names.len() == 1 => j += 1,
                    Some(TokKind::Declare) => {
                        decl = names.clone();
                        self.i = j + 1;
                        break;
                    }
                    Some(TokKind::Assign) => {
                        decl = names.clone();
                        assign = true;
                        self.i = j + 1;
                        break;
                    }
                    _ => break,
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.cmd()?;
            cmds.push(cmd);
            match self.peek() {
                Some(TokKind::Pipe) => {
                    self.i += 1;
                }
                _ => break,
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn cmd(&mut self) -> Result<Cmd, FormatError> {
        let mut args = Vec::new();
        while let Some(kind) = self.peek() {
            if matches!(kind, TokKind::Pipe | TokKind::RParen) {
                break;
            }
            args.push(self.operand()?);
        }
        if args.is_empty() {
            let at = self.toks.get(self.i).map(|t| t.pos).unwrap_or(self.pos);
            return Err(self.err(at, "missing value for command"));
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> Result<Arg, FormatError> {
        let tok = self.toks[self.i].clone();
        self.i += 1;
        Ok(match tok.kind {
            TokKind::Field(chain) => Arg::Field {
                chain,
                pos: tok.pos,
                text: tok.text,
            },
            TokKind::Var(name, chain) => Arg::Var {
                name,
                chain,
                pos: tok.pos,
                text: tok.text,
            },
            TokKind::Ident(word) => match word.as_str() {
                "true" => Arg::Lit(Val::Bool(true)),
                "false" => Arg::Lit(Val::Bool(false)),
                "nil" => Arg::Lit(Val::Null),
                name if FUNCS.contains(&name) => Arg::Func {
                    name: word.clone(),
                    pos: tok.pos,
                },
                _ => return Err(self.err(tok.pos, format!("function \"{word}\" not defined"))),
            },
            TokKind::Str(s) => Arg::Lit(Val::Str(s)),
            TokKind::Num(n) => Arg::Lit(Val::Num(n)),
            TokKind::LParen => {
                let pipe = self.pipe(false)?;
                match self.peek() {
                    Some(TokKind::RParen) => self.i += 1,
                    _ => return Err(self.err(tok.pos, "unclosed left paren")),
                }
                let mut chain = Vec::new();
                let mut text = String::from("(…)");
                if let Some(next) = self.toks.get(self.i) {
                    if let (TokKind::Field(c), false) = (&next.kind, next.space_before) {
                        chain = c.clone();
                        text.push_str(&next.text);
                        self.i += 1;
                    }
                }
                Arg::Sub {
                    pipe: Box::new(pipe),
                    chain,
                    pos: tok.pos,
                    text,
                }
            }
            TokKind::RParen => return Err(self.err(tok.pos, "unexpected right paren")),
            TokKind::Pipe => return Err(self.err(tok.pos, "unexpected | in command")),
            TokKind::Declare | TokKind::Assign | TokKind::Comma => {
                return Err(self.err(tok.pos, format!("unexpected \"{}\" in operand", tok.text)))
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Executing

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, FormatError> {
        let segs = split_segments(src)?;
        let mut parser = Parser { src, segs, i: 0 };
        let (nodes, _) = parser.parse_list(false)?;
        Ok(Template {
            src: src.to_string(),
            nodes,
        })
    }

    /// Renders the template with `dot` as its data.
    pub fn execute(&self, dot: &Val) -> Result<String, FormatError> {
        self.run(dot, false)
    }

    /// Renders a table header: fields resolve to their header names, missing ones to "",
    /// and docker's string helpers pass the header through unchanged.
    pub fn execute_header(&self, header: &Val) -> Result<String, FormatError> {
        self.run(header, true)
    }

    fn run(&self, dot: &Val, header: bool) -> Result<String, FormatError> {
        let mut ex = Exec {
            src: &self.src,
            out: String::new(),
            vars: vec![(String::new(), dot.clone())],
            header,
        };
        ex.walk(&self.nodes, dot)?;
        Ok(ex.out)
    }
}

struct Exec<'a> {
    src: &'a str,
    out: String,
    vars: Vec<(String, Val)>,
    header: bool,
}

impl<'a> Exec<'a> {
    fn err(&self, pos: usize, at: &str, msg: impl Into<String>) -> FormatError {
        let (line, col) = line_col(self.src, pos);
        FormatError::Exec {
            line,
            col,
            at: at.to_string(),
            msg: msg.into(),
        }
    }

    fn walk(&mut self, nodes: &[Node], dot: &Val) -> Result<(), FormatError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        v.write_text(&mut self.out);
                    }
                }
                Node::If { pipe, then, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    let branch = if v.truthy() { then } else { els };
                    self.walk(branch, dot)?;
                    self.vars.truncate(mark);
                }
                Node::With { pipe, body, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    if v.truthy() {
                        self.walk(body, &v)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range { pipe, body, els } => {
                    let mark = self.vars.len();
                    // Evaluate without declaring: range binds its variables per element.
                    let undeclared = Pipe {
                        decl: Vec::new(),
                        assign: false,
                        cmds: pipe.cmds.clone(),
                    };
                    let v = self.pipe(&undeclared, dot)?;
                    let items: Vec<(Val, Val)> = match &v {
                        Val::Arr(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Val::from(i as i64), x.clone()))
                            .collect(),
                        Val::Obj(o) => {
                            let mut o = o.clone();
                            o.sort_by(|a, b| a.0.cmp(&b.0));
                            o.into_iter().map(|(k, x)| (Val::Str(k), x)).collect()
                        }
                        Val::Null => Vec::new(),
                        Val::Num(n) => {
                            let count = n.parse::<i64>().unwrap_or(0).max(0);
                            (0..count).map(|i| (Val::from(i), Val::from(i))).collect()
                        }
                        other => {
                            return Err(self.err(0, "range", format!("range can't iterate over {}", other.to_text())))
                        }
                    };
                    if items.is_empty() {
                        self.walk(els, dot)?;
                    }
                    for (key, item) in items {
                        let inner = self.vars.len();
                        match pipe.decl.len() {
                            0 => {}
                            1 => self.vars.push((pipe.decl[0].clone(), item.clone())),
                            _ => {
                                self.vars.push((pipe.decl[0].clone(), key));
                                self.vars.push((pipe.decl[1].clone(), item.clone()));
                            }
                        }
                        self.walk(body, &item)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &Val) -> Result<Val, FormatError> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            value = Some(self.cmd(cmd, dot, value)?);
        }
        let value = value.unwrap_or(Val::Null);
        for name in &pipe.decl {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                    continue;
                }
            }
            self.vars.push((name.clone(), value.clone()));
        }
        Ok(value)
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &Val, piped: Option<Val>) -> Result<Val, FormatError> {
        let first = &cmd.args[0];
        if let Arg::Func { name, pos } = first {
            let mut args = Vec::with_capacity(cmd.args.len());
            for a in &cmd.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(name, *pos, args);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            let (pos, text) = arg_pos(first);
            return Err(self.err(pos, &text, format!("can't give argument to non-function {text}")));
        }
        self.arg(first, dot)
    }

    fn arg(&mut self, arg: &Arg, dot: &Val) -> Result<Val, FormatError> {
        match arg {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Field { chain, pos, text } => self.chain(dot, chain, *pos, text),
            Arg::Var { name, chain, pos, text } => {
                let base = match self.vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => return Err(self.err(*pos, text, format!("undefined variable: ${name}"))),
                };
                self.chain(&base, chain, *pos, text)
            }
            Arg::Sub { pipe, chain, pos, text } => {
                let base = self.pipe(pipe, dot)?;
                self.chain(&base, chain, *pos, text)
            }
            Arg::Func { name, pos } => self.call(name, *pos, Vec::new()),
        }
    }

    fn chain(&self, base: &Val, chain: &[String], pos: usize, text: &str) -> Result<Val, FormatError> {
        let mut cur = base.clone();
        for field in chain {
            cur = match &cur {
                Val::Obj(_) => match cur.get(field) {
                    Some(v) => v.clone(),
                    None if self.header => Val::Str(String::new()),
                    None => {
                        return Err(self.err(pos, text, format!("map has no entry for key \"{field}\"")));
                    }
                },
                Val::Null => {
                    if self.header {
                        Val::Str(String::new())
                    } else {
                        return Err(self.err(pos, text, format!("nil pointer evaluating .{field}")));
                    }
                }
                other => {
                    if self.header {
                        Val::Str(String::new())
                    } else {
                        return Err(self.err(
                            pos,
                            text,
                            format!("can't evaluate field {field} in type {}", type_name(other)),
                        ));
                    }
                }
            };
        }
        Ok(cur)
    }

    fn call(&self, name: &str, pos: usize, args: Vec<Val>) -> Result<Val, FormatError> {
        let at = name.to_string();
        let e = |msg: String| self.err(pos, &at, format!("error calling {name}: {msg}"));
        let want = |n: usize, args: &Vec<Val>| -> Result<(), FormatError> {
            if args.len() != n {
                Err(self.err(
                    pos,
                    name,
                    format!("wrong number of args for {name}: want {n} got {}", args.len()),
                ))
            } else {
                Ok(())
            }
        };
        if self.header && HEADER_IDENTITY_FUNCS.contains(&name) {
            return Ok(args.into_iter().next().unwrap_or(Val::Str(String::new())));
        }
        Ok(match name {
            "json" => {
                want(1, &args)?;
                Val::Str(args[0].to_json(false))
            }
            "join" => {
                want(2, &args)?;
                let sep = args[1].to_text();
                match &args[0] {
                    Val::Arr(items) => Val::Str(items.iter().map(|v| v.to_text()).collect::<Vec<_>>().join(&sep)),
                    Val::Null => Val::Str(String::new()),
                    other => return Err(e(format!("can't join {}", type_name(other)))),
                }
            }
            "split" => {
                want(2, &args)?;
                let s = args[0].to_text();
                let sep = args[1].to_text();
                Val::Arr(s.split(sep.as_str()).map(Val::from).collect())
            }
            "index" => {
                if args.is_empty() {
                    return Err(e("wrong number of args for index: want at least 1 got 0".into()));
                }
                let mut cur = args[0].clone();
                for key in &args[1..] {
                    cur = match (&cur, key) {
                        (Val::Arr(items), k) => {
                            let i = k.as_i64().ok_or_else(|| e(format!("cannot index slice/array with {}", type_name(k))))?;
                            if i < 0 || i as usize >= items.len() {
                                return Err(e(format!("index out of range: {i}")));
                            }
                            items[i as usize].clone()
                        }
                        (Val::Obj(_), k) => cur.get(&k.to_text()).cloned().unwrap_or(Val::Str(String::new())),
                        (Val::Null, _) => Val::Str(String::new()),
                        (other, _) => return Err(e(format!("can't index item of type {}", type_name(other)))),
                    };
                }
                cur
            }
            "len" => {
                want(1, &args)?;
                match &args[0] {
                    Val::Str(s) => Val::from(s.len() as i64),
                    Val::Arr(a) => Val::from(a.len() as i64),
                    Val::Obj(o) => Val::from(o.len() as i64),
                    Val::Null => Val::from(0),
                    other => return Err(e(format!("len of type {}", type_name(other)))),
                }
            }
            "lower" => {
                want(1, &args)?;
                Val::Str(args[0].to_text().to_lowercase())
            }
            "upper" => {
                want(1, &args)?;
                Val::Str(args[0].to_text().to_uppercase())
            }
            "title" => {
                want(1, &args)?;
                Val::Str(title_case(&args[0].to_text()))
            }
            "truncate" => {
                want(2, &args)?;
                let s = args[0].to_text();
                let n = args[1].as_i64().ok_or_else(|| e("truncate length must be a number".into()))?.max(0) as usize;
                Val::Str(s.chars().take(n).collect())
            }
            "pad" => {
                want(3, &args)?;
                let l = args[1].as_i64().unwrap_or(0).max(0) as usize;
                let r = args[2].as_i64().unwrap_or(0).max(0) as usize;
                let text = args[0].to_text();
                // docker's padWithSpace leaves an empty string empty
                if text.is_empty() {
                    Val::Str(text)
                } else {
                    Val::Str(format!("{}{text}{}", " ".repeat(l), " ".repeat(r)))
                }
            }
            "print" => Val::Str(go_sprint(&args)),
            "println" => {
                let mut s = args.iter().map(|a| a.to_text()).collect::<Vec<_>>().join(" ");
                s.push('\n');
                Val::Str(s)
            }
            "printf" => {
                if args.is_empty() {
                    return Err(e("printf needs a format".into()));
                }
                Val::Str(go_sprintf(&args[0].to_text(), &args[1..]))
            }
            "not" => {
                want(1, &args)?;
                Val::Bool(!args[0].truthy())
            }
            "and" => {
                if args.is_empty() {
                    return Err(e("and needs arguments".into()));
                }
                args.iter().find(|a| !a.truthy()).cloned().unwrap_or_else(|| args[args.len() - 1].clone())
            }
            "or" => {
                if args.is_empty() {
                    return Err(e("or needs arguments".into()));
                }
                args.iter().find(|a| a.truthy()).cloned().unwrap_or_else(|| args[args.len() - 1].clone())
            }
            "eq" => {
                if args.len() < 2 {
                    return Err(e("missing argument for comparison".into()));
                }
                Val::Bool(args[1..].iter().any(|b| values_equal(&args[0], b)))
            }
            "ne" => {
                want(2, &args)?;
                Val::Bool(!values_equal(&args[0], &args[1]))
            }
            "lt" | "le" | "gt" | "ge" => {
                want(2, &args)?;
                let ord = compare(&args[0], &args[1]).ok_or_else(|| e("incompatible types for comparison".into()))?;
                use std::cmp::Ordering::*;
                Val::Bool(match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                })
            }
            other => return Err(e(format!("function \"{other}\" not defined"))),
        })
    }
}

fn arg_pos(a: &Arg) -> (usize, String) {
    match a {
        Arg::Field { pos, text, .. } | Arg::Var { pos, text, .. } | Arg::Sub { pos, text, .. } => (*pos, text.clone()),
        Arg::Func { pos, name } => (*pos, name.clone()),
        Arg::Lit(v) => (0, v.to_text()),
    }
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "nil",
        Val::Bool(_) => "bool",
        Val::Num(_) => "number",
        Val::Str(_) => "string",
        Val::Arr(_) => "list",
        Val::Obj(_) => "map",
    }
}

fn values_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Num(_), Val::Num(_)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Num(_), Val::Num(_)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Go's fmt.Sprint: spaces between operands when neither side is a string.
fn go_sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.to_text());
    }
    out
}

/// A small Go fmt.Sprintf: `%s %v %d %q %t %%` with `-` and width.
fn go_sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut width = String::new();
        while let Some(&f) = chars.peek() {
            if f == '-' {
                left = true;
                chars.next();
            } else if f.is_ascii_digit() {
                width.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let text = match verb {
            'q' => Val::Str(arg.to_text()).to_json(false),
            _ => arg.to_text(),
        };
        let w: usize = width.parse().unwrap_or(0);
        let n = text.chars().count();
        if n < w {
            if left {
                out.push_str(&text);
                out.push_str(&" ".repeat(w - n));
            } else {
                out.push_str(&" ".repeat(w - n));
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Tables and list output

const TAB_MINWIDTH: usize = 10;
const TAB_PADDING: usize = 3;

/// Aligns tab-separated cells into columns as Go's tabwriter does with docker's settings
/// (minwidth 10, padding 3, spaces): a column's width is taken over each run of
/// consecutive lines that have a tab-terminated cell in it.
pub fn tabwrite(text: &str) -> String {
    tabwrite_with(text, TAB_MINWIDTH, TAB_PADDING)
}

/// [`tabwrite`] with another minimum cell width and padding (`docker top` uses 20 and 3).
pub fn tabwrite_with(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // a trailing newline leaves one empty line that is not part of the table
    let trailing_newline = text.ends_with('\n');
    if trailing_newline {
        lines.pop();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    let cfg = TabCfg { minwidth, padding };
    tab_format(&cfg, &lines, &mut widths, 0, lines.len(), &mut out);
    if !trailing_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

struct TabCfg {
    minwidth: usize,
    padding: usize,
}

fn tab_format(cfg: &TabCfg, lines: &[Vec<&str>], widths: &mut Vec<usize>, mut line0: usize, line1: usize, out: &mut String) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        tab_write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = cfg.minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + cfg.padding);
            this += 1;
        }
        widths.push(width);
        tab_format(cfg, lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    tab_write_lines(lines, widths, line0, line1, out);
}

fn tab_write_lines(lines: &[Vec<&str>], widths: &[usize], from: usize, to: usize, out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths.get(j).copied().unwrap_or(0);
                let n = cell.chars().count();
                if n < w {
                    out.push_str(&" ".repeat(w - n));
                }
            }
        }
        out.push('\n');
    }
}

/// A list command's `--format` (images, history, search…), resolved as docker does.
#[derive(Debug)]
pub enum ListFormat {
    /// `table …`: a header row from the field names, then rows, aligned.
    Table(Template),
    /// A plain template, one rendering per row.
    Plain(Template),
    /// `json`: each row as one line of JSON.
    Json,
}

impl ListFormat {
    /// `user` is the `--format` value; `default_table` is used when it is empty or `table`.
    pub fn parse(user: Option<&str>, default_table: &str) -> Result<ListFormat, FormatError> {
        let user = user.map(str::trim).unwrap_or("");
        let chosen = if user.is_empty() || user == "table" { default_table } else { user };
        if chosen == "json" {
            return Ok(ListFormat::Json);
        }
        let unescape = |s: &str| s.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n");
        if let Some(rest) = chosen.strip_prefix("table") {
            return Ok(ListFormat::Table(Template::parse(&unescape(rest))?));
        }
        Ok(ListFormat::Plain(Template::parse(&unescape(chosen))?))
    }

    /// Renders `rows`; `header` maps each field name to its column title.
    pub fn render(&self, header: &Val, rows: &[Val]) -> Result<String, FormatError> {
        match self {
            ListFormat::Json => {
                let mut out = String::new();
                for row in rows {
                    out.push_str(&row.sorted_keys().to_json(true));
                    out.push('\n');
                }
                Ok(out)
            }
            ListFormat::Plain(t) => {
                let mut out = String::new();
                for row in rows {
                    out.push_str(&t.execute(row)?);
                    out.push('\n');
                }
                Ok(out)
            }
            ListFormat::Table(t) => {
                let mut text = t.execute_header(header)?;
                text.push('\n');
                for row in rows {
                    text.push_str(&t.execute(row)?);
                    text.push('\n');
                }
                Ok(tabwrite(&text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Val {
        Val::obj(vec![
            ("Repository", Val::from("busybox")),
            ("Tag", Val::from("latest")),
            ("ID", Val::from("aae0211e373d")),
            ("Size", Val::from(1982291)),
            ("List", Val::from(vec!["a".to_string(), "b".to_string()])),
            ("Labels", Val::obj(vec![("z", Val::from("1")), ("a", Val::from("2"))])),
            ("Nested", Val::obj(vec![("Inner", Val::obj(vec![("Deep", Val::from("x"))]))])),
            ("Empty", Val::Null),
            ("Yes", Val::Bool(true)),
        ])
    }

    fn run(src: &str) -> String {
        Template::parse(src).unwrap().execute(&row()).unwrap()
    }

    #[test]
    fn fields_and_text() {
        assert_eq!(run("{{.Repository}}:{{.Tag}}"), "busybox:latest");
        assert_eq!(run("{{.Nested.Inner.Deep}}"), "x");
        assert_eq!(run("{{.Size}}"), "1982291");
        assert_eq!(run("{{.List}}"), "[a b]");
        assert_eq!(run("{{.Labels}}"), "map[a:2 z:1]");
        assert_eq!(run("{{.Empty}}"), "<nil>");
        assert_eq!(run("plain text"), "plain text");
    }

    #[test]
    fn functions() {
        assert_eq!(run("{{json .List}}"), r#"["a","b"]"#);
        assert_eq!(run("{{json .Labels}}"), r#"{"z":"1","a":"2"}"#);
        assert_eq!(run(r#"{{join .List ","}}"#), "a,b");
        assert_eq!(run(r#"{{index .Labels "a"}}"#), "2");
        assert_eq!(run(r#"{{index .Labels "missing"}}"#), "");
        assert_eq!(run("{{index .List 1}}"), "b");
        assert_eq!(run("{{len .List}}"), "2");
        assert_eq!(run("{{upper .Repository}}"), "BUSYBOX");
        assert_eq!(run("{{.Repository | upper}}"), "BUSYBOX");
        assert_eq!(run("{{title \"hello world\"}}"), "Hello World");
        assert_eq!(run(r#"{{printf "%-8s|%d" .Tag .Size}}"#), "latest  |1982291");
        assert_eq!(run("{{truncate .ID 4}}"), "aae0");
        assert_eq!(run(r#"{{(index .List 0) | upper}}"#), "A");
        assert_eq!(run(r#"{{if eq .Tag "latest"}}yes{{else}}no{{end}}"#), "yes");
        assert_eq!(run(r#"{{if not .Yes}}a{{else if .Tag}}b{{else}}c{{end}}"#), "b");
        assert_eq!(run("{{range .List}}<{{.}}>{{end}}"), "<a><b>");
        assert_eq!(run("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}"), "a=2;z=1;");
        assert_eq!(run("{{with .Nested}}{{.Inner.Deep}}{{end}}"), "x");
        assert_eq!(run("{{$x := .Tag}}{{$x}}-{{$.Repository}}"), "latest-busybox");
        assert_eq!(run("a  {{- .Tag -}}  b"), "alatestb");
        assert_eq!(run("{{/* comment */}}c"), "c");
        assert_eq!(run("{{range .Empty}}x{{else}}none{{end}}"), "none");
    }

    #[test]
    fn errors_are_reported() {
        let e = Template::parse("{{.Repository").unwrap_err().to_string();
        assert!(e.starts_with("template parsing error: template: :1: unclosed action"), "{e}");
        let e = Template::parse("{{nosuch .X}}").unwrap_err().to_string();
        assert!(e.contains("function \"nosuch\" not defined"), "{e}");
        let e = Template::parse("{{if .X}}").unwrap_err().to_string();
        assert!(e.contains("unexpected EOF"), "{e}");
        let e = Template::parse("{{.Foo}}").unwrap().execute(&row()).unwrap_err().to_string();
        assert_eq!(
            e,
            "template parsing error: template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\""
        );
    }

    #[test]
    fn json_shapes() {
        let v = Val::from_json_slice(br#"{"b":1,"a":[1,2.5,"<x>"],"e":{},"n":null,"l":[]}"#).unwrap();
        assert_eq!(v.to_json(false), r#"{"b":1,"a":[1,2.5,"<x>"],"e":{},"n":null,"l":[]}"#);
        assert_eq!(v.to_json(true), r#"{"b":1,"a":[1,2.5,"\u003cx\u003e"],"e":{},"n":null,"l":[]}"#);
        assert_eq!(
            Val::Arr(vec![v]).to_json_pretty_with("    ", true),
            "[\n    {\n        \"b\": 1,\n        \"a\": [\n            1,\n            2.5,\n            \"\\u003cx\\u003e\"\n        ],\n        \"e\": {},\n        \"n\": null,\n        \"l\": []\n    }\n]"
        );
    }

    #[test]
    fn tabwriter_matches_go() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\n127.0.0.1:5000/busybox\tlatest\taae0211e373d\nfoo/bar\tv1\taae0211e373d\n";
        assert_eq!(
            tabwrite(text),
            "REPOSITORY               TAG       IMAGE ID\n\
             127.0.0.1:5000/busybox   latest    aae0211e373d\n\
             foo/bar                  v1        aae0211e373d\n"
        );
        // a trailing empty cell still pads the column before it
        assert_eq!(tabwrite("A\tB\n1\t\n"), "A         B\n1         \n");
    }

    #[test]
    fn list_formats() {
        let header = Val::obj(vec![("Repository", Val::from("REPOSITORY")), ("Tag", Val::from("TAG"))]);
        let rows = vec![row()];
        let f = ListFormat::parse(Some(r"table {{.Repository}}\t{{upper .Tag}}"), "table").unwrap();
        assert_eq!(f.render(&header, &rows).unwrap(), "REPOSITORY   TAG\nbusybox      LATEST\n");
        let f = ListFormat::parse(Some(r"{{.Repository}}\t{{.Tag}}"), "table").unwrap();
        assert_eq!(f.render(&header, &rows).unwrap(), "busybox\tlatest\n");
        let f = ListFormat::parse(Some("json"), "table").unwrap();
        let simple = vec![Val::obj(vec![("b", Val::from("<none>")), ("a", Val::from(1))])];
        assert_eq!(f.render(&header, &simple).unwrap(), "{\"a\":1,\"b\":\"\\u003cnone\\u003e\"}\n");
        let f = ListFormat::parse(None, r"table {{.Repository}}\t{{.Tag}}").unwrap();
        assert_eq!(f.render(&header, &[]).unwrap(), "REPOSITORY   TAG\n");
    }
}
