//! Black-box tests of berthd's image service, driven through the `berth` CLI against a
//! real registry (docker-registry on loopback), with images made and read by independent
//! tools (umoci, skopeo). Needs root (mknod, overlay mounts).
//!
//!   cargo test -p berth-manager --test images -- --test-threads=2
//!
//! Each test has its own registry port, temp dir, data root and socket; see common/mod.rs.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{cmd, images, json, oci::RawTar, run_ok, tree, Sandbox, IMAGE_TOOLS};

/// The manifest's config digest and layer digests, from a parsed manifest.
fn manifest_digests(m: &serde_json::Value) -> (String, Vec<String>) {
    let config = m["config"]["digest"].as_str().expect("manifest has a config digest").to_string();
    let layers = m["layers"]
        .as_array()
        .expect("manifest has layers")
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (config, layers)
}

/// Pushes the standard image as `test:latest`; returns (layout, image reference).
fn push_standard(sb: &Sandbox) -> (PathBuf, String) {
    let layout = images::standard_image(&sb.path("layout"), "latest", &sb.path("work"));
    sb.push_layout(&layout, "latest", "test:latest");
    (layout, sb.image("test:latest"))
}

/// The reference tree must itself show the image's intent, or comparing with it proves
/// nothing: checks what umoci unpacked.
fn check_reference(t: &tree::Tree) {
    assert!(t.get("etc/to-delete").is_none(), "umoci kept a whited-out file");
    assert!(t.get("gone").is_none(), "umoci kept a whited-out dir");
    assert_eq!(t.children("opq"), vec!["fresh".to_string()], "umoci's opaque dir");
    assert_eq!(t.get("bin/suid").unwrap().mode, 0o4755);
    assert!(t.get("bin/pinger").unwrap().xattrs.contains_key("security.capability"));
    assert!(t.get("etc/with-xattr").unwrap().xattrs.contains_key("user.berth.test"));
    assert_eq!(t.get("dev/testnull").unwrap().dev, Some((1, 3)));
    assert!(t.links.iter().any(|g| g.contains(Path::new("data/a")) && g.contains(Path::new("data/b"))));
}

#[test]
fn pull_matches_umoci() {
    if !common::need_tools("pull_matches_umoci", IMAGE_TOOLS) {
        return;
    }
    let mut sb = Sandbox::new("pull");
    sb.start_registry(None);
    let (layout, img) = push_standard(&sb);
    sb.start_berthd();

    sb.berth_ok(&["pull", &img]);
    let listed = sb.berth_ok(&["images"]);
    assert!(
        listed.contains(&format!("{}/test", sb.reg())) && listed.contains("latest"),
        "`berth images` does not list {img}:\n{listed}"
    );

    let want = tree::scan(&images::umoci_unpack(&layout, "latest", &sb.path("bundle")));
    check_reference(&want);

    let mnt = sb.berth_ok(&["image", "mount", &img]).trim().to_string();
    assert!(Path::new(&mnt).is_dir(), "`berth image mount` printed {mnt:?}, not a directory");
    let got = tree::scan(Path::new(&mnt));
    let writable = fs::write(Path::new(&mnt).join("probe"), b"x").is_ok();
    sb.berth_ok(&["image", "unmount", &img]);
    assert!(
        !common::mounts_under(&sb.root).iter().any(|m| m == Path::new(&mnt)),
        "{mnt} is still mounted after `berth image unmount`"
    );

    let (config, _) = manifest_digests(&sb.skopeo_inspect("test:latest", true));
    assert_eq!(sb.image_id(&img), config, "image ID is not the config digest");

    let diffs = tree::diff(&want, &got, "umoci unpack", "berth image mount");
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
    assert!(!writable, "the image mount is writable");
    let whiteouts: Vec<_> = got
        .nodes
        .iter()
        .filter(|(p, n)| {
            p.file_name().unwrap().to_string_lossy().starts_with(".wh.")
                || (n.kind == tree::Kind::Char && n.dev == Some((0, 0)))
        })
        .map(|(p, _)| p.clone())
        .collect();
    assert!(whiteouts.is_empty(), "whiteouts visible in the mount: {whiteouts:?}");

}

