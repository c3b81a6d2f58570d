//! `ps` / `container ls`: the list and docker's container formatter fields.

use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;
use bollard_stubs::models::{ContainerSummary, PortSummary};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::client::{filters_json, Req};
use crate::container::join_host_port;
use crate::format::{ListFormat, Template, Val};
use crate::reference::Reference;
use crate::units;
use crate::Ctx;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long = "format", value_name = "STRING")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "INT", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long = "latest", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long = "size", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub size: Option<bool>,
}

const PS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const PS_TABLE_SIZE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";
const PS_RAW: &str = "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n";

fn ps_header() -> Val {
    Val::obj(
        [
            ("ID", "CONTAINER ID"),
            ("Names", "NAMES"),
            ("Image", "IMAGE"),
            ("Command", "COMMAND"),
            ("CreatedAt", "CREATED AT"),
            ("RunningFor", "CREATED"),
            ("Ports", "PORTS"),
            ("State", "STATE"),
            ("Status", "STATUS"),
            ("Size", "SIZE"),
            ("Labels", "LABELS"),
            ("Mounts", "MOUNTS"),
            ("LocalVolumes", "LOCAL VOLUMES"),
            ("Networks", "NETWORKS"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Val::from(*v)))
        .collect(),
    )
}

/// Go's strconv.Quote.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's DisplayablePorts: `0.0.0.0:8080->80/tcp, 9000-9001/tcp`, consecutive ports
/// grouped into ranges.
pub fn displayable_ports(ports: &[PortSummary]) -> String {
    let mut ports: Vec<&PortSummary> = ports.iter().collect();
    let kind = |p: &PortSummary| p.typ.map(|t| t.to_string()).unwrap_or_default();
    ports.sort_by(|a, b| {
        a.private_port
            .cmp(&b.private_port)
            .then_with(|| a.ip.clone().unwrap_or_default().cmp(&b.ip.clone().unwrap_or_default()))
            .then_with(|| a.public_port.unwrap_or(0).cmp(&b.public_port.unwrap_or(0)))
            .then_with(|| kind(a).cmp(&kind(b)))
    });
    let mut groups: BTreeMap<String, (u16, u16)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in ports {
        let current = p.private_port;
        let mut key = kind(p);
        let ip = p.ip.clone().unwrap_or_default();
        if !ip.is_empty() {
            let public = p.public_port.unwrap_or(0);
            if public != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&ip, &public.to_string()),
                    p.private_port,
                    kind(p)
                ));
                continue;
            }
            key = format!("{ip}/{}", kind(p));
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (current, current));
                order.push(key);
            }
            Some(g) if current == g.1.wrapping_add(1) => g.1 = current,
            Some(g) => {
                result.push(form_group(&key, g.0, g.1));
                *g = (current, current);
            }
        }
    }
    for key in order {
        let (first, last) = groups[&key];
        result.push(form_group(&key, first, last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, start: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, kind)) => (ip, kind),
        None => ("", key),
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{kind}")
}

/// The image column: an image given by ID shows as its short ID; otherwise the familiar
/// name with its tag (digests dropped) unless `no_trunc`.
fn image_column(c: &ContainerSummary, trunc: bool) -> String {
    let image = c.image.clone().unwrap_or_default();
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image;
    }
    let image_id = c.image_id.clone().unwrap_or_default();
    if units::short_id(&image_id) == units::short_id(&image) {
        return units::short_id(&image);
    }
    match Reference::parse(&image) {
        Ok(r) => match &r.tag {
            Some(t) => format!("{}:{t}", r.familiar_name()),
            None => r.familiar_name(),
        },
        Err(_) => image,
    }
}

