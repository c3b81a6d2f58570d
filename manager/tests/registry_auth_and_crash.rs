//! Black-box tests of berthd against a registry with token authentication, and of
//! berthd's recovery from `kill -9` in the middle of a pull. Needs root (overlay mounts,
//! umoci's device nodes).
//!
//!   cargo test -p berth-manager --test registry_auth_and_crash -- --test-threads=2
//!
//! The token server (common/token.rs) knows one user. Anonymous callers get tokens that
//! grant nothing (`access: []`), wrong passwords get 401, the user gets what the scope asks.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::token::{Outcome, TokenRequest};
use common::{cmd, images, json, run_ok, tree, Sandbox, IMAGE_TOOLS};

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

// ---------------------------------------------------------------------------
// token auth

/// `curl` a URL; returns the status and the response headers (names lower-cased).
fn curl(url: &str, extra: &[&str]) -> (u16, Vec<(String, String)>) {
    let mut c = cmd("curl", &["-s", "-o", "/dev/null", "-D", "-", "--max-time", "20"]);
    c.args(extra).arg(url);
    let out = run_ok(&mut c);
    let mut lines = out.stdout.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status from {url}: {out}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// A token from the token server, asked for with curl (optionally with credentials).
fn curl_token(realm: &str, scope: &str, creds: Option<(&str, &str)>) -> (u16, Option<String>) {
    let url = format!("{realm}?service={}&scope={scope}", common::token::SERVICE);
    let mut c = cmd("curl", &["-s", "--max-time", "20", "-w", "\n%{http_code}"]);
    if let Some((u, p)) = creds {
        c.args(["-u", &format!("{u}:{p}")]);
    }
    let out = run_ok(c.arg(&url));
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    let code: u16 = code.trim().parse().unwrap_or(0);
    let token = (code == 200).then(|| json(body)["token"].as_str().expect("token in the answer").to_string());
    (code, token)
}

/// The token server's requests from index `from` on.
fn requests_since(sb: &Sandbox, from: usize) -> Vec<TokenRequest> {
    sb.token.as_ref().unwrap().log().split_off(from)
}

fn n_requests(sb: &Sandbox) -> usize {
    sb.token.as_ref().unwrap().log().len()
}

/// The `auth` entry config.json holds for `reg`, decoded ("user:pass"), if any.
fn stored_auth(sb: &Sandbox, reg: &str) -> Option<String> {
    let doc = json(&fs::read_to_string(sb.path("cli/config.json")).ok()?);
    let a = doc["auths"][reg]["auth"].as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(a).ok()?).ok()
}

fn says_unauthorized(out: &common::Out) -> bool {
    let t = out.text_lc();
    ["unauthorized", "authentication required", "access denied", "berth login"].iter().any(|w| t.contains(w))
}