#[test]
fn push_readable_by_skopeo() {
    if !common::need_tools("push_readable_by_skopeo", IMAGE_TOOLS) {
        return;
    }
    let mut sb = Sandbox::new("push");
    sb.start_registry(None);
    let (layout, img) = push_standard(&sb);
    let (config, layers) = manifest_digests(&sb.skopeo_inspect("test:latest", true));
    sb.start_berthd();
    sb.berth_ok(&["pull", &img]);

    let pushed = sb.image("pushed/again:v2");
    sb.berth_ok(&["tag", &img, &pushed]);
    sb.berth_ok(&["push", &pushed]);

    let m = sb.skopeo_inspect("pushed/again:v2", true);
    let (config2, layers2) = manifest_digests(&m);
    assert_eq!(config2, config, "pushed config digest; manifest:\n{m:#}");
    assert_eq!(layers2, layers, "pushed layer digests; manifest:\n{m:#}");
    let info = sb.skopeo_inspect("pushed/again:v2", false);
    assert_eq!(info["Layers"].as_array().map(|a| a.len()), Some(3), "skopeo inspect:\n{info:#}");

    // a copy made by skopeo from berth's push unpacks with umoci to the same tree
    let copy = sb.path("copy");
    sb.fetch_to_layout("pushed/again:v2", &copy, "v2");
    let got = tree::scan(&images::umoci_unpack(&copy, "v2", &sb.path("bundle-copy")));
    let want = tree::scan(&images::umoci_unpack(&layout, "latest", &sb.path("bundle")));
    let diffs = tree::diff(&want, &got, "original", "pushed by berth");
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}

#[test]
fn save_load_roundtrip() {
    if !common::need_tools("save_load_roundtrip", IMAGE_TOOLS) {
        return;
    }
    let mut sb = Sandbox::new("saveload");
    sb.start_registry(None);
    let (_, img) = push_standard(&sb);
    sb.start_berthd();
    sb.berth_ok(&["pull", &img]);
    let id = sb.image_id(&img);

    let archive = sb.path("x.tar");
    sb.berth_ok(&["save", "-o", &archive.to_string_lossy(), &img]);
    let info = json(
        &run_ok(&mut cmd("skopeo", &["--insecure-policy", "inspect", &format!("docker-archive:{}", archive.display())]))
            .stdout,
    );
    assert_eq!(info["Layers"].as_array().map(|a| a.len()), Some(3), "skopeo inspect docker-archive:\n{info:#}");
    let listing = run_ok(&mut cmd("tar", &["-tf", &archive.to_string_lossy()])).stdout;
    assert!(listing.lines().any(|l| l == "manifest.json"), "no manifest.json in the archive:\n{listing}");

    sb.berth_ok(&["rmi", &img]);
    assert!(!sb.berth(&["image", "inspect", &img]).ok(), "{img} still there after rmi");

    let out = sb.berth_ok(&["load", "-i", &archive.to_string_lossy()]);
    assert!(out.contains("Loaded image"), "load said: {out}");
    assert_eq!(sb.image_id(&img), id, "image ID after save/rmi/load");

    let mnt = sb.berth_ok(&["image", "mount", &img]).trim().to_string();
    let busybox = fs::read(Path::new(&mnt).join("bin/busybox"));
    let sh = fs::read_link(Path::new(&mnt).join("bin/sh"));
    sb.berth_ok(&["image", "unmount", &img]);
    assert!(busybox.expect("bin/busybox in the loaded image") == fs::read("/bin/busybox").unwrap());
    assert_eq!(sh.expect("bin/sh in the loaded image"), Path::new("busybox"));
}

#[test]
fn basic_auth_registry() {
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.push("htpasswd");
    if !common::need_tools("basic_auth_registry", &tools) {
        return;
    }
    let (user, pass) = ("berthuser", "s3cret-Pw");
    let mut sb = Sandbox::new("auth");
    sb.start_registry(Some((user, pass)));
    let (_, img) = push_standard(&sb);
    sb.start_berthd();
    let reg = sb.reg();

    let out = sb.berth(&["pull", &img]);
    assert!(!out.ok(), "pull without credentials succeeded: {out}");
    let t = out.text_lc();
    assert!(
        ["unauthorized", "authentication required", "no basic auth credentials", "login"]
            .iter()
            .any(|w| t.contains(w)),
        "pull without credentials should say that it needs a login: {out}"
    );

    let out = sb.berth(&["login", "-u", user, "-p", "wrong", &reg]);
    assert!(!out.ok(), "login with a wrong password succeeded: {out}");

    let out = sb.berth_ok(&["login", "-u", user, "-p", pass, &reg]);
    assert!(out.to_lowercase().contains("login succeeded"), "login said: {out}");
    let cfg = sb.path("cli/config.json");
    let saved = fs::read_to_string(&cfg).unwrap_or_else(|e| panic!("{}: {e}", cfg.display()));
    assert!(saved.contains(&reg), "{} does not name {reg}:\n{saved}", cfg.display());

    sb.berth_ok(&["pull", &img]);
    sb.berth_ok(&["image", "inspect", &img]);

    sb.berth_ok(&["logout", &reg]);
    let saved = fs::read_to_string(&cfg).unwrap_or_default();
    assert!(!saved.contains(&reg), "{} still names {reg} after logout:\n{saved}", cfg.display());
    sb.berth_ok(&["rmi", &img]);
    let out = sb.berth(&["pull", &img]);
    assert!(!out.ok(), "pull after logout succeeded: {out}");
}

