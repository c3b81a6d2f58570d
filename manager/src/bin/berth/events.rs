//! `events` / `system events`: the daemon's event stream (`GET /events`, one JSON message
//! per line), printed as docker does or through a template.

use std::io::Write;

use anyhow::anyhow;
use clap::Args;

use crate::client::{filters_json, Lines, Req};
use crate::format::{Template, Val};
use crate::units;
use crate::{Ctx, StatusError};

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(long = "format", value_name = "STRING")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long = "since", value_name = "STRING")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until", value_name = "STRING")]
    pub until: Option<String>,
}

/// docker's plain event line: `TIME TYPE ACTION ID (k=v, …)`, the time in local RFC 3339
/// with nanoseconds.
pub fn pretty(ev: &Val) -> String {
    let num = |k: &str| ev.get(k).and_then(Val::as_i64).unwrap_or(0);
    let text = |v: Option<&Val>| v.and_then(Val::as_str).unwrap_or("").to_string();
    let (nanos, secs) = (num("timeNano"), num("time"));
    let mut out = String::new();
    let stamp = if nanos != 0 {
        Some((nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000) as u32))
    } else if secs != 0 {
        Some((secs, 0))
    } else {
        None
    };
    if let Some((s, n)) = stamp {
        use chrono::TimeZone;
        if let Some(t) = chrono::Local.timestamp_opt(s, n).single() {
            out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
            out.push(' ');
        }
    }
    let actor = ev.get("Actor");
    out.push_str(&format!(
        "{} {} {}",
        text(ev.get("Type")),
        text(ev.get("Action")),
        text(actor.and_then(|a| a.get("ID")))
    ));
    if let Some(Val::Obj(attrs)) = actor.and_then(|a| a.get("Attributes")) {
        if !attrs.is_empty() {
            let mut pairs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={}", v.to_text())).collect();
            pairs.sort();
            out.push_str(&format!(" ({})", pairs.join(", ")));
        }
    }
    out
}

/// The message with the field names of docker's Go struct (what templates use):
/// Status, ID, From, Type, Action, Actor{ID, Attributes}, Scope, Time, TimeNano.
fn template_view(ev: &Val) -> Val {
    let get = |k: &str| ev.get(k).cloned().unwrap_or(Val::Str(String::new()));
    let num = |k: &str| ev.get(k).cloned().unwrap_or(Val::Num("0".into()));
    let actor = ev.get("Actor").cloned().unwrap_or(Val::Obj(Vec::new()));
    let actor = Val::obj(vec![
        ("ID", actor.get("ID").cloned().unwrap_or(Val::Str(String::new()))),
        ("Attributes", actor.get("Attributes").cloned().unwrap_or(Val::Obj(Vec::new()))),
    ]);
    Val::obj(vec![
        ("Status", get("status")),
        ("ID", get("id")),
        ("From", get("from")),
        ("Type", get("Type")),
        ("Action", get("Action")),
        ("Actor", actor),
        ("Scope", get("scope")),
        ("Time", num("time")),
        ("TimeNano", num("timeNano")),
    ])
}

pub async fn events(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    let bad = |e: String| StatusError { code: 1, message: e };
    let format = args.format.as_deref().map(str::trim).filter(|f| !f.is_empty());
    // `json` and `{{json .}}` print the message as the daemon sent it.
    let raw_json = matches!(format, Some("json") | Some("{{json .}}"));
    let template = match format {
        Some(f) if !raw_json => Some(Template::parse(f)?),
        _ => None,
    };
    let now = chrono::Local::now();
    let since = match &args.since {
        Some(s) if !s.is_empty() => Some(units::api_timestamp(s, now).map_err(bad)?),
        _ => None,
    };
    let until = match &args.until {
        Some(s) if !s.is_empty() => Some(units::api_timestamp(s, now).map_err(bad)?),
        _ => None,
    };
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    let req = Req::get("/events")
        .query_opt("since", since.as_deref())
        .query_opt("until", until.as_deref())
        .query_opt("filters", filters.as_deref());
    let resp = ctx.client.send(req).await?;
    let mut lines = Lines::new(resp);
    while let Some(line) = lines.next_line().await? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let ev = Val::from_json_slice(&line).map_err(|e| anyhow!("{e}"))?;
        let text = if raw_json {
            ev.to_json(true)
        } else if let Some(t) = &template {
            t.execute(&template_view(&ev))?
        } else {
            pretty(&ev)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_docker() {
        let ev = Val::from_json_slice(
            br#"{"status":"start","id":"abc","from":"busybox","Type":"container","Action":"start",
                "Actor":{"ID":"abc","Attributes":{"name":"web","image":"busybox"}},"scope":"local",
                "time":1700000000,"timeNano":1700000000123456789}"#,
        )
        .unwrap();
        let line = pretty(&ev);
        assert!(line.ends_with(" container start abc (image=busybox, name=web)"), "{line}");
        assert!(line.contains(".123456789"), "{line}");
        let t = Template::parse("{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.TimeNano}} {{.Scope}}").unwrap();
        assert_eq!(
            t.execute(&template_view(&ev)).unwrap(),
            "container start web 1700000000123456789 local"
        );
    }
}