/// One row with docker's formatter fields, all strings as docker renders them.
pub fn row(c: &ContainerSummary, trunc: bool) -> Val {
    let id = c.id.clone().unwrap_or_default();
    let names: Vec<String> = c
        .names
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string())
        .collect();
    let names = if trunc {
        match names.iter().find(|n| !n.contains('/')) {
            Some(n) => vec![n.clone()],
            None => names,
        }
    } else {
        names
    };
    let command = c.command.clone().unwrap_or_default();
    let command = if trunc { units::ellipsis(&command, 20) } else { command };
    let created = c.created.unwrap_or(0);
    let size_rw = c.size_rw.unwrap_or(0);
    let size_root = c.size_root_fs.unwrap_or(0);
    let size = if size_root > 0 {
        format!(
            "{} (virtual {})",
            units::human_size_prec(size_rw, 3),
            units::human_size_prec(size_root, 3)
        )
    } else {
        units::human_size_prec(size_rw, 3)
    };
    let labels: BTreeMap<String, String> = c.labels.clone().unwrap_or_default().into_iter().collect();
    let mounts = c.mounts.clone().unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            let name = m
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| m.source.clone().unwrap_or_default());
            if trunc {
                units::ellipsis(&name, 15)
            } else {
                name
            }
        })
        .collect();
    let local_volumes = mounts.iter().filter(|m| m.driver.as_deref() == Some("local")).count();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    Val::obj(vec![
        ("Command", Val::from(go_quote(&command))),
        ("CreatedAt", Val::from(units::go_time_string(created))),
        ("ID", Val::from(if trunc { units::short_id(&id) } else { id })),
        ("Image", Val::from(image_column(c, trunc))),
        (
            "Labels",
            Val::from(labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        ),
        ("LocalVolumes", Val::from(local_volumes.to_string())),
        ("Mounts", Val::from(mount_names.join(","))),
        ("Names", Val::from(names.join(","))),
        ("Networks", Val::from(networks.join(","))),
        (
            "Platform",
            c.image_manifest_descriptor
                .as_ref()
                .and_then(|d| d.platform.as_ref())
                .map(Val::from_serialize)
                .unwrap_or(Val::Null),
        ),
        ("Ports", Val::from(displayable_ports(c.ports.as_deref().unwrap_or(&[])))),
        ("RunningFor", Val::from(units::since(created))),
        ("Size", Val::from(size)),
        ("State", Val::from(c.state.map(|s| s.to_string()).unwrap_or_default())),
        ("Status", Val::from(c.status.clone().unwrap_or_default())),
    ])
}