/// Regular files under the data root (its metadata database left out), dirs directly under
/// snapshots/, and every entry under content/: what a failed pull must not leave behind.
fn data_inventory(data: &Path) -> BTreeSet<PathBuf> {
    let mut set = BTreeSet::new();
    let mut stack = vec![data.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(data).unwrap().to_path_buf();
            let ft = e.file_type().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let in_content = rel.starts_with("content");
            let snapshot = rel.parent() == Some(Path::new("snapshots"));
            if ft.is_dir() {
                if in_content || snapshot {
                    set.insert(rel.clone());
                }
                // don't descend into unpacked trees: a snapshot counts as one
                if !rel.starts_with("snapshots") || rel == Path::new("snapshots") {
                    stack.push(p);
                }
            } else if in_content || (ft.is_file() && !name.contains(".db") && !name.ends_with(".pid") && !name.ends_with(".lock")) {
                set.insert(rel);
            }
        }
    }
    set
}

/// A gzip-compressed tar layer of exactly `size` bytes (a small tar, then a second gzip
/// member of zeros, which tar readers take as end-of-archive padding).
fn same_size_layer(size: usize) -> Vec<u8> {
    use std::io::Write;
    let gz = |data: &[u8], level: u32| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut t = RawTar::new();
    t.dir("etc/", 0o755).file("etc/substituted", b"not the layer the manifest names\n");
    let head = gz(&t.finish(), 6);
    let want = size.checked_sub(head.len()).expect("original layer too small");
    // stored (level 0) members grow one byte per byte of input, except at block boundaries
    let member = |n: usize| gz(&vec![0u8; n], 0);
    let mut n = want;
    let mut pad = member(n);
    for _ in 0..20 {
        if pad.len() == want {
            break;
        }
        n = (n + want).saturating_sub(pad.len());
        pad = member(n);
    }
    if pad.len() != want {
        pad = (n.saturating_sub(64)..n + 64)
            .map(member)
            .find(|m| m.len() == want)
            .expect("no zero-padding member of the needed size");
    }
    let out = [head, pad].concat();
    assert_eq!(out.len(), size);
    out
}

