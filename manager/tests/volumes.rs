//! Black-box tests of berthd's volumes, driven by the real docker CLI over berthd's socket:
//! named volumes outliving their containers (also a berthd kill -9), Docker's copy-up,
//! anonymous volumes and `rm -v`, in-use refusals, tmpfs volumes, ls filters and prune.
//! Needs root.
//!
//!   cargo test -p berth-manager --test volumes -- --test-threads=2

mod common;

use common::containers::{docker_bin, Docker};
use common::Sandbox;

fn sandbox(name: &str) -> Option<Sandbox> {
    let docker = docker_bin();
    if !common::need_tools(name, &["umoci", "skopeo", "docker-registry", "/bin/busybox", &docker]) {
        return None;
    }
    let mut sb = Sandbox::new(name);
    sb.start_registry(None);
    sb.start_berthd();
    Some(sb)
}

fn names(d: &Docker, args: &[&str]) -> Vec<String> {
    let mut a = vec!["volume", "ls", "-q"];
    a.extend(args);
    d.ok(&a).split_whitespace().map(str::to_string).collect()
}

#[test]
fn named_and_anonymous_volumes() {
    let Some(sb) = sandbox("volnamed") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);

    // A named volume keeps its data across containers; ownership and modes survive.
    d.ok(&["volume", "create", "--label", "app=db", "dbdata"]);
    d.ok(&["run", "--rm", "-v", "dbdata:/var/lib/db", &img, "sh", "-c", "echo row1 > /var/lib/db/t && chown 65534:65534 /var/lib/db/t && chmod 640 /var/lib/db/t"]);
    let out = d.ok(&["run", "--rm", "-v", "dbdata:/data:ro", &img, "sh", "-c", "cat /data/t; stat -c '%u:%g %a' /data/t; touch /data/x 2>&1 || echo READONLY"]);
    assert!(out.contains("row1") && out.contains("65534:65534 640") && out.contains("READONLY"), "{out}");
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}} {{.Driver}} {{.Labels.app}}", "dbdata"]);
    assert!(mp.trim().ends_with("/dbdata/_data local db"), "{mp}");

    // Copy-up: an empty volume over an image directory starts with that directory's content.
    let out = d.ok(&["run", "--rm", "-v", "etccopy:/etc", &img, "cat", "/etc/passwd"]);
    assert!(out.contains("root:x:0:0"), "{out}");
    let out = d.ok(&["run", "--rm", "-v", "etccopy:/mnt", &img, "cat", "/mnt/group"]);
    assert!(out.contains("root:x:0:"), "the volume kept the copied content: {out}");
    // nocopy skips it.
    let out = d.ok(&["run", "--rm", "--mount", "type=volume,source=empty,target=/etc,volume-nocopy", &img, "ls", "-A", "/etc"]);
    assert!(!out.contains("passwd"), "nocopy: {out}");

    // In use: refused while any container refers to it, running or not.
    d.ok(&["create", "--name", "holder", "-v", "dbdata:/d", &img, "true"]);
    let o = d.run(&["volume", "rm", "dbdata"]);
    assert!(!o.ok() && o.stderr.contains("volume is in use"), "{o}");
    assert!(names(&d, &["--filter", "dangling=false"]).contains(&"dbdata".to_string()));

    // Anonymous volumes (`-v /path` is a VOLUME): in Mounts, removed by rm -v, named never.
    d.ok(&["run", "--name", "anon", "-v", "/scratch", "-v", "dbdata:/named", &img, "sh", "-c", "echo a > /scratch/f"]);
    let anon = d.inspect("anon", "{{range .Mounts}}{{if eq .Destination \"/scratch\"}}{{.Name}}{{end}}{{end}}");
    assert_eq!(anon.len(), 64, "an anonymous volume's name is a 64-hex id: {anon:?}");
    assert_eq!(d.inspect("anon", "{{range .Mounts}}{{if eq .Destination \"/scratch\"}}{{.Type}}{{end}}{{end}}"), "volume");
    assert!(names(&d, &[]).contains(&anon));
    d.ok(&["rm", "-v", "anon", "holder"]);
    let left = names(&d, &[]);
    assert!(!left.contains(&anon), "rm -v left the anonymous volume: {left:?}");
    assert!(left.contains(&"dbdata".to_string()), "rm -v removed a named volume: {left:?}");

    // A tmpfs volume is mounted as one.
    d.ok(&["volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=2m", "scratchfs"]);
    let out = d.ok(&["run", "--rm", "-v", "scratchfs:/t", &img, "sh", "-c", "grep ' /t ' /proc/mounts"]);
    assert!(out.contains("tmpfs") && out.contains("size=2048k"), "{out}");

    // Bad input: a clear error, nothing made.
    let o = d.run(&["volume", "create", "bad/name"]);
    assert!(!o.ok() && o.stderr.contains("invalid characters"), "{o}");
    let o = d.run(&["volume", "create", "-d", "nfs-plugin", "v2"]);
    assert!(!o.ok(), "{o}");
    assert!(!names(&d, &[]).contains(&"v2".to_string()));

    // prune: anonymous ones only by default; -a takes every unused one.
    d.ok(&["run", "--name", "anon2", "-v", "/s2", &img, "true"]);
    let anon2 = d.inspect("anon2", "{{range .Mounts}}{{.Name}}{{end}}");
    d.ok(&["rm", "anon2"]);
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&anon2) && !out.contains("dbdata"), "{out}");
    let out = d.ok(&["volume", "prune", "-af"]);
    assert!(out.contains("dbdata") && out.contains("scratchfs"), "{out}");
    assert!(names(&d, &[]).is_empty(), "{:?}", names(&d, &[]));
    d.finish();
}

