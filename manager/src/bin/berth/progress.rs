//! Renders the daemon's newline-delimited JSON progress streams (pull, push, load, import)
//! as docker does: one line per layer id, progress bars on a terminal, plain status lines
//! otherwise. Messages are shown as they arrive.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use bollard_stubs::models::BuildInfo;
use hyper::body::Incoming;
use hyper::Response;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::{ClientError, Lines};

/// An error reported inside a progress stream (`{"errorDetail": {...}, "error": "..."}`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String);

/// One stream message: the generated type plus the two legacy string fields.
#[derive(Debug, serde::Deserialize)]
pub struct Message {
    #[serde(flatten)]
    pub info: BuildInfo,
    #[serde(default)]
    error: Option<String>,
    /// pre-rendered progress text (used only when there is no progressDetail)
    #[serde(default)]
    progress: Option<String>,
}

impl Message {
    fn progress_numbers(&self) -> Option<(i64, i64)> {
        let d = self.info.progress_detail.as_ref()?;
        let current = d.current.unwrap_or(0);
        let total = d.total.unwrap_or(0);
        if current <= 0 && total <= 0 {
            None
        } else {
            Some((current, total))
        }
    }

    pub fn error_text(&self) -> Option<String> {
        if let Some(m) = self.info.error_detail.as_ref().and_then(|d| d.message.clone()) {
            return Some(m);
        }
        self.error.clone().filter(|e| !e.is_empty())
    }
}

enum Output {
    Quiet,
    Plain,
    Terminal {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
        all: Vec<ProgressBar>,
        partial: String,
    },
}

pub struct Renderer {
    out: Output,
    to_stderr: bool,
}

impl Renderer {
    /// A renderer writing to stderr when `to_stderr` (as `run`/`create` show the pull of a
    /// missing image), stdout otherwise.
    pub fn with_target(quiet: bool, to_stderr: bool) -> Renderer {
        let is_terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let out = if quiet {
            Output::Quiet
        } else if is_terminal {
            Output::Terminal {
                multi: MultiProgress::with_draw_target(if to_stderr {
                    ProgressDrawTarget::stderr()
                } else {
                    ProgressDrawTarget::stdout()
                }),
                bars: HashMap::new(),
                all: Vec::new(),
                partial: String::new(),
            }
        } else {
            Output::Plain
        };
        Renderer { out, to_stderr }
    }

    pub fn show(&mut self, m: &Message) {
        let status = m.info.status.clone().unwrap_or_default();
        match &mut self.out {
            Output::Quiet => {}
            Output::Plain => {
                let mut out: Box<dyn Write> = if self.to_stderr {
                    Box::new(std::io::stderr().lock())
                } else {
                    Box::new(std::io::stdout().lock())
                };
                if let Some(text) = &m.info.stream {
                    let _ = out.write_all(text.as_bytes());
                } else if m.progress_numbers().is_some() {
                    // docker leaves progress updates out when not on a terminal
                } else if m.info.status.is_some() {
                    if let Some(id) = m.info.id.as_deref().filter(|i| !i.is_empty()) {
                        let _ = write!(out, "{id}: ");
                    }
                    match m.progress.as_deref().filter(|p| !p.is_empty()) {
                        Some(p) => {
                            let _ = writeln!(out, "{status} {p}");
                        }
                        None => {
                            let _ = writeln!(out, "{status}");
                        }
                    }
                }
                let _ = out.flush();
            }
            Output::Terminal {
                multi,
                bars,
                all,
                partial,
            } => {
                // Bars get their style before joining the display, so no default-styled
                // frame is ever drawn.
                let mut add_line = |text: String| {
                    let pb = multi.add(ProgressBar::new(0).with_style(text_style(false)).with_message(text));
                    pb.finish();
                    all.push(pb);
                };
                if let Some(text) = &m.info.stream {
                    partial.push_str(text);
                    while let Some(i) = partial.find('\n') {
                        let line: String = partial.drain(..=i).collect();
                        add_line(line.trim_end_matches(['\n', '\r']).to_string());
                    }
                    return;
                }
                if m.info.status.is_none() {
                    return;
                }
                let id = m.info.id.clone().unwrap_or_default();
                if id.is_empty() {
                    add_line(status);
                    return;
                }
                let pb = bars.entry(id.clone()).or_insert_with(|| {
                    let pb = multi.add(ProgressBar::new(0).with_style(text_style(true)).with_prefix(id.clone()));
                    all.push(pb.clone());
                    pb
                });
                match m.progress_numbers() {
                    Some((current, total)) => {
                        pb.set_style(bar_style(total > 0));
                        if total > 0 {
                            pb.set_length(total as u64);
                        }
                        pb.set_position(current.max(0) as u64);
                        pb.set_message(status);
                    }
                    None => {
                        pb.set_style(text_style(true));
                        pb.set_message(status);
                    }
                }
            }
        }
    }