#[test]
fn errors() {
    if !common::need_tools("errors", IMAGE_TOOLS) {
        return;
    }
    let mut sb = Sandbox::new("errors");
    sb.start_registry(None);
    let (_, good) = push_standard(&sb);
    let bad_layout = sb.path("bad-layout");
    images::small_image(&bad_layout, "latest", 7);
    sb.push_layout(&bad_layout, "latest", "bad:latest");
    let (_, bad_layers) = manifest_digests(&sb.skopeo_inspect("bad:latest", true));
    sb.start_berthd();

    // a tag the registry does not have
    let out = sb.berth(&["pull", &sb.image("test:missing")]);
    assert!(!out.ok(), "pull of a missing tag succeeded: {out}");
    let t = out.text_lc();
    assert!(
        t.contains("not found") || t.contains("manifest unknown"),
        "pull of a missing tag should say not found / manifest unknown: {out}"
    );
    let out = sb.berth(&["pull", &sb.image("nosuchrepo:latest")]);
    assert!(!out.ok(), "pull of a missing repository succeeded: {out}");

    sb.berth_ok(&["pull", &good]);
    let list = ["images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
    let images_before = sb.berth_ok(&list);
    let data = sb.daemon().data.clone();
    let before = data_inventory(&data);
    let bad = sb.image("bad:latest");
    let blob = sb.registry_blob(&bad_layers[0]);
    let orig = fs::read(&blob).unwrap();

    // (a) the bad image's layer, changed on the registry's disk: same size, bytes flipped
    let mut flipped = orig.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 64] {
        *b = !*b;
    }
    // (b) a well-formed layer of the same size with other content: only the digests tell
    let substitute = same_size_layer(orig.len());
    let (bad_config, _) = manifest_digests(&sb.skopeo_inspect("bad:latest", true));
    let bad_manifest = sb.skopeo_inspect("bad:latest", false)["Digest"].as_str().unwrap_or_default().to_string();
    let label = |p: &PathBuf| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let what = if bad_manifest.ends_with(&name) {
            " (the bad image's manifest)"
        } else if bad_config.ends_with(&name) {
            " (the bad image's config)"
        } else if bad_layers[0].ends_with(&name) {
            " (the corrupted layer!)"
        } else {
            ""
        };
        format!("{}{what}", p.display())
    };
    let mut problems = Vec::new();
    for (case, bytes) in [("flipped bytes", flipped), ("substituted layer", substitute)] {
        fs::write(&blob, &bytes).unwrap();
        let out = sb.berth(&["pull", &bad]);
        eprintln!("corrupted layer ({case}): berth pull: {}: {}", out.status, out.stderr.trim());
        if out.ok() {
            problems.push(format!("{case}: pull succeeded: {out}"));
        }
        sb.assert_daemon_alive(&format!("a corrupted pull ({case})"));
        let now = sb.berth_ok(&list);
        if now != images_before {
            problems.push(format!("{case}: `berth images` changed:\nbefore:\n{images_before}after:\n{now}"));
        }
        if sb.berth(&["image", "inspect", &bad]).ok() {
            problems.push(format!("{case}: {bad} exists after the failed pull"));
        }
        // cleanup may trail the error by a moment
        let mut extra = Vec::new();
        for _ in 0..50 {
            extra = data_inventory(&data).difference(&before).cloned().collect::<Vec<_>>();
            if extra.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if !extra.is_empty() {
            let extra: Vec<String> = extra.iter().map(label).collect();
            problems.push(format!("{case}: left behind in the data root:\n  {}", extra.join("\n  ")));
        }
    }
    assert!(problems.is_empty(), "corrupted pulls:\n{}", problems.join("\n"));

    // the registry fixed: the same pull now works (nothing poisoned was kept)
    fs::write(&blob, &orig).unwrap();
    sb.berth_ok(&["pull", &bad]);
    let mnt = sb.berth_ok(&["image", "mount", &bad]).trim().to_string();
    let noise = fs::read(Path::new(&mnt).join("blob/noise"));
    sb.berth_ok(&["image", "unmount", &bad]);
    assert!(noise.expect("blob/noise in the re-pulled image") == images::noise(2 << 20, 7));
}

