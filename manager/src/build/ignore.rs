//! `.dockerignore`: which files of the build context are left out, with Docker's rules.
//!
//! Patterns are globs in the style of Go's `filepath.Match` (`*` and `?` never cross `/`,
//! `[a-z]`, `[^a-z]`/`[!a-z]`, `\` escapes) plus `**`, which spans any number of directories.
//! A pattern matches a path when it matches the whole path or one of its parent directories,
//! and the last matching pattern decides; `!` patterns re-include.

/// One step of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`
    Any,
    /// `*`
    Star,
    /// `**` or `**/` before more pattern: zero or more whole directories, i.e. `(.*/)?`.
    DirStar,
    /// `**` at the end: anything at all.
    Rest,
    /// `[...]`: inclusive ranges.
    Class { negated: bool, ranges: Vec<(char, char)> },
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    exception: bool,
    toks: Vec<Tok>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parse a .dockerignore: one pattern per line, `#` comments, blank lines skipped, leading `!`
    /// = exception, each pattern cleaned like Go's filepath.Clean, leading `/` stripped.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            // Like Docker, only a `#` in the first column starts a comment.
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(format!(".dockerignore line {}: illegal exclusion pattern \"!\"", n + 1));
                }
            }
            let cleaned = clean(p);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rel) if !rel.is_empty() => rel,
                _ => cleaned.as_str(),
            };
            let toks = compile(cleaned).map_err(|e| format!(".dockerignore line {}: bad pattern {p:?}: {e}", n + 1))?;
            patterns.push(Pattern { exception, toks });
        }
        Ok(Ignore { patterns })
    }

    /// Is this context-relative path (e.g. "src/a.txt") excluded?
    pub fn excluded(&self, path: &str) -> bool {
        let path = normalize(path);
        if path.is_empty() {
            return false;
        }
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // An exclusion cannot change an excluded path, nor an exception an included one.
            if p.exception != excluded {
                continue;
            }
            if p.matches(&path) || parents.iter().any(|d| p.matches(d)) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// True if an exception pattern could re-include something below this directory, so a
    /// walker must descend into it even though the directory itself is excluded.
    /// Errs on the side of true: the exception's position among the patterns is not considered.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir = normalize(dir);
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            let mut st = p.start();
            for c in dir.chars() {
                // Matching `dir` or one of its parents re-includes everything below.
                if c == '/' && p.accepts(&st) {
                    return true;
                }
                st = p.step(&st, c);
                if !st.contains(&true) {
                    return false;
                }
            }
            if dir.is_empty() || p.accepts(&st) {
                return true;
            }
            // Still alive after `dir/`: some path below can complete the match, since every
            // token can match some character.
            p.step(&st, '/').contains(&true)
        })
    }
}

/// A path as the matcher wants it: relative, no `.`/`..`/empty segments.
fn normalize(path: &str) -> String {
    let c = clean(path);
    let c = c.trim_start_matches('/');
    if c == "." {
        String::new()
    } else {
        c.to_string()
    }
}

/// Go's `path.Clean` for `/`-separated paths (also the CLI's, for `cp`).
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        i += 1;
        let tok = match c {
            '*' if cs.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is the same as `**`: the slash is part of what `**` spans.
                if cs.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= cs.len() {
                    Tok::Rest
                } else {
                    Tok::DirStar
                }
            }
            '*' => Tok::Star,
            '?' => Tok::Any,
            // A trailing backslash has nothing to escape and stays literal (as in Docker).
            '\\' => match cs.get(i) {
                Some(&n) => {
                    i += 1;
                    Tok::Lit(n)
                }
                None => Tok::Lit('\\'),
            },
            '[' => {
                let negated = matches!(cs.get(i), Some('^' | '!'));
                i += usize::from(negated);
                let mut ranges = Vec::new();
                loop {
                    let lo = match cs.get(i) {
                        None => return Err("unterminated character class".into()),
                        Some(']') if !ranges.is_empty() => break,
                        Some(']') => return Err("empty character class".into()),
                        Some(_) => class_char(&cs, &mut i)?,
                    };
                    let hi = if cs.get(i) == Some(&'-') && cs.get(i + 1).is_some_and(|&c| c != ']') {
                        i += 1;
                        class_char(&cs, &mut i)?
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err(format!("bad range {lo}-{hi}"));
                    }
                    ranges.push((lo, hi));
                }
                i += 1; // the `]`
                Tok::Class { negated, ranges }
            }
            c => Tok::Lit(c),
        };
        toks.push(tok);
    }
    Ok(toks)
}

