//! Logs in runc's shapes, because containerd's runc shim reads the last `error` entry of
//! `--log FILE --log-format json` to report why a runtime call failed.
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::cli::{Global, LogFormat};

struct RuncLog {
    out: Mutex<Box<dyn Write + Send>>,
    format: LogFormat,
    max: Level,
    to_file: bool,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            self.extra.push((field.name().to_string(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            self.extra.push((field.name().to_string(), value.to_string()));
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLog {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // libcontainer warns about every absent v1 controller on each call; keep its
        // warnings for --debug and show only its errors otherwise.
        // On stderr only our own one-line error is wanted; a log file keeps the library's
        // errors too, before ours, which comes last for the shim to read.
        if self.max < Level::DEBUG && is_library(meta.target()) {
            return self.to_file && *meta.level() <= Level::ERROR;
        }
        *meta.level() <= self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let mut msg = f.msg;
        for (k, v) in f.extra {
            let _ = write!(msg, " {k}={v}");
        }
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn is_library(target: &str) -> bool {
    target.starts_with("libcgroups") || target.starts_with("libcontainer")
}

/// Sets up logging to `--log` (or stderr). Returns whether logs go to a file, in which case
/// errors are printed to stderr as well, as runc does.
pub fn init(global: &Global) -> bool {
    let max = if global.debug { Level::DEBUG } else { Level::WARN };
    let (out, to_file): (Box<dyn Write + Send>, bool) = match &global.log {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => (Box::new(f), true),
            Err(e) => {
                eprintln!("berth-runtime: cannot open log file {}: {e}", path.display());
                (Box::new(std::io::stderr()), false)
            }
        },
        None => (Box::new(std::io::stderr()), false),
    };
    let layer = RuncLog { out: Mutex::new(out), format: global.log_format, max, to_file };
    let _ = tracing_subscriber::registry().with(layer).try_init();
    to_file
}
