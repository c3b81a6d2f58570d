//! Volume commands: the `volume` group (create, ls, inspect, rm, prune), with docker 28's
//! flags and output. No cluster (swarm) volumes: their flags are left out.

use anyhow::anyhow;
use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};

use crate::client::{filters_json, Req};
use crate::container::natural_cmp;
use crate::format::{ListFormat, Val};
use crate::image::confirm;
use crate::inspect::{self, Kind};
use crate::network::{kv_map, trim_id, validate_labels};
use crate::ps::{add_label_fields, rewrite_label_calls};
use crate::units;
use crate::Ctx;

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// List volumes
    #[command(name = "ls", visible_alias = "list")]
    Ls(LsArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
    /// Remove one or more volumes
    #[command(name = "rm", visible_alias = "remove")]
    Rm(RmArgs),
}

pub async fn run(ctx: &Ctx, cmd: VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create(a) => create(ctx, a).await,
        VolumeCommand::Inspect(a) => inspect(ctx, a).await,
        VolumeCommand::Ls(a) => list(ctx, a).await,
        VolumeCommand::Prune(a) => prune(ctx, a).await,
        VolumeCommand::Rm(a) => remove(ctx, a).await,
    }
}

// ---------------------------------------------------------------------------------------
// create

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long = "driver", value_name = "string", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string", hide = true)]
    pub name_flag: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Volume name (generated when not given)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