fn class_char(cs: &[char], i: &mut usize) -> Result<char, String> {
    let c = *cs.get(*i).ok_or("unterminated character class")?;
    *i += 1;
    if c != '\\' {
        return Ok(c);
    }
    let e = *cs.get(*i).ok_or("unterminated character class")?;
    *i += 1;
    Ok(e)
}

/// The pattern runs as an NFA so that `*`/`**` never backtrack exponentially. State `2k` means
/// "at token k"; `2k+1` means "inside the `**` at token k, waiting for a `/` to leave it";
/// state `2·len` accepts.
impl Pattern {
    fn start(&self) -> Vec<bool> {
        let mut st = vec![false; 2 * self.toks.len() + 1];
        st[0] = true;
        self.close(&mut st);
        st
    }

    /// Follow the empty moves: `*`, `**` may match nothing.
    fn close(&self, st: &mut [bool]) {
        for (k, t) in self.toks.iter().enumerate() {
            if st[2 * k] && matches!(t, Tok::Star | Tok::DirStar | Tok::Rest) {
                st[2 * k + 2] = true;
            }
        }
    }

    fn step(&self, st: &[bool], c: char) -> Vec<bool> {
        let mut next = vec![false; st.len()];
        for (k, t) in self.toks.iter().enumerate() {
            let (at, inside, after) = (2 * k, 2 * k + 1, 2 * k + 2);
            if st[inside] {
                next[inside] = true;
                next[after] |= c == '/';
            }
            if !st[at] {
                continue;
            }
            match t {
                Tok::Lit(l) => next[after] |= c == *l,
                Tok::Any => next[after] |= c != '/',
                Tok::Class { negated, ranges } => {
                    next[after] |= c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                }
                Tok::Star => next[at] |= c != '/',
                Tok::Rest => next[at] = true,
                Tok::DirStar => {
                    next[inside] = true;
                    next[after] |= c == '/';
                }
            }
        }
        self.close(&mut next);
        next
    }

    fn accepts(&self, st: &[bool]) -> bool {
        st.last().copied().unwrap_or(false)
    }