/// Names that only an escaped write could have made, outside the snapshot trees.
fn escapes(sb: &Sandbox, nonce: &str, data: &Path) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    // places a path resolved against /, the daemon's cwd or a parent of the data root lands
    let mut shallow: Vec<PathBuf> = vec!["/".into(), "/tmp".into(), std::env::current_dir().unwrap()];
    let mut p = data.to_path_buf();
    while let Some(parent) = p.parent() {
        shallow.push(parent.to_path_buf());
        p = parent.to_path_buf();
    }
    for d in shallow {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(nonce) {
                hits.push(e.path());
            }
        }
    }
    // everything in the sandbox; under the data root only inside snapshots/<id>/fs
    let mut stack = vec![sb.root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(data) {
                let c: Vec<_> = rel.components().collect();
                if c.len() >= 3 && c[0].as_os_str() == "snapshots" && c[2].as_os_str() == "fs" {
                    continue;
                }
            }
            if e.file_name().to_string_lossy().contains(nonce) {
                hits.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    hits.sort();
    hits.dedup();
    hits
}

#[derive(Debug, PartialEq)]
struct SentinelState {
    names: Vec<String>,
    dir_mode: u32,
    keep: Vec<u8>,
    keep_mode: u32,
    keep_nlink: u64,
    keep_mtime: i64,
}

fn sentinel_state(dir: &Path) -> SentinelState {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let keep = dir.join("keep");
    let md = fs::symlink_metadata(&keep).ok();
    SentinelState {
        names,
        dir_mode: fs::symlink_metadata(dir).unwrap().mode(),
        keep: fs::read(&keep).unwrap_or_default(),
        keep_mode: md.as_ref().map_or(0, |m| m.mode()),
        keep_nlink: md.as_ref().map_or(0, |m| m.nlink()),
        keep_mtime: md.as_ref().map_or(0, |m| m.mtime()),
    }
}

#[test]
fn malicious_layers() {
    if !common::need_tools("malicious_layers", &["skopeo"]) {
        return;
    }
    let mut sb = Sandbox::new("malicious");
    sb.start_registry(None);
    let sentinel = sb.path("s");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), b"precious\n").unwrap();
    let s = sentinel.to_string_lossy().into_owned();
    let s_rel = s.trim_start_matches('/').to_string();
    let up = "../".repeat(12);
    let nonce = format!("{:x}", std::process::id() as u64 * 7919 + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64);
    let n = |what: &str| format!("{what}-{nonce}");

    // each attack its own image, so a pull that stops at the first bad entry still meets all
    let base = {
        let mut t = RawTar::new();
        t.dir("etc/", 0o755).file("etc/base", b"base\n");
        t.finish()
    };
    let mut attacks: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    let mut t = RawTar::new();
    t.file(&format!("../{}", n("escape")), b"PWNED\n")
        .file(&format!("{up}{s_rel}/{}", n("escape")), b"PWNED\n")
        .file(&format!("etc/../../{}", n("escape")), b"PWNED\n");
    attacks.push(("dotdot", vec![base.clone(), t.finish()]));
    let mut t = RawTar::new();
    t.file(&format!("/{}", n("abs")), b"PWNED\n").file(&format!("{s}/{}", n("abs")), b"PWNED\n");
    attacks.push(("absolute", vec![base.clone(), t.finish()]));
    let mut t = RawTar::new();
    t.symlink("evil", &s)
        .file(&format!("evil/{}", n("pwned")), b"PWNED\n")
        .symlink("evil2", &format!("{up}{s_rel}"))
        .file(&format!("evil2/{}", n("pwned")), b"PWNED\n")
        .file("evil/keep", b"PWNED\n");
    attacks.push(("symlink-then-file", vec![base.clone(), t.finish()]));
    let mut t1 = RawTar::new();
    t1.symlink("evil", &s).symlink("etc2", &s);
    let mut t2 = RawTar::new();
    t2.file(&format!("evil/{}", n("pwned")), b"PWNED\n")
        .dir("etc2/", 0o777)
        .file(&format!("etc2/{}", n("pwned")), b"PWNED\n");
    attacks.push(("symlink-across-layers", vec![base.clone(), t1.finish(), t2.finish()]));
    let mut t = RawTar::new();
    t.symlink("evil3", &s).dir("evil3/", 0o777).file(&format!("evil3/{}", n("pwned")), b"PWNED\n");
    attacks.push(("symlink-then-dir", vec![base.clone(), t.finish()]));
    let mut t = RawTar::new();
    t.hardlink(&n("hl"), &format!("{s}/keep"))
        .file(&n("hl"), b"PWNED\n")
        .hardlink(&n("hl2"), &format!("{up}{s_rel}/keep"))
        .file(&n("hl2"), b"PWNED\n");
    attacks.push(("hardlink-to-host", vec![base.clone(), t.finish()]));
    let mut t = RawTar::new();
    t.symlink("dl", &s).hardlink(&n("hl3"), "dl/keep").file(&n("hl3"), b"PWNED\n");
    attacks.push(("hardlink-via-symlink", vec![base.clone(), t.finish()]));

    for (i, (_, layers)) in attacks.iter().enumerate() {
        let layout = sb.path(&format!("evil-layout-{i}"));
        common::oci::write_layout(&layout, "latest", layers);
        sb.push_layout(&layout, "latest", &format!("evil{i}:latest"));
    }
    sb.start_berthd();
    let data = sb.daemon().data.clone();
    let clean = sentinel_state(&sentinel);
    let mut report = Vec::new();
    let mut pulled = Vec::new();
    for (i, (name, _)) in attacks.iter().enumerate() {
        let img = sb.image(&format!("evil{i}:latest"));
        let out = sb.berth(&["pull", &img]);
        report.push(format!(
            "{name}: pull {}{}",
            if out.ok() { "succeeded" } else { "failed: " },
            if out.ok() { String::new() } else { out.stderr.trim().lines().last().unwrap_or("").to_string() }
        ));
        if out.ok() {
            pulled.push(img);
        }
        sb.assert_daemon_alive(&format!("pulling the {name} image"));
        assert_eq!(sentinel_state(&sentinel), clean, "the {name} image changed the host dir {s}");
        let hits = escapes(&sb, &nonce, &data);
        assert!(hits.is_empty(), "the {name} image wrote outside its snapshot: {hits:#?}");
    }
    // removing what was pulled must not follow the symlinks either
    for img in &pulled {
        let out = sb.berth(&["rmi", img]);
        report.push(format!("rmi {img}: {}", if out.ok() { "ok" } else { "failed" }));
    }
    let _ = sb.berth(&["image", "prune", "-a", "-f"]);
    sb.assert_daemon_alive("removing the images");
    assert_eq!(sentinel_state(&sentinel), clean, "removing the images changed the host dir {s}");
    eprintln!("malicious_layers:\n  {}", report.join("\n  "));
}