/// docker's body: empty fields are left out (its CreateOptions are all `omitempty`).
fn create_body(a: &CreateArgs) -> anyhow::Result<VolumeCreateRequest> {
    validate_labels("volume create", &a.label)?;
    let flag = a.name_flag.as_ref().filter(|n| !n.is_empty());
    let name = match (a.name.as_ref(), flag) {
        (Some(_), Some(_)) => {
            return Err(anyhow!(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
            ))
        }
        (Some(n), None) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let map = |v: &[String]| Some(kv_map(v)).filter(|m| !m.is_empty());
    Ok(VolumeCreateRequest {
        name: non_empty(name),
        driver: non_empty(a.driver.clone()),
        driver_opts: map(&a.opt),
        labels: map(&a.label),
        cluster_volume_spec: None,
    })
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let body = create_body(&args)?;
    let vol: Volume = ctx.client.json(Req::post("/volumes/create").json_body(&body)).await?;
    println!("{}", vol.name);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ls

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub quiet: bool,
}

const VOLUMES_TABLE: &str = "table {{.Driver}}\t{{.Name}}";
const VOLUMES_RAW: &str = r"name: {{.Name}}\ndriver: {{.Driver}}\n";

fn volumes_header() -> Val {
    Val::obj(
        [
            ("Name", "VOLUME NAME"),
            ("Group", "GROUP"),
            ("Driver", "DRIVER"),
            ("Scope", "SCOPE"),
            ("Availability", "AVAILABILITY"),
            ("Mountpoint", "MOUNTPOINT"),
            ("Labels", "LABELS"),
            ("Links", "LINKS"),
            ("Size", "SIZE"),
            ("Status", "STATUS"),
        ]
        .into_iter()
        .map(|(k, v)| (k, Val::from(v)))
        .collect(),
    )
}

/// One row with docker's volume formatter fields (the cluster ones are N/A here).
fn row(v: &Volume) -> Val {
    // Go prints the labels map in random order; sorted is one of its orders, and stable
    let mut labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let usage = v.usage_data.as_ref();
    Val::obj(vec![
        ("Name", Val::from(v.name.clone())),
        ("Group", Val::from("N/A")),
        ("Driver", Val::from(v.driver.clone())),
        ("Scope", Val::from(v.scope.map(|s| s.to_string()).unwrap_or_default())),
        ("Availability", Val::from("N/A")),
        ("Mountpoint", Val::from(v.mountpoint.clone())),
        ("Labels", Val::from(labels.join(","))),
        ("Links", Val::from(usage.map_or("N/A".into(), |u| u.ref_count.to_string()))),
        ("Size", Val::from(usage.map_or("N/A".into(), |u| units::human_size(u.size)))),
        ("Status", Val::from("N/A")),
    ])
}

pub async fn list(ctx: &Ctx, args: LsArgs) -> anyhow::Result<()> {
    // docker: --format, else config.json's volumesFormat (not with -q), else table
    let chosen = match args.format.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => f.to_string(),
        None => crate::attach::config_setting(ctx, "volumesFormat")
            .filter(|f| !f.is_empty() && !args.quiet)
            .unwrap_or_else(|| "table".into()),
    };
    let template = match (chosen.as_str(), args.quiet) {
        ("table", true) => "{{.Name}}",
        ("table", false) => VOLUMES_TABLE,
        ("raw", true) => "name: {{.Name}}",
        ("raw", false) => VOLUMES_RAW,
        (f, _) => f,
    };
    let (template, label_names) = rewrite_label_calls(template);
    let format = ListFormat::parse(Some(&template), VOLUMES_TABLE)?;
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    let resp: VolumeListResponse = ctx
        .client
        .json(Req::get("/volumes").query_opt("filters", filters.as_deref()))
        .await?;
    // docker drops them; stderr keeps stdout as docker's
    for w in resp.warnings.iter().flatten() {
        eprintln!("WARNING: {w}");
    }
    let mut volumes = resp.volumes.unwrap_or_default();
    volumes.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let mut header = volumes_header();
    let mut rows: Vec<Val> = volumes.iter().map(row).collect();
    add_label_fields(&mut header, &mut rows, &label_names, volumes.iter().map(|v| Some(&v.labels)));
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// inspect / rm

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, args: InspectArgs) -> anyhow::Result<()> {
    inspect::inspect_as(ctx, &[Kind::Volume], &args.volumes, args.format.as_deref(), "volume", false).await
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// docker 28: each removed name as it goes, then every error at the end (exit 1). With
/// --force the daemon, not the client, ignores missing volumes.
pub async fn remove(ctx: &Ctx, args: RmArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for name in &args.volumes {
        let result = match trim_id("volume", name) {
            Ok(id) => ctx
                .client
                .call(Req::delete(format!("/volumes/{id}")).flag("force", args.force))
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(anyhow!(errors.join("\n")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// prune

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long = "all", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
}

/// The prune filters: --filter, plus `all=true` for --all (named volumes too).
fn prune_filters(a: &PruneArgs) -> anyhow::Result<Option<String>> {
    let mut filters = a.filter.clone();
    if a.all {
        let is_all = |f: &String| f.split_once('=').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("all"));
        if filters.iter().any(is_all) {
            return Err(anyhow!("conflicting options: cannot specify both --all and --filter all=1"));
        }
        filters.push("all=true".into());
    }
    filters_json(&filters).map_err(|e| anyhow!(e))
}

pub async fn prune(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<()> {
    let filters = prune_filters(&args)?;
    let warning = if args.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !confirm(warning)? {
        return Ok(());
    }
    let report: VolumePruneResponse = ctx
        .client
        .json(Req::post("/volumes/prune").query_opt("filters", filters.as_deref()))
        .await?;
    let deleted = report.volumes_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for name in deleted {
            println!("{name}");
        }
        println!();
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", units::human_size(reclaimed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: VolumeCommand,
    }

    fn parse(argv: &[&str]) -> VolumeCommand {
        Cli::try_parse_from(std::iter::once("volume").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .cmd
    }

    fn create_json(argv: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut full = vec!["create"];
        full.extend_from_slice(argv);
        match parse(&full) {
            VolumeCommand::Create(a) => Ok(serde_json::to_value(create_body(&a)?)?),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_flags_map_to_the_body() {
        assert_eq!(
            create_json(&["-d", "local", "--label", "a=1", "--label", "b", "-o", "type=tmpfs", "-o", "o=size=1m", "v1"])
                .unwrap(),
            json!({"Name": "v1", "Driver": "local", "DriverOpts": {"type": "tmpfs", "o": "size=1m"},
                   "Labels": {"a": "1", "b": ""}})
        );
        assert_eq!(create_json(&[]).unwrap(), json!({"Driver": "local"}));
        assert_eq!(create_json(&["--name", "v2"]).unwrap()["Name"], "v2");
        assert!(create_json(&["--name", "v2", "v3"]).unwrap_err().to_string().starts_with("conflicting options"));
        let e = create_json(&["--label", "=x"]).unwrap_err();
        assert_eq!(e.downcast_ref::<crate::StatusError>().map(|s| s.code), Some(125));
        assert!(e.to_string().ends_with("empty name\nSee 'berth volume create --help'."));
    }

    #[test]
    fn prune_and_rm_flags() {
        let filters = |argv: &[&str]| {
            let mut full = vec!["prune"];
            full.extend_from_slice(argv);
            let VolumeCommand::Prune(a) = parse(&full) else { panic!() };
            prune_filters(&a)
        };
        assert_eq!(filters(&[]).unwrap(), None);
        assert_eq!(filters(&["-af", "--filter", "label=x"]).unwrap().unwrap(), r#"{"all":["true"],"label":["x"]}"#);
        assert!(filters(&["--all", "--filter", "all=1"]).unwrap_err().to_string().starts_with("conflicting options"));
        let VolumeCommand::Rm(a) = parse(&["remove", "-f", "a", "b"]) else { panic!() };
        assert!(a.force && a.volumes == ["a", "b"]);
    }

    #[test]
    fn list_rows_and_table() {
        let resp: VolumeListResponse = serde_json::from_str(
            r#"{"Volumes":[
                {"Name":"v10","Driver":"local","Mountpoint":"/var/lib/berth/volumes/v10/_data",
                 "Labels":{"b":"2","a":"1"},"Scope":"local","Options":null},
                {"Name":"v9","Driver":"local","Mountpoint":"/m","Labels":null,"Scope":"local","Options":{},
                 "UsageData":{"Size":2048000,"RefCount":1}}],"Warnings":null}"#,
        )
        .unwrap();
        let mut vols = resp.volumes.unwrap();
        vols.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        let rows: Vec<Val> = vols.iter().map(row).collect();
        let g = |r: &Val, k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
        assert_eq!((g(&rows[0], "Size"), g(&rows[0], "Links")), ("2.048MB".into(), "1".into()));
        assert_eq!((g(&rows[1], "Labels"), g(&rows[1], "Links"), g(&rows[1], "Scope")), ("a=1,b=2".into(), "N/A".into(), "local".into()));
        let out = ListFormat::parse(None, VOLUMES_TABLE).unwrap().render(&volumes_header(), &rows).unwrap();
        assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     v9\nlocal     v10\n");
        let out = ListFormat::parse(Some("{{.Name}}"), VOLUMES_TABLE).unwrap().render(&volumes_header(), &rows).unwrap();
        assert_eq!(out, "v9\nv10\n");
    }
}