    fn matches(&self, path: &str) -> bool {
        let mut st = self.start();
        for c in path.chars() {
            st = self.step(&st, c);
            if !st.contains(&true) {
                return false;
            }
        }
        self.accepts(&st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn star_suffix() {
        let i = ig("*.md");
        assert!(i.excluded("README.md"));
        assert!(!i.excluded("docs/README.md"), "* does not cross /");
        assert!(!i.excluded("README.mdx"));
    }

    #[test]
    fn double_star() {
        let i = ig("**/*.go");
        assert!(i.excluded("main.go"));
        assert!(i.excluded("a/b/c.go"));
        assert!(!i.excluded("a/b/c.rs"));
        let i = ig("a/**/b");
        assert!(i.excluded("a/b"));
        assert!(i.excluded("a/x/y/b"));
        assert!(i.excluded("a/x/b/file"), "parent dir matches");
        assert!(!i.excluded("a/xb"));
        let i = ig("**");
        assert!(i.excluded("anything/at/all"));
        let i = ig("vendor/**");
        assert!(i.excluded("vendor/x"));
        assert!(!i.excluded("vendor"));
    }

    #[test]
    fn exception_after_exclusion() {
        let i = ig("*.md\n!README.md");
        assert!(i.excluded("CHANGES.md"));
        assert!(!i.excluded("README.md"));
        // Order matters: a later exclusion wins again.
        let i = ig("*.md\n!README.md\nREADME*");
        assert!(i.excluded("README.md"));
    }

    #[test]
    fn question_mark() {
        let i = ig("temp?");
        assert!(i.excluded("temp1"));
        assert!(i.excluded("tempx/inner"));
        assert!(!i.excluded("temp"));
        assert!(!i.excluded("temp12"));
        assert!(!ig("a?b").excluded("a/b"));
    }

    #[test]
    fn trailing_slash_and_abs() {
        let i = ig("dir/\n/abs\n./rel/../other//x");
        assert!(i.excluded("dir"));
        assert!(i.excluded("dir/a/b"));
        assert!(i.excluded("abs"));
        assert!(i.excluded("abs/file"));
        assert!(!i.excluded("x/abs"));
        assert!(i.excluded("other/x"));
        assert!(!i.excluded("rel/other/x"));
    }

    #[test]
    fn prefix_directory_match() {
        let i = ig("docs");
        assert!(i.excluded("docs"));
        assert!(i.excluded("docs/x/y"));
        assert!(!i.excluded("docsy"));
        assert!(!i.excluded("src/docs"));
    }

    #[test]
    fn nested_exclusion_and_reinclusion() {
        let i = ig("build\n!build/keep\nbuild/keep/tmp");
        assert!(i.excluded("build/out.o"));
        assert!(!i.excluded("build/keep"));
        assert!(!i.excluded("build/keep/file"));
        assert!(i.excluded("build/keep/tmp/x"));
        assert!(i.may_reinclude_below("build"));
        assert!(!i.may_reinclude_below("other"));
        assert!(!ig("build").may_reinclude_below("build"));
        // Wildcards in the exception are followed, not just literal prefixes.
        let i = ig("*\n!**/important.txt");
        assert!(i.excluded("a/b/c"));
        assert!(!i.excluded("a/b/important.txt"));
        assert!(i.may_reinclude_below("a/b"));
        let i = ig("*\n!src/*.rs");
        assert!(i.may_reinclude_below("src"));
        assert!(!i.may_reinclude_below("lib"));
        assert!(!i.may_reinclude_below("src/sub"));
        // An exception matching the directory itself or a parent counts too.
        assert!(ig("a/b\n!a").may_reinclude_below("a/b"));
    }

    #[test]
    fn character_classes() {
        let i = ig("[abc].txt\nlog[^0-9]\nx[!y]z\nesc\\*");
        assert!(i.excluded("a.txt"));
        assert!(!i.excluded("d.txt"));
        assert!(i.excluded("logx"));
        assert!(!i.excluded("log5"));
        assert!(i.excluded("xaz"));
        assert!(!i.excluded("xyz"));
        assert!(i.excluded("esc*"));
        assert!(!i.excluded("escape"));
        assert!(!ig("a[^b]c").excluded("a/c"));
        assert!(Ignore::parse("[abc").is_err());
        assert!(Ignore::parse("[]").is_err());
        assert!(Ignore::parse("[z-a]").is_err());
    }

    #[test]
    fn comments_blank_and_errors() {
        let i = ig("# comment\n\n   \n  spaced  \r\n#*.md\n");
        assert!(i.excluded("spaced"));
        assert!(!i.excluded("#*.md"));
        assert!(!i.excluded("x.md"));
        assert_eq!(i.patterns.len(), 1);
        assert!(Ignore::parse("!").unwrap_err().contains("line 1"));
        assert!(!ig("").excluded("a"));
        assert!(!ig("*").excluded(""));
    }

    #[test]
    fn path_normalisation() {
        let i = ig("a/b");
        assert!(i.excluded("./a/b"));
        assert!(i.excluded("/a//b/"));
        assert!(i.excluded("a/c/../b/d"));
    }

    #[test]
    fn unicode_and_pathological() {
        let i = ig("caf\u{e9}/*\n[\u{e0}-\u{ff}]x");
        assert!(i.excluded("caf\u{e9}/menu"));
        assert!(i.excluded("\u{e9}x"));
        let i = ig("**/a*a*a*a*a*a*a*a*b");
        let long = "a".repeat(200);
        assert!(!i.excluded(&long));
        assert!(i.excluded(&format!("x/{long}b")));
    }
}