#[test]
fn volume_data_survives_kill9() {
    let Some(mut sb) = sandbox("volkill") else { return };
    let img;
    {
        let d = Docker::new(&sb);
        img = d.busybox(&sb);
        d.ok(&["run", "-d", "--name", "writer", "-v", "keep:/data", &img, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /data/n.tmp && mv /data/n.tmp /data/n; sleep 0.05; done"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
        std::mem::forget(d); // its clean-up would remove the container
    }
    sb.kill9_berthd();
    sb.start_berthd();
    let mut d = Docker::new(&sb);
    d.track(&d.inspect("writer", "{{.Id}}"));
    d.ok(&["stop", "-t", "1", "writer"]);
    d.ok(&["rm", "writer"]);
    let out = d.ok(&["run", "--rm", "-v", "keep:/data", &img, "cat", "/data/n"]);
    let n: u64 = out.trim().parse().unwrap_or_else(|_| panic!("the volume's data is gone: {out:?}"));
    assert!(n > 3, "{n}");
    assert_eq!(names(&d, &[]), vec!["keep".to_string()]);
    d.finish();
}

/// diff, commit (then run and push the committed image), export: the container's changes
/// in and out, with the docker CLI.
#[test]
fn diff_commit_export() {
    let Some(sb) = sandbox("volcommit") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);
    d.ok(&["run", "--name", "c1", &img, "sh", "-c", "echo hi > /new.txt; rm /etc/group; mkdir -p /d; echo x > /d/f"]);
    let diff = d.ok(&["diff", "c1"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in ["C /etc", "D /etc/group", "A /new.txt", "A /d", "A /d/f"] {
        assert!(lines.contains(&want), "diff lacks {want:?}: {diff}");
    }
    assert!(!diff.contains("/proc") && !diff.contains("/etc/hosts"), "mount points are no change: {diff}");

    let repo = sb.image("committed");
    let id = d.ok(&["commit", "-m", "a message", "-a", "me", "-c", "CMD [\"cat\", \"/new.txt\"]", "-c", "ENV X=1", "c1", &format!("{repo}:v1")]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", &format!("{repo}:v1")]).trim(), "hi");
    let out = d.ok(&["run", "--rm", &format!("{repo}:v1"), "sh", "-c", "cat /etc/group 2>/dev/null || echo NOGROUP; echo X=$X; cat /d/f"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["NOGROUP", "X=1", "x"], "{out}");
    assert_eq!(d.inspect(&format!("{repo}:v1"), "{{.Comment}}|{{.Author}}|{{len .RootFS.Layers}}"), "a message|me|2");
    // It pushes and pulls back like any image.
    d.ok(&["push", &format!("{repo}:v1")]);
    d.ok(&["rmi", &format!("{repo}:v1")]);
    d.ok(&["pull", &format!("{repo}:v1")]);
    assert_eq!(d.ok(&["run", "--rm", &format!("{repo}:v1")]).trim(), "hi");

    // export of a stopped and of a running container.
    let tar_of = |name: &str| {
        let path = sb.path(&format!("{name}.tar"));
        d.ok(&["export", "-o", path.to_str().unwrap(), name]);
        let out = common::run_ok(&mut common::cmd("tar", &["-tf", path.to_str().unwrap()]));
        out.stdout
    };
    let list = tar_of("c1");
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "new.txt"), "export lacks new.txt");
    assert!(list.lines().any(|l| l.trim_start_matches("./") == "bin/busybox"), "export lacks the image's files");
    assert!(!list.lines().any(|l| l.trim_start_matches("./") == "etc/group"), "export has a deleted file");
    // import of that export: a one-layer image with the container's files, that runs.
    let exported = sb.path("c1.tar");
    let o = d.run_stdin(&["import", "-c", "CMD [\"cat\", \"/new.txt\"]", "-", "imported:c1"], &std::fs::read(&exported).unwrap());
    assert!(o.ok(), "{o}");
    assert_eq!(d.inspect("imported:c1", "{{len .RootFS.Layers}}"), "1");
    assert_eq!(d.ok(&["run", "--rm", "imported:c1"]).trim(), "hi", "the imported image runs its CMD");
    let o = d.run(&["run", "--rm", "imported:c1", "cat", "/etc/group"]);
    assert!(!o.ok(), "the deleted file stays deleted in the import: {o}");
    d.ok(&["run", "-d", "--name", "c2", &img, "sh", "-c", "echo live > /live.txt; sleep 60"]);
    assert!(common::containers::poll(std::time::Duration::from_secs(5), || tar_of("c2").lines().any(|l| l.trim_start_matches("./") == "live.txt").then_some(())).is_some());
    d.finish();
}

/// `docker cp` both ways through the archive API: files, directories, stdout tar, a stopped
/// container, into a volume of a running one, and a hostile container whose links point at
/// host paths: cp stays inside the container.
#[test]
fn cp_both_ways_and_contained() {
    let Some(sb) = sandbox("volcp") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let host = sb.path("hostside");
    std::fs::create_dir_all(host.join("dir/sub")).unwrap();
    std::fs::write(host.join("hello.txt"), "from the host\n").unwrap();
    std::fs::write(host.join("dir/sub/f"), "nested\n").unwrap();
    let secret = sb.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("sentinel"), "host only\n").unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();

    // A running container, with links at host paths and a volume.
    let links = format!("ln -s {0} /evil; ln -s {0}/sentinel /evil-file; exec sleep 600", secret.display());
    d.ok(&["run", "-d", "--name", "cc", "-v", "cpvol:/data", &img, "sh", "-c", &links]);
    d.ok(&["cp", &h("hello.txt"), "cc:/tmp/"]);
    d.ok(&["cp", &h("dir"), "cc:/tmp/dir"]);
    d.ok(&["cp", &h("hello.txt"), "cc:/data/"]);
    let out = d.ok(&["exec", "cc", "sh", "-c", "cat /tmp/hello.txt /tmp/dir/sub/f /data/hello.txt"]);
    assert_eq!(out, "from the host\nnested\nfrom the host\n");
    let out = d.ok(&["run", "--rm", "-v", "cpvol:/v", &img, "cat", "/v/hello.txt"]);
    assert_eq!(out, "from the host\n", "cp into a running container's volume");
    // Out: a directory and a file; `-` is a tar on stdout.
    d.ok(&["cp", "cc:/etc", &h("out")]);
    assert!(std::fs::read_to_string(host.join("out/passwd")).unwrap().contains("root:x:0:0"));
    let tar = d.ok(&["cp", "cc:/etc/group", "-"]);
    assert!(tar.contains("group") && tar.contains("root:x:0:"), "tar on stdout");
    // Hostile links resolve inside the container: nothing of the host is read or written.
    // A link is copied as the link itself (docker cp without -L), never as what it points at.
    let o = d.run(&["cp", "cc:/evil-file", &h("stolen")]);
    if let Ok(md) = std::fs::symlink_metadata(host.join("stolen")) {
        assert!(md.file_type().is_symlink(), "cp read the host through a link: {o}");
    }
    let o = d.run(&["cp", "cc:/evil/sentinel", &h("stolen2")]);
    assert!(!o.ok() && !host.join("stolen2").exists(), "a link at a host directory was followed: {o}");
    let _ = d.run(&["cp", &h("hello.txt"), "cc:/evil/"]);
    let _ = d.run(&["cp", &h("hello.txt"), "cc:/evil/injected"]);
    let names: Vec<String> = std::fs::read_dir(&secret).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["sentinel"], "cp wrote to the host through a link");
    assert_eq!(std::fs::read_to_string(secret.join("sentinel")).unwrap(), "host only\n");
    // The berth CLI speaks the same archive API.
    sb.berth_ok(&["cp", &h("dir"), "cc:/tmp/viaberth"]);
    sb.berth_ok(&["cp", "cc:/tmp/viaberth/sub/f", &h("viaberth.txt")]);
    assert_eq!(std::fs::read_to_string(host.join("viaberth.txt")).unwrap(), "nested\n");
    let o = sb.berth(&["cp", "cc:/no/such", &h("x")]);
    assert!(!o.ok() && o.stderr.contains("No such container:path"), "{o}");
    // A missing path: docker's error.
    let o = d.run(&["cp", "cc:/no/such", &h("x")]);
    assert!(!o.ok() && o.stderr.contains("Could not find the file"), "{o}");

    // A stopped (never started) container.
    d.ok(&["create", "--name", "ss", &img, "cat", "/hello.txt"]);
    d.ok(&["cp", &h("hello.txt"), "ss:/"]);
    let out = d.ok(&["start", "-a", "ss"]);
    assert_eq!(out, "from the host\n");
    d.ok(&["cp", "ss:/hello.txt", &h("back.txt")]);
    assert_eq!(std::fs::read_to_string(host.join("back.txt")).unwrap(), "from the host\n");
    // -a (copyUIDGID): what lands is owned by the container's user.
    d.ok(&["create", "--name", "nobody", "--user", "65534:65534", &img, "true"]);
    d.ok(&["cp", "-a", &h("hello.txt"), "nobody:/tmp/"]);
    d.ok(&["cp", &h("hello.txt"), "nobody:/"]);
    let tar = d.ok(&["cp", "nobody:/tmp/hello.txt", "-"]);
    let mut a = tar::Archive::new(tar.as_bytes());
    let e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!((e.header().uid().unwrap(), e.header().gid().unwrap()), (65534, 65534), "cp -a chowns to the container's user");
    d.finish();
}

/// A Debian rootfs with redis-server (debootstrap --variant=minbase --include=redis-server),
/// made once and kept under /var/cache/berth-test (the mirror: BERTH_TEST_MIRROR, default
/// deb.debian.org).
fn redis_rootfs() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from("/var/cache/berth-test/redis-bookworm");
    let done = dir.with_extension("done");
    if done.exists() {
        return dir;
    }
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let mirror = std::env::var("BERTH_TEST_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let out = common::run_timeout(
        &mut common::cmd("debootstrap", &["--variant=minbase", "--include=redis-server", "bookworm", tmp.to_str().unwrap(), &mirror]),
        std::time::Duration::from_secs(900),
    );
    assert!(out.ok(), "debootstrap failed: {out}");
    for e in std::fs::read_dir(tmp.join("var/cache/apt/archives")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "deb") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::rename(&tmp, &dir).unwrap();
    std::fs::write(&done, "").unwrap();
    dir
}