    pub fn finish(self) {
        if let Output::Terminal { all, partial, multi, .. } = self.out {
            if !partial.is_empty() {
                multi
                    .add(ProgressBar::new(0).with_style(text_style(false)).with_message(partial))
                    .finish();
            }
            for pb in all {
                if !pb.is_finished() {
                    pb.abandon();
                }
            }
        }
    }
}

fn text_style(with_prefix: bool) -> ProgressStyle {
    let template = if with_prefix { "{prefix}: {msg}" } else { "{msg}" };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn bar_style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        "{prefix}: {msg} [{bar:50}] {decimal_bytes:>9}/{decimal_total_bytes}"
    } else {
        "{prefix}: {msg} {decimal_bytes:>9}"
    };
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Reads and renders a progress stream to its end. An error message in the stream
/// stops rendering and is returned as a [`StreamError`].
pub async fn render(resp: Response<Incoming>, quiet: bool) -> anyhow::Result<()> {
    render_to(resp, quiet, false).await
}

/// [`render`] to stderr when `to_stderr`.
/// A JSON message stream (pull, push, build, load), one decoded message at a time.
pub struct Messages(Lines);

impl Messages {
    pub fn new(resp: Response<Incoming>) -> Self {
        Messages(Lines::new(resp))
    }

    /// The next message; None at the end of the stream. Blank lines are skipped.
    pub async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            let Some(line) = self.0.next_line().await? else { return Ok(None) };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&line)
                .map(Some)
                .map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&line))).into());
        }
    }
}

pub async fn render_to(resp: Response<Incoming>, quiet: bool, to_stderr: bool) -> anyhow::Result<()> {
    let mut messages = Messages::new(resp);
    let mut renderer = Renderer::with_target(quiet, to_stderr);
    let result = loop {
        let msg = match messages.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Some(err) = msg.error_text() {
            break Err(StreamError(err).into());
        }
        renderer.show(&msg);
    };
    renderer.finish();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_docker_messages() {
        let m: Message = serde_json::from_str(
            r#"{"status":"Downloading","progressDetail":{"current":10,"total":100},"progress":"[=>  ]","id":"abc"}"#,
        )
        .unwrap();
        assert_eq!(m.progress_numbers(), Some((10, 100)));
        assert_eq!(m.info.id.as_deref(), Some("abc"));
        let m: Message = serde_json::from_str(r#"{"status":"Pull complete","progressDetail":{},"id":"abc"}"#).unwrap();
        assert_eq!(m.progress_numbers(), None);
        let m: Message =
            serde_json::from_str(r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#).unwrap();
        assert_eq!(m.error_text().as_deref(), Some("manifest unknown"));
        let m: Message = serde_json::from_str(r#"{"error":"old style"}"#).unwrap();
        assert_eq!(m.error_text().as_deref(), Some("old style"));
        let m: Message = serde_json::from_str(r#"{"stream":"Loaded image: x\n"}"#).unwrap();
        assert_eq!(m.info.stream.as_deref(), Some("Loaded image: x\n"));
        let m: Message = serde_json::from_str(r#"{"status":"latest: digest: sha256:1 size: 527","progressDetail":{},"aux":{"Tag":"latest","Digest":"sha256:1","Size":527}}"#).unwrap();
        assert!(m.info.status.is_some());
    }
}
