use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use libcontainer::container::{Container, ContainerStatus};
use serde::Serialize;

use crate::cli::{Global, IdArg};

/// The OCI runtime spec's state, plus runc's `created`/`owner` extras that tools read.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: ContainerStatus,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a HashMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub owner: String,
}

impl<'a> State<'a> {
    pub fn of(c: &'a Container) -> Self {
        let s = &c.state;
        // A stopped container has no process; runc reports pid 0.
        let pid = if s.status == ContainerStatus::Stopped { 0 } else { s.pid.unwrap_or(0) };
        State {
            oci_version: &s.oci_version,
            id: &s.id,
            status: s.status,
            pid,
            bundle: super::user_bundle(c),
            annotations: s.annotations.as_ref(),
            created: s
                .created
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            owner: String::new(),
        }
    }
}

pub fn run(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    println!("{}", serde_json::to_string_pretty(&State::of(&c))?);
    Ok(0)
}