/// A real database server Debian packages (redis-server, in an image made by debootstrap and
/// `docker import`) keeps its data on a named volume: the container is killed and removed,
/// a new one on the same volume (at another path) has every write; berthd is killed with -9
/// while the server writes, and nothing is lost either.
#[test]
fn database_on_a_named_volume() {
    if !common::need_tools("voldb", &["debootstrap"]) {
        return;
    }
    let Some(mut sb) = sandbox("voldb") else { return };
    let mut d = Docker::new(&sb);
    let rootfs = redis_rootfs();
    let tarfile = sb.path("redis.tar");
    common::run_ok(&mut common::cmd("tar", &["-C", rootfs.to_str().unwrap(), "-cf", tarfile.to_str().unwrap(), "."]));
    d.ok(&["import", "-c", "CMD [\"redis-server\"]", tarfile.to_str().unwrap(), "debian-redis:12"]);
    std::fs::remove_file(&tarfile).unwrap();
    d.ok(&["volume", "create", "redisdata"]);
    let server = |d: &Docker, name: &str, dir: &str| {
        d.ok(&["run", "-d", "--name", name, "--network", "none", "-v", &format!("redisdata:{dir}"), "debian-redis:12",
            "redis-server", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--bind", "127.0.0.1", "--save", ""]);
        let up = common::containers::poll(std::time::Duration::from_secs(30), || {
            d.run(&["exec", name, "redis-cli", "ping"]).stdout.contains("PONG").then_some(())
        });
        assert!(up.is_some(), "redis did not answer in {name}: {}", d.run(&["logs", name]));
    };
    let cli = |d: &Docker, name: &str, args: &[&str]| -> String {
        let mut a = vec!["exec", name, "redis-cli"];
        a.extend(args);
        d.ok(&a).trim().to_string()
    };

    server(&d, "db1", "/var/lib/redis");
    assert_eq!(cli(&d, "db1", &["SET", "greeting", "hello from redis"]), "OK");
    cli(&d, "db1", &["RPUSH", "rows", "r1", "r2", "r3"]);
    d.ok(&["exec", "db1", "sh", "-c", "for i in $(seq 100); do redis-cli INCR counter >/dev/null; done"]);
    // SIGKILL, then the container is gone: only the volume holds the data.
    d.ok(&["rm", "-f", "db1"]);

    server(&d, "db2", "/data");
    assert_eq!(cli(&d, "db2", &["GET", "greeting"]), "hello from redis");
    assert_eq!(cli(&d, "db2", &["GET", "counter"]), "100");
    assert_eq!(cli(&d, "db2", &["LRANGE", "rows", "0", "-1"]), "r1\nr2\nr3");
    let files = d.ok(&["exec", "db2", "sh", "-c", "ls -R /data"]);
    assert!(files.contains("appendonly"), "the append-only file is on the volume: {files}");

    // berthd killed with -9 while the server runs and writes; then started again.
    d.ok(&["exec", "-d", "db2", "sh", "-c", "for i in $(seq 50); do redis-cli INCR counter >/dev/null; done"]);
    sb.kill9_berthd();
    sb.start_berthd();
    let done = common::containers::poll(std::time::Duration::from_secs(30), || (cli(&d, "db2", &["GET", "counter"]) == "150").then_some(()));
    assert!(done.is_some(), "the writes went on while berthd was away: counter={}", cli(&d, "db2", &["GET", "counter"]));
    d.ok(&["stop", "db2"]);
    d.ok(&["rm", "db2"]);
    server(&d, "db3", "/srv/db");
    assert_eq!(cli(&d, "db3", &["GET", "counter"]), "150", "nothing lost across the kill -9 and a graceful stop");
    d.finish();
    let o = d.run(&["volume", "rm", "redisdata"]);
    assert!(o.ok(), "{o}");
}