pub async fn ps(ctx: &Ctx, args: PsArgs) -> anyhow::Result<()> {
    let configured = crate::attach::config_setting(ctx, "psFormat");
    let user_format = args
        .format
        .as_deref()
        .or(configured.as_deref())
        .map(str::trim)
        .filter(|f| !f.is_empty());
    // A custom template that shows .Size asks for sizes, unless --size=false was given.
    let mut size = args.size.unwrap_or(false);
    if args.size.is_none() && !args.quiet {
        if let Some(f) = user_format.filter(|f| !matches!(*f, "json" | "table" | "raw")) {
            // `.Size`, or the whole row through `json .`
            let squeezed: String = f.chars().filter(|c| !c.is_whitespace()).collect();
            size = f.contains(".Size") || squeezed.contains("json.}}") || squeezed.contains("json.)");
        }
    }
    let format = match user_format {
        _ if args.quiet => {
            if args.format.as_deref().map(str::trim).is_some_and(|f| !f.is_empty() && f != "table") {
                eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
            }
            if user_format == Some("raw") {
                ListFormat::parse(Some("container_id: {{.ID}}"), PS_TABLE)?
            } else {
                ListFormat::parse(Some("{{.ID}}"), PS_TABLE)?
            }
        }
        None | Some("table") => ListFormat::parse(None, if size { PS_TABLE_SIZE } else { PS_TABLE })?,
        Some("raw") => {
            let raw = if size { format!("{PS_RAW}size: {{{{.Size}}}}\n") } else { PS_RAW.to_string() };
            ListFormat::Plain(Template::parse(&raw)?)
        }
        Some(f) => ListFormat::parse(Some(&rewrite_label_calls(f).0), PS_TABLE)?,
    };
    let label_names = user_format.map(|f| rewrite_label_calls(f).1).unwrap_or_default();
    let mut limit = args.last;
    if args.latest && limit == -1 {
        limit = 1;
    }
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    let req = Req::get("/containers/json")
        .flag("all", args.all)
        .query_opt("limit", (limit > 0).then(|| limit.to_string()).as_deref())
        .flag("size", size)
        .query_opt("filters", filters.as_deref());
    let list: Vec<ContainerSummary> = ctx.client.json(req).await?;
    let mut header = ps_header();
    let mut rows: Vec<Val> = list.iter().map(|c| row(c, !args.no_trunc)).collect();
    add_label_fields(&mut header, &mut rows, &label_names, list.iter().map(|c| c.labels.as_ref()));
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

/// Where the labels map sits for rewritten `.Label` calls.
const LABELS_KEY: &str = "__labels";

/// docker's `{{.Label "NAME"}}` is a method call; the template engine has no methods, so
/// the call becomes `(index .__labels "NAME")`. Returns the new template and the names.
pub fn rewrite_label_calls(tmpl: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(tmpl.len());
    let mut names = Vec::new();
    let mut rest = tmpl;
    while let Some(i) = rest.find(".Label") {
        let after = &rest[i + ".Label".len()..];
        let trimmed = after.trim_start();
        let is_call = after.len() != trimmed.len() && trimmed.starts_with(['"', '`']);
        let quote = trimmed.chars().next().unwrap_or('"');
        let end = if is_call { trimmed[1..].find(quote).map(|e| e + 2) } else { None };
        match end {
            Some(end) => {
                let literal = &trimmed[..end];
                out.push_str(&rest[..i]);
                out.push_str(&format!("(index .{LABELS_KEY} {literal})"));
                names.push(literal[1..literal.len() - 1].to_string());
                rest = &trimmed[end..];
            }
            None => {
                out.push_str(&rest[..i + ".Label".len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, names)
}

/// Gives rows and header what `.Label "NAME"` calls were rewritten to read: each row's
/// labels, and the column titles.
pub fn add_label_fields<'a>(
    header: &mut Val,
    rows: &mut [Val],
    names: &[String],
    labels: impl IntoIterator<Item = Option<&'a HashMap<String, String>>>,
) {
    if names.is_empty() {
        return;
    }
    if let Val::Obj(fields) = header {
        let titles = names.iter().map(|n| (n.clone(), Val::from(label_header(n)))).collect();
        fields.push((LABELS_KEY.to_string(), Val::Obj(titles)));
    }
    for (r, labels) in rows.iter_mut().zip(labels) {
        if let Val::Obj(fields) = r {
            let map = labels.into_iter().flatten().map(|(k, v)| (k.clone(), Val::from(v.clone()))).collect();
            fields.push((LABELS_KEY.to_string(), Val::Obj(map)));
        }
    }
}

/// The column title docker gives a label: its last dotted part, `-`/`_` as spaces.
fn label_header(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).replace(['-', '_'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::PortSummaryTypeEnum;

    fn port(ip: Option<&str>, private: u16, public: Option<u16>, typ: PortSummaryTypeEnum) -> PortSummary {
        PortSummary {
            ip: ip.map(str::to_string),
            private_port: private,
            public_port: public,
            typ: Some(typ),
        }
    }

    #[test]
    fn ports_display_like_docker() {
        use PortSummaryTypeEnum::*;
        let ports = vec![
            port(Some("0.0.0.0"), 80, Some(8080), TCP),
            port(Some("::"), 80, Some(8080), TCP),
            port(None, 9000, None, TCP),
            port(None, 9001, None, TCP),
            port(None, 9003, None, TCP),
            port(None, 53, None, UDP),
            port(Some("0.0.0.0"), 7000, Some(7000), TCP),
            port(Some("0.0.0.0"), 7001, Some(7001), TCP),
        ];
        assert_eq!(
            displayable_ports(&ports),
            // a range broken by a gap is emitted first, as docker does
            "9000-9001/tcp, 53/udp, 0.0.0.0:7000-7001->7000-7001/tcp, 9003/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(displayable_ports(&[]), "");
    }

    #[test]
    fn label_calls() {
        let (t, names) = rewrite_label_calls(r#"table {{.Names}}\t{{.Label "com.example.my-app"}} {{.Labels}}"#);
        assert_eq!(t, r#"table {{.Names}}\t{{(index .__labels "com.example.my-app")}} {{.Labels}}"#);
        assert_eq!(names, vec!["com.example.my-app"]);
        assert_eq!(label_header("com.example.my-app"), "my app");
    }

    #[test]
    fn rows_follow_docker() {
        let c: ContainerSummary = serde_json::from_str(
            r#"{"Id":"e598294cb901aaaabbbbccccddddeeeeffff0000111122223333444455556666","Names":["/quirky","/other/link"],
                "Image":"127.0.0.1:5077/busybox","ImageID":"sha256:0e60d1efe6e5","Command":"sh -c 'exit 3; echo a long command'",
                "Created":1700000000,"Ports":[],"Labels":{"b":"2","a":"1"},"State":"exited","Status":"Exited (3) 2 minutes ago",
                "SizeRw":12,"SizeRootFs":1982291,
                "HostConfig":{"NetworkMode":"none"},"NetworkSettings":{"Networks":{"none":{}}},
                "Mounts":[{"Type":"volume","Name":"0123456789abcdef0123","Source":"/var/lib/x","Destination":"/data","Driver":"local","Mode":"","RW":true,"Propagation":""}]}"#,
        )
        .unwrap();
        let r = row(&c, true);
        let g = |k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
        assert_eq!(g("ID"), "e598294cb901");
        assert_eq!(g("Names"), "quirky");
        assert_eq!(g("Image"), "127.0.0.1:5077/busybox");
        assert_eq!(g("Command"), r#""sh -c 'exit 3; echo…""#);
        assert_eq!(g("Labels"), "a=1,b=2");
        assert_eq!(g("State"), "exited");
        assert_eq!(g("Size"), "12B (virtual 1.98MB)");
        assert_eq!(g("Mounts"), "0123456789abcd…");
        assert_eq!(g("LocalVolumes"), "1");
        assert_eq!(g("Networks"), "none");
        let r = row(&c, false);
        let g = |k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
        assert_eq!(g("Names"), "quirky,other/link");
        assert_eq!(g("Command"), r#""sh -c 'exit 3; echo a long command'""#);
        assert_eq!(g("ID").len(), 64);
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\x01""#);
    }
}
