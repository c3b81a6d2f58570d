//! /_ping, /version, /info, /system/df, /auth.

use super::{json, ApiResult, API_VERSION, MIN_API_VERSION};
use crate::errors::Error;
use crate::Daemon;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method};
use axum::response::IntoResponse;
use bollard_stubs::models::{RegistryServiceConfig, SystemInfo, SystemVersion, SystemVersionComponents, SystemVersionPlatform};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn ping(method: Method) -> impl IntoResponse {
    let body = if method == Method::HEAD { "" } else { "OK" };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate")], body)
}

fn kernel() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

pub async fn version() -> ApiResult {
    let v = env!("CARGO_PKG_VERSION").to_string();
    let mut details = HashMap::new();
    details.insert("ApiVersion".to_string(), API_VERSION.to_string());
    details.insert("MinAPIVersion".to_string(), MIN_API_VERSION.to_string());
    details.insert("Os".to_string(), "linux".to_string());
    details.insert("Arch".to_string(), crate::image::host_arch().to_string());
    details.insert("KernelVersion".to_string(), kernel());
    Ok(json(&SystemVersion {
        platform: Some(SystemVersionPlatform { name: "berth".into() }),
        components: Some(vec![SystemVersionComponents { name: "Engine".into(), version: v.clone(), details: Some(details) }]),
        version: Some(v),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some(option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown").into()),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some(crate::image::host_arch().into()),
        kernel_version: Some(kernel()),
        experimental: Some(false),
        build_time: Some(String::new()),
    }))
}

pub async fn info(State(d): State<Arc<Daemon>>) -> ApiResult {
    let images = d.images.list(&Default::default(), true)?.len() as i64;
    let (total, running, paused, stopped) = d.containers.running_count()?;
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok()))
        .map(|kb| kb * 1024);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let mut cidrs: Vec<String> = vec!["127.0.0.0/8".into()];
    cidrs.extend(d.config.insecure_registries.iter().cloned());
    let info = SystemInfo {
        id: Some(d.id.clone()),
        containers: Some(total),
        containers_running: Some(running),
        containers_paused: Some(paused),
        containers_stopped: Some(stopped),
        images: Some(images),
        driver: Some("overlay2".into()),
        driver_status: Some(vec![vec!["Backing Filesystem".into(), "extfs".into()]]),
        docker_root_dir: Some(d.config.data_root.display().to_string()),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(bollard_stubs::models::SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if cgroup_v2 { bollard_stubs::models::SystemInfoCgroupVersionEnum::_2 } else { bollard_stubs::models::SystemInfoCgroupVersionEnum::_1 }),
        kernel_version: Some(kernel()),
        operating_system: Some(os),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1)),
        mem_total,
        index_server_address: Some("https://index.docker.io/v1/".into()),
        registry_config: Some(RegistryServiceConfig { insecure_registry_cidrs: Some(cidrs), ..Default::default() }),
        name: Some(nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()),
        server_version: Some(env!("CARGO_PKG_VERSION").into()),
        default_runtime: Some("berth".into()),
        live_restore_enabled: Some(true),
        debug: Some(d.config.debug),
        system_time: Some(crate::image::now_rfc3339()),
        security_options: Some(vec!["name=seccomp,profile=builtin".into()]),
        warnings: Some(vec![]),
        ..Default::default()
    };
    Ok(json(&info))
}

/// Disk usage in the shape API ≤ 1.51 clients read (`LayersSize`, `Images`, …).
pub async fn df(State(d): State<Arc<Daemon>>) -> ApiResult {
    let images = d.images.list(&Default::default(), true)?;
    let containers = d.containers.list(&crate::container::ListOptions { all: true, ..Default::default() })?;
    Ok(json(&serde_json::json!({
        "LayersSize": d.images.layers_size()?,
        "Images": images,
        "Containers": containers,
        "Volumes": [],
        "BuildCache": [],
    })))
}

pub async fn auth(State(d): State<Arc<Daemon>>, body: Bytes) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    struct AuthBody {
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        serveraddress: String,
    }
    let b: AuthBody = serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid auth request: {e}")))?;
    let domain = registry_domain(&b.serveraddress);
    let creds = crate::distribution::Credentials { username: b.username, password: b.password, identity_token: String::new() };
    d.images.registry.login(&domain, creds).await?;
    Ok(json(&serde_json::json!({ "Status": "Login Succeeded", "IdentityToken": "" })))
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://127.0.0.1:5000/` → `127.0.0.1:5000`.
pub fn registry_domain(server: &str) -> String {
    let s = server.trim();
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => crate::reference::DEFAULT_DOMAIN.into(),
        h => h.to_string(),
    }
}