#[test]
fn token_auth_registry() {
    let mut tools = IMAGE_TOOLS.to_vec();
    tools.extend(["openssl", "curl"]);
    if !common::need_tools("token_auth_registry", &tools) {
        return;
    }
    let started = Instant::now();
    let (user, pass) = ("berthuser", "t0ken-S3cret");
    let mut sb = Sandbox::new("tokenauth");
    sb.start_registry_token((user, pass));
    let reg = sb.reg();
    let realm = sb.token.as_ref().unwrap().realm();

    // the images: the standard one, and a second one in the same repository (so the same
    // token scope) that berth pulls only after logout
    let layout = images::standard_image(&sb.path("layout"), "latest", &sb.path("work"));
    sb.push_layout(&layout, "latest", "test:latest");
    images::small_image(&sb.path("layout-other"), "other", 11);
    sb.push_layout(&sb.path("layout-other"), "other", "test:other");
    let pushed_by_skopeo = requests_since(&sb, 0);
    assert!(
        pushed_by_skopeo.iter().any(|r| matches!(&r.outcome, Outcome::Granted(a) if a.iter().any(|a| a.starts_with("repository:test:") && a.contains("push")))),
        "skopeo pushed without a push token? token requests: {pushed_by_skopeo:#?}"
    );

    // the registry really enforces token auth
    let manifest_url = format!("http://{reg}/v2/test/manifests/latest");
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let (st, h) = curl(&manifest_url, &["-H", accept]);
    let challenge = header(&h, "www-authenticate");
    assert_eq!(st, 401, "GET {manifest_url} without a token: {st}, headers {h:?}");
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!("realm=\"{realm}\""))
            && challenge.contains("service=\"berth-test\"")
            && challenge.contains("scope=\"repository:test:pull\""),
        "challenge: {challenge:?}"
    );
    let (code, anon) = curl_token(&realm, "repository:test:pull", None);
    assert_eq!(code, 200, "anonymous token request");
    let (st, _) = curl(&manifest_url, &["-H", accept, "-H", &format!("Authorization: Bearer {}", anon.unwrap())]);
    assert_eq!(st, 401, "the registry accepted an anonymous (access: []) token for a pull");
    let (code, good) = curl_token(&realm, "repository:test:pull", Some((user, pass)));
    assert_eq!(code, 200, "token request with the right password");
    let (st, h) = curl(&manifest_url, &["-H", accept, "-H", &format!("Authorization: Bearer {}", good.unwrap())]);
    assert_eq!(st, 200, "the registry refused the user's token: {h:?}\n{}", common::tail(&sb.registry.as_ref().unwrap().log, 10));
    let (code, _) = curl_token(&realm, "repository:test:pull", Some((user, "wrong")));
    assert_eq!(code, 401, "token request with a wrong password");

    let (config, layers) = manifest_digests(&sb.skopeo_inspect("test:latest", true));
    sb.start_berthd();
    let img = sb.image("test:latest");
    let other = sb.image("test:other");

    // no login: berthd asks for a token anonymously, gets one that grants nothing
    let mark = n_requests(&sb);
    let out = sb.berth(&["pull", &img]);
    assert!(!out.ok(), "pull without login succeeded: {out}");
    assert!(says_unauthorized(&out), "pull without login should say it needs a login: {out}");
    let asked = requests_since(&sb, mark);
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.outcome == Outcome::Anonymous),
        "berthd's token requests for a pull without login: {asked:#?}"
    );
    assert!(!sb.berth(&["image", "inspect", &img]).ok(), "{img} exists after a refused pull");

    let out = sb.berth_ok(&["login", "-u", user, "-p", pass, &reg]);
    assert!(out.to_lowercase().contains("login succeeded"), "login said: {out}");
    assert_eq!(stored_auth(&sb, &reg).as_deref(), Some(format!("{user}:{pass}").as_str()), "config.json after login");

    let mark = n_requests(&sb);
    sb.berth_ok(&["pull", &img]);
    assert_eq!(sb.image_id(&img), config, "image ID is not the config digest");
    let asked = requests_since(&sb, mark);
    assert!(
        asked.iter().any(|r| r.user.as_deref() == Some(user) && r.outcome == Outcome::Granted(vec!["repository:test:pull".into()])),
        "berthd's token requests for the pull after login: {asked:#?}"
    );

    // push to another repository: the token must grant pull,push there
    let pushed = sb.image("pushed/copy:v1");
    sb.berth_ok(&["tag", &img, &pushed]);
    let mark = n_requests(&sb);
    sb.berth_ok(&["push", &pushed]);
    let asked = requests_since(&sb, mark);
    assert!(
        asked.iter().any(|r| matches!(&r.outcome, Outcome::Granted(a) if a.iter().any(|a| a == "repository:pushed/copy:pull,push"))),
        "berthd's token requests for the push: {asked:#?}"
    );
    let (config2, layers2) = manifest_digests(&sb.skopeo_inspect("pushed/copy:v1", true));
    assert_eq!((config2, layers2), (config.clone(), layers.clone()), "what berth pushed to pushed/copy:v1");

    // a wrong password fails and leaves the stored login alone
    let out = sb.berth(&["login", "-u", user, "-p", "not-the-password", &reg]);
    assert!(!out.ok(), "login with a wrong password succeeded: {out}");
    let t = out.text_lc();
    assert!(t.contains("unauthorized") || t.contains("incorrect"), "a failed login should say why: {out}");
    assert_eq!(
        stored_auth(&sb, &reg).as_deref(),
        Some(format!("{user}:{pass}").as_str()),
        "config.json after a failed login"
    );

    // after logout, berthd must not answer with the token it cached for the user
    let out = sb.berth_ok(&["logout", &reg]);
    assert!(out.contains(&reg), "logout said: {out}");
    assert_eq!(stored_auth(&sb, &reg), None, "config.json still has credentials after logout");
    let mark = n_requests(&sb);
    let out = sb.berth(&["pull", &other]);
    let asked = requests_since(&sb, mark);
    assert!(!out.ok(), "pull of a not yet pulled image after logout succeeded (a cached token leaked?): {out}\ntoken requests: {asked:#?}");
    assert!(says_unauthorized(&out), "pull after logout should say it needs a login: {out}");
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.outcome == Outcome::Anonymous),
        "berthd's token requests for the pull after logout: {asked:#?}"
    );
    assert!(!sb.berth(&["image", "inspect", &other]).ok(), "{other} exists after a refused pull");
    // the image pulled while logged in is still there
    assert_eq!(sb.image_id(&img), config);

    let log = fs::read_to_string(&sb.daemon().log).unwrap_or_default();
    assert!(!log.contains(pass), "berthd's log contains the password");
    sb.assert_daemon_alive("the token auth test");
    eprintln!("token_auth_registry: {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// kill -9 during a pull

/// Sizes (MiB) of the noise files in each layer of the big image.
const BIG_LAYERS: [&[usize]; 4] = [&[6, 6, 6, 6], &[8, 8, 8, 8], &[7, 7, 7], &[7, 7, 7, 7]];

/// An image of four layers of pseudo-random files (about 105 MiB, all but incompressible),
/// made with umoci: layer 2 also deletes a file of layer 1 and layer 3 changes one.
fn big_image(layout: &Path, tag: &str, work: &Path) {
    let l = layout.to_string_lossy().into_owned();
    let image = format!("{l}:{tag}");
    let bundle = work.join("bundle");
    let b = bundle.to_string_lossy().into_owned();
    fs::create_dir_all(work).unwrap();
    run_ok(&mut cmd("umoci", &["init", "--layout", &l]));
    run_ok(&mut cmd("umoci", &["new", "--image", &image]));
    run_ok(&mut cmd("umoci", &["config", "--image", &image, "--config.cmd", "/bin/true"]));
    run_ok(&mut cmd("umoci", &["unpack", "--image", &image, &b]));
    let rootfs = bundle.join("rootfs");
    let mut seed = 1000;
    for (i, sizes) in BIG_LAYERS.iter().enumerate() {
        let dir = rootfs.join(format!("data/layer{i}"));
        fs::create_dir_all(&dir).unwrap();
        for (j, mib) in sizes.iter().enumerate() {
            seed += 1;
            fs::write(dir.join(format!("noise-{j}.bin")), images::noise(mib << 20, seed)).unwrap();
        }
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        match i {
            0 => fs::write(rootfs.join("etc/first"), b"layer 0\n").unwrap(),
            1 => fs::remove_file(rootfs.join("etc/first")).unwrap(),
            2 => fs::write(rootfs.join("data/layer1/noise-0.bin"), b"replaced in layer 2\n").unwrap(),
            _ => {}
        }
        fs::write(rootfs.join("etc/top"), format!("layer {i}\n")).unwrap();
        run_ok(&mut cmd(
            "umoci",
            &["repack", "--refresh-bundle", "--history.created_by", &format!("noise layer {i}"), "--image", &image, &b],
        ));
    }
    run_ok(&mut cmd("umoci", &["gc", "--layout", &l]));
    fs::remove_dir_all(&bundle).unwrap();
}

/// A command running in the background whose stdout lines arrive on a channel.
struct Bg {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Bg {
    fn spawn(mut c: Command) -> Bg {
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a background command");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Bg { child, lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    fn drain(&mut self) {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Waits until a line contains `pat`; false if the output ended or `timeout` passed.
    fn wait_for_line(&mut self, pat: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(l) => {
                    let hit = l.contains(pat);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the command to end; returns its status, stdout lines and stderr.
    fn finish(mut self, timeout: Duration) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let st = self.child.wait().unwrap();
                self.drain();
                panic!("background command still running {timeout:?} after berthd was killed ({st}); stdout:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // the reader thread ends with the pipe
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let err = self.stderr.take().unwrap().join().unwrap_or_default();
        (status, std::mem::take(&mut self.seen), err)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Names in a directory (empty if it does not exist).
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

struct Expect {
    /// `berth images` line of the complete image
    listed: String,
    /// every blob the image needs: manifest, config, layers
    blobs: BTreeSet<String>,
    layers: usize,
}

/// Checks that the data root holds the image completely or not at all, and nothing else.
/// Returns whether the image is there, and what is wrong.
fn check_state(sb: &Sandbox, img: &str, want: &Expect) -> (bool, Vec<String>) {
    let data = sb.daemon().data.clone();
    let mut problems = Vec::new();
    let listed = sb.berth_ok(&["images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let listed: Vec<&str> = listed.lines().filter(|l| !l.trim().is_empty()).collect();
    let present = match listed.as_slice() {
        [] => false,
        [one] if *one == want.listed => true,
        other => {
            problems.push(format!("`berth images` lists {other:?}, want nothing or [{:?}]", want.listed));
            true
        }
    };
    let inspect = sb.berth(&["image", "inspect", img]);
    if inspect.ok() != present {
        problems.push(format!("`berth images` says present={present}, `berth image inspect` says {}", inspect.ok()));
    }
    let ingest = names(&data.join("content/ingest"));
    if !ingest.is_empty() {
        problems.push(format!("content/ingest holds {ingest:?}"));
    }
    let tmp = names(&data.join("tmp"));
    if !tmp.is_empty() {
        problems.push(format!("tmp holds {tmp:?}"));
    }
    let snaps = names(&data.join("snapshots"));
    let odd: Vec<&String> = snaps.iter().filter(|n| n.parse::<u64>().is_err()).collect();
    if !odd.is_empty() {
        problems.push(format!("snapshots/ holds half-done or unknown entries {odd:?}"));
    }
    let blobs: BTreeSet<String> = names(&data.join("content/blobs/sha256")).into_iter().map(|h| format!("sha256:{h}")).collect();
    if present {
        if snaps.len() != want.layers {
            problems.push(format!("the image has {} layers, snapshots/ holds {snaps:?}", want.layers));
        }
        if blobs != want.blobs {
            let extra: Vec<_> = blobs.difference(&want.blobs).collect();
            let missing: Vec<_> = want.blobs.difference(&blobs).collect();
            problems.push(format!("blobs: extra {extra:?}, missing {missing:?}"));
        }
    } else {
        if !snaps.is_empty() {
            problems.push(format!("no image, but snapshots/ holds {snaps:?}"));
        }
        if !blobs.is_empty() {
            problems.push(format!("no image, but content/blobs holds {blobs:?}"));
        }
    }
    let mounts = common::mounts_under(&sb.root);
    if !mounts.is_empty() {
        problems.push(format!("mounts left: {mounts:?}"));
    }
    (present, problems)
}

/// `berth image mount` of `img` compared with umoci's unpack of the layout; unmounts.
fn compare_with_umoci(sb: &Sandbox, img: &str, want: &tree::Tree) -> Vec<String> {
    let mnt = PathBuf::from(sb.berth_ok(&["image", "mount", img]).trim());
    let got = tree::scan(&mnt);
    sb.berth_ok(&["image", "unmount", img]);
    let mut d = tree::diff(want, &got, "umoci unpack", "berth image mount");
    if common::mounts_under(&sb.root).contains(&mnt) {
        d.push(format!("{} still mounted after `berth image unmount`", mnt.display()));
    }
    d
}

#[derive(Clone, Copy, Debug)]
enum KillPoint {
    After(Duration),
    FirstPullComplete,
}

#[test]
fn kill9_during_pull_recovers() {
    if !common::need_tools("kill9_during_pull_recovers", &["umoci", "skopeo"]) {
        return;
    }
    let started = Instant::now();
    let mut sb = Sandbox::new("kill9");
    sb.start_registry(None);
    let layout = sb.path("layout");
    big_image(&layout, "latest", &sb.path("work"));
    sb.push_layout(&layout, "latest", "big:latest");
    let (config, layers) = manifest_digests(&sb.skopeo_inspect("big:latest", true));
    let manifest = sb.skopeo_inspect("big:latest", false)["Digest"].as_str().expect("manifest digest").to_string();
    let want = Expect {
        listed: format!("{}/big:latest {config}", sb.reg()),
        blobs: layers.iter().cloned().chain([config.clone(), manifest]).collect(),
        layers: layers.len(),
    };
    let reference = tree::scan(&images::umoci_unpack(&layout, "latest", &sb.path("bundle")));
    assert!(reference.get("etc/first").is_none() && reference.get("data/layer3/noise-3.bin").is_some(), "umoci's unpack");
    let img = sb.image("big:latest");
    eprintln!("kill9: image built and pushed in {:.1} s", started.elapsed().as_secs_f64());

    sb.start_berthd();
    let points = [
        KillPoint::After(Duration::from_millis(10)),
        KillPoint::After(Duration::from_millis(50)),
        KillPoint::After(Duration::from_millis(300)),
        KillPoint::After(Duration::from_secs(1)),
        KillPoint::FirstPullComplete,
    ];
    let mut problems = Vec::new();
    for point in points {
        let mut bg = Bg::spawn(sb.berth_cmd(&["pull", &img]));
        let t0 = Instant::now();
        match point {
            KillPoint::After(d) => {
                std::thread::sleep(d);
                bg.drain();
            }
            KillPoint::FirstPullComplete => {
                if !bg.wait_for_line("Pull complete", Duration::from_secs(180)) {
                    let (st, out, err) = bg.finish(Duration::from_secs(10));
                    panic!("no \"Pull complete\" line from `berth pull` ({st}):\n{}\n{err}", out.join("\n"));
                }
            }
        }
        let finished_first = bg.exited();
        sb.kill9_berthd();
        let at = t0.elapsed();
        let (status, lines, stderr) = bg.finish(Duration::from_secs(60));
        sb.start_berthd();
        let cleanup: Vec<String> =
            sb.berthd_log_since_start().lines().filter(|l| l.contains("cleaned up")).map(|l| l.trim().to_string()).collect();
        let (present, mut p) = check_state(&sb, &img, &want);
        let completes = lines.iter().filter(|l| l.contains("Pull complete")).count();
        eprintln!(
            "kill9 at {point:?} (after {} ms): pull {}, {completes} layer(s) complete, CLI {status}: {}; after restart: image {}; {}",
            at.as_millis(),
            if finished_first.is_some() { "had already finished" } else { "in flight" },
            stderr.trim().lines().last().unwrap_or(""),
            if present { "present" } else { "absent" },
            if cleanup.is_empty() { "nothing cleaned up".to_string() } else { cleanup.join("; ") },
        );
        if present {
            p.extend(compare_with_umoci(&sb, &img, &reference));
            sb.berth_ok(&["rmi", &img]);
            let (still, p2) = check_state(&sb, &img, &want);
            assert!(!still, "{img} still there after rmi");
            p.extend(p2.into_iter().map(|s| format!("after rmi: {s}")));
        }
        problems.extend(p.into_iter().map(|s| format!("kill at {point:?}: {s}")));
    }

    // a pull after all that works and gives the image's content
    sb.berth_ok(&["pull", &img]);
    let (present, p) = check_state(&sb, &img, &want);
    assert!(present, "{img} is not listed after a successful pull");
    problems.extend(p.into_iter().map(|s| format!("after the full pull: {s}")));
    let diffs = compare_with_umoci(&sb, &img, &reference);
    assert!(diffs.is_empty(), "{} differences after the full pull:\n{}", diffs.len(), diffs.join("\n"));

    // everything the store uses is the image's: once it is gone, nothing is left
    sb.berth_ok(&["rmi", &img]);
    sb.berth_ok(&["image", "prune", "-a", "-f"]);
    let data = sb.daemon().data.clone();
    for dir in ["content/blobs/sha256", "snapshots", "content/ingest"] {
        let left = names(&data.join(dir));
        if !left.is_empty() {
            problems.push(format!("after rmi and prune: {dir} holds {left:?}"));
        }
    }
    let mounts = common::mounts_under(&sb.root);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    sb.assert_daemon_alive("the kill -9 test");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    eprintln!("kill9_during_pull_recovers: {:.1} s", started.elapsed().as_secs_f64());
}
