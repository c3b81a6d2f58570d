//! Black-box tests of Dockerfile builds: the real docker CLI's classic builder
//! (`DOCKER_BUILDKIT=0 docker build`) and `berth build` against berthd, on a busybox base image
//! from the sandbox's registry. RUN steps run as real containers; the results run and push.
//! Needs root.
//!
//!   cargo test -p berth-manager --test builds -- --test-threads=2

mod common;

use common::containers::{docker_bin, Docker};
use common::Sandbox;
use std::fs;
use std::path::Path;

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

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// Steps answered from the cache, and steps in all, in a classic build's output.
fn cache_hits(out: &str) -> (usize, usize) {
    (out.matches(" ---> Using cache").count(), out.lines().filter(|l| l.starts_with("Step ")).count())
}

const TUTORIAL: &str = r#"# syntax=docker/dockerfile:1
# The shape of a typical tutorial Dockerfile.
ARG BASE
FROM ${BASE}
MAINTAINER Jane Doe <jane@example.com>
LABEL org.example.version="1.0" description="tutorial app"
ENV APP_HOME=/app \
    GREETING="hello world"
RUN mkdir -p /opt/tools && \
    # a comment inside a continuation
    echo "tools ready" > /opt/tools/stamp
ADD vendor.tar.gz /opt/
COPY src/ $APP_HOME/src/
WORKDIR $APP_HOME
RUN ["/bin/sh", "-c", "echo $GREETING > greeting.txt && ls src > listing.txt"]
EXPOSE 8080/tcp 9000
USER 65534
CMD ["sh", "-c", "cat /app/greeting.txt"]
"#;

#[test]
fn tutorial_build_cache_and_push() {
    let Some(sb) = sandbox("buildtut") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let ctx = sb.path("ctx");
    write(&ctx, "Dockerfile", TUTORIAL);
    write(&ctx, "src/main.sh", "echo main v1\n");
    write(&ctx, "src/lib/util.sh", "echo util\n");
    write(&ctx, "notes.log", "not for the image\n");
    write(&ctx, ".dockerignore", "*.log\n");
    // ADD unpacks a local tar.gz (made by the system's tar, not by berth).
    let vendor = sb.path("vendor");
    write(&vendor, "vendor/lib.txt", "vendored\n");
    common::run_ok(common::cmd("tar", &["-czf", ctx.join("vendor.tar.gz").to_str().unwrap(), "-C", vendor.to_str().unwrap(), "vendor"]).current_dir(&ctx));

    let arg = format!("BASE={img}");
    let out = d.ok(&["build", "-t", "tut:1", "--build-arg", &arg, ctx.to_str().unwrap()]);
    assert!(out.contains("Step 1/12 : FROM ${BASE}") && out.contains("Step 5/12 : RUN mkdir -p /opt/tools"), "{out}");
    assert!(out.contains("Successfully built") && out.contains("Successfully tagged tut:1"), "{out}");
    assert_eq!(cache_hits(&out), (0, 12), "{out}");
    let id = d.inspect("tut:1", "{{.Id}}");

    // The image runs as built.
    assert_eq!(d.ok(&["run", "--rm", "tut:1"]).trim(), "hello world");
    let files = d.ok(&["run", "--rm", "tut:1", "sh", "-c", "cat /opt/tools/stamp /opt/vendor/lib.txt /app/src/main.sh /app/src/lib/util.sh /app/listing.txt; pwd; id -u; stat -c '%u:%g %a' /app/src/main.sh; ls /app"]);
    for want in ["tools ready", "vendored", "echo main v1", "echo util", "lib\nmain.sh", "/app\n65534\n", "0:0 644"] {
        assert!(files.contains(want), "missing {want:?} in {files}");
    }
    assert!(!files.contains("notes.log") && !files.contains("Dockerfile"), "COPY src/ copied only src: {files}");
    assert_eq!(d.inspect("tut:1", "{{.Author}}"), "Jane Doe <jane@example.com>");
    assert_eq!(d.inspect("tut:1", "{{.Config.User}} {{.Config.WorkingDir}} {{index .Config.Labels \"description\"}}"), "65534 /app tutorial app");
    assert_eq!(d.inspect("tut:1", "{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}"), "8080/tcp 9000/tcp");
    let env = d.inspect("tut:1", "{{json .Config.Env}}");
    assert!(env.contains("APP_HOME=/app") && env.contains("GREETING=hello world"), "{env}");
    let hist = d.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "tut:1"]);
    assert!(hist.contains("#(nop)  ENV APP_HOME=/app GREETING=hello world") && hist.contains("/bin/sh -c mkdir -p /opt/tools"), "{hist}");
    assert!(hist.contains("#(nop) COPY dir:") && hist.contains("#(nop) ADD file:"), "{hist}");
    let ids = d.ok(&["history", "-q", "tut:1"]);
    assert_eq!(ids.lines().filter(|l| *l != "<missing>").count(), 12, "each step's image and the base show their IDs: {ids}");

    // Unchanged rebuild: every step from the cache, the same image.
    let out = d.ok(&["build", "-t", "tut:1", "--build-arg", &arg, ctx.to_str().unwrap()]);
    assert_eq!(cache_hits(&out), (11, 12), "{out}");
    assert_eq!(d.inspect("tut:1", "{{.Id}}"), id);
    // A file outside what COPY reads changes nothing; .dockerignore'd files neither.
    write(&ctx, "notes.log", "changed\n");
    let out = d.ok(&["build", "-q", "--build-arg", &arg, ctx.to_str().unwrap()]);
    assert_eq!(out.trim(), id, "quiet prints the ID only");

    // A changed COPY source: that step and the ones after it rebuild, none before.
    write(&ctx, "src/main.sh", "echo main v2\n");
    let out = d.ok(&["build", "-t", "tut:2", "--build-arg", &arg, ctx.to_str().unwrap()]);
    assert_eq!(cache_hits(&out), (5, 12), "the 5 steps up to ADD cached, the rest rebuilt: {out}");
    let step7 = out.split("Step 7/12").nth(1).unwrap_or("");
    assert!(!step7.split("Step 8/12").next().unwrap_or("").contains("Using cache"), "the COPY step rebuilt: {out}");
    assert_ne!(d.inspect("tut:2", "{{.Id}}"), id);
    assert!(d.ok(&["run", "--rm", "tut:2", "cat", "/app/src/main.sh"]).contains("main v2"));
    // A build arg no ARG declares is reported.
    let out = d.ok(&["build", "--build-arg", &arg, "--build-arg", "UNUSED=1", ctx.to_str().unwrap()]);
    assert!(out.contains("[Warning] One or more build-args [UNUSED] were not consumed"), "{out}");

    // Built images push and pull like any other.
    let remote = sb.image("tut:pushed");
    d.ok(&["tag", "tut:2", &remote]);
    d.ok(&["push", &remote]);
    d.ok(&["rmi", &remote, "tut:2"]);
    d.ok(&["pull", &remote]);
    assert_eq!(d.ok(&["run", "--rm", &remote]).trim(), "hello world");

    // Build steps are hidden from `images`, shown with -a.
    let shown = d.ok(&["images", "-q"]).lines().count();
    let all = d.ok(&["images", "-aq"]).lines().count();
    assert!(all > shown + 5, "intermediate images: {shown} shown, {all} with -a");
    d.finish();
}

#[test]
fn multistage_ignore_errors_and_restart() {
    let Some(mut sb) = sandbox("buildms") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);
    let ctx = sb.path("ctx");
    write(&ctx, "Dockerfile", &format!(
        "FROM --platform=linux/amd64 {img} AS build\nARG FLAVOR=plain\nRUN mkdir /out && echo \"compiled $FLAVOR\" > /out/artifact && echo y > /out/extra\n\
         FROM {img}\nCOPY --from=build /out/artifact /usr/local/share/\nCOPY --from=0 /out /copied\nCOPY --chown=65534:65534 --chmod=600 keep/ /kept/\n\
         COPY *.txt /globbed/\nCMD [\"cat\", \"/usr/local/share/artifact\"]\n"));
    write(&ctx, "a.txt", "a\n");
    write(&ctx, "b.txt", "b\n");
    write(&ctx, "keep/public.txt", "public\n");
    write(&ctx, "keep/secret.key", "secret\n");
    write(&ctx, "keep/sub/x.txt", "x\n");
    write(&ctx, ".dockerignore", "# keys stay out\n**/*.key\nb.txt\n");
    let c = ctx.to_str().unwrap();
    let out = d.ok(&["build", "-t", "ms:1", "--build-arg", "FLAVOR=fancy", c]);
    assert!(out.contains("Successfully tagged ms:1"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "ms:1"]).trim(), "compiled fancy");
    let files = d.ok(&["run", "--rm", "ms:1", "sh", "-c", "ls /copied /globbed /kept; stat -c '%u:%g %a %n' /kept/public.txt"]);
    assert!(files.contains("artifact\nextra") && files.contains("a.txt") && !files.contains("b.txt"), "{files}");
    assert!(files.contains("public.txt") && !files.contains("secret.key") && files.contains("65534:65534 600 /kept/public.txt"), "{files}");
    // The berth CLI builds the same context: its own tar of the directory, .dockerignore
    // applied, the classic stream rendered; -q prints the ID, --iidfile keeps it.
    let iid = sb.path("iid");
    let out = sb.berth_ok(&["build", "-q", "--iidfile", iid.to_str().unwrap(), "-t", "ms:berth", "--build-arg", "FLAVOR=fancy", c]);
    assert_eq!(out.trim(), d.inspect("ms:1", "{{.Id}}"), "an unchanged context from the berth CLI hits the cache: {out}");
    assert_eq!(fs::read_to_string(&iid).unwrap().trim(), out.trim());
    let o = sb.berth(&["build", "-t", "x", &format!("{c}/no-such-dir")]);
    assert!(!o.ok() && o.stderr.contains("unable to prepare context"), "{o}");
    // --target stops at a stage.
    d.ok(&["build", "-t", "ms:build", "--target", "build", c]);
    assert!(d.ok(&["run", "--rm", "ms:build", "cat", "/out/artifact"]).contains("compiled plain"));

    // Bad input: a clear error, no image tagged, the cache intact.
    let images_before = d.ok(&["images", "-q"]);
    let bad = sb.path("bad");
    let cases: &[(&str, &str)] = &[
        ("FROM IMG\nRUN echo partial > /p && exit 3\n", "returned a non-zero code: 3"),
        ("FROM IMG\nFOO bar\n", "unknown instruction: FOO"),
        ("FROM IMG\nCOPY missing.txt /\n", "file not found in build context"),
        ("FROM IMG\nCOPY ../outside /\n", "outside the build context"),
        ("FROM IMG\nCOPY link /stolen\n", "file not found in build context"),
        ("RUN true\n", "FROM"),
        ("FROM --platform=bogus IMG\n", "invalid platform"),
        // A heredoc's name is a destination name, never a path berthd writes to.
        ("FROM IMG\nCOPY <</tmp/berth-heredoc-escape /x\nhi\n/tmp/berth-heredoc-escape\n", "heredoc"),
    ];
    std::os::unix::fs::symlink("/etc/shadow", bad.join("link")).ok();
    for (df, want) in cases {
        fs::create_dir_all(&bad).unwrap();
        let _ = std::os::unix::fs::symlink("/etc/shadow", bad.join("link"));
        write(&bad, "Dockerfile", &df.replace("IMG", &img));
        let o = d.run(&["build", "-t", "bad:1", bad.to_str().unwrap()]);
        assert!(!o.ok() && o.text_lc().contains(&want.to_lowercase()), "{df}: {o}");
        if want.contains("non-zero code: 3") {
            assert_eq!(o.status.code(), Some(3), "docker build exits with the failing RUN's code: {o}");
        }
    }
    assert!(!Path::new("/tmp/berth-heredoc-escape").exists(), "a heredoc name wrote to the host");
    let o = d.run(&["build", "--target", "nosuch", c]);
    assert!(!o.ok() && o.text_lc().contains("failed to reach build target nosuch"), "{o}");
    assert!(d.run(&["inspect", "bad:1"]).stderr.to_lowercase().contains("no such"), "a failed build tags nothing");
    assert_eq!(d.ok(&["images", "-q"]), images_before, "no half-made image");
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty(), "failed build containers are removed");

    // The cache survives a daemon restart.
    sb.stop_berthd();
    sb.start_berthd();
    let d2 = Docker::new(&sb);
    let out = d2.ok(&["build", "-t", "ms:1", "--build-arg", "FLAVOR=fancy", c]);
    assert_eq!(cache_hits(&out), (6, 9), "FROMs and ARG aside, every step cached: {out}");
    let o = d2.ok(&["build", "--no-cache", "-q", "--build-arg", "FLAVOR=fancy", c]);
    assert_ne!(o.trim(), d2.inspect("ms:1", "{{.Id}}"), "--no-cache builds anew");
    d.finish();
}

#[test]
fn instructions_scratch_heredoc_onbuild_and_stdin() {
    let Some(sb) = sandbox("buildins") else { return };
    let mut d = Docker::new(&sb);
    let img = d.busybox(&sb);
    // A file served over HTTP on loopback, for ADD URL (busybox httpd on the host).
    let www = sb.path("www");
    write(&www, "remote.txt", "from the web\n");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut httpd = std::process::Command::new("/bin/busybox").args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h", www.to_str().unwrap()]).spawn().unwrap();
    let ctx = sb.path("ctx");
    write(&ctx, "base.Dockerfile", &format!(
        "FROM {img}\nONBUILD RUN echo triggered > /onbuild.txt\nONBUILD ENV FROM_TRIGGER=yes\n"));
    d.ok(&["build", "-t", "trig:1", "-f", ctx.join("base.Dockerfile").to_str().unwrap(), ctx.to_str().unwrap()]);
    assert_eq!(d.inspect("trig:1", "{{json .Config.OnBuild}}"), r#"["RUN echo triggered > /onbuild.txt","ENV FROM_TRIGGER=yes"]"#);
    write(&ctx, "Dockerfile", &format!(concat!(
        "# escape=`\n",
        "FROM trig:1\n",
        "SHELL [\"/bin/sh\", \"-e\", \"-c\"]\n",
        "ARG WHO=world\n",
        "ENV DIR=/srv/${{WHO:-nobody}} EMPTY=\n",
        "ENV abc=hello\n",
        "ENV abc=bye def=$abc\n",
        "RUN <<EOF\n",
        "mkdir -p $DIR\n",
        "echo \"hello $WHO\" > $DIR/hello.txt\n",
        "EOF\n",
        "RUN cat > /script.sh <<'END' && chmod +x /script.sh\n",
        "echo \"literal $DIR\"\n",
        "END\n",
        "ADD http://127.0.0.1:{port}/remote.txt /downloaded/\n",
        "COPY <<EOF /etc/motd\n",
        "welcome\n",
        "EOF\n",
        "VOLUME /data\n",
        "VOLUME [\"/cache\"]\n",
        "STOPSIGNAL SIGINT\n",
        "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -f /onbuild.txt\n",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n",
        "CMD [\"cat $DIR/hello.txt /onbuild.txt /downloaded/remote.txt /etc/motd; cat /script.sh; echo $FROM_TRIGGER ${{EMPTY:+set}}${{EMPTY:-unset}}\"]\n",
        "WORKDIR `\n",
        "    /work/dir\n",
    ), port = port));
    let out = d.ok(&["build", "-t", "ins:1", "--build-arg", "WHO=berth", "--label", "built.by=test", ctx.to_str().unwrap()]);
    assert!(out.contains("# Executing 2 build triggers"), "{out}");
    let _ = httpd.kill();
    let _ = httpd.wait();
    let run = d.ok(&["run", "--rm", "ins:1"]);
    for want in ["hello berth", "triggered", "from the web", "welcome", "literal $DIR", "yes unset"] {
        assert!(run.contains(want), "missing {want:?}: {run}");
    }
    assert_eq!(d.ok(&["run", "--rm", "--entrypoint", "pwd", "ins:1"]).trim(), "/work/dir");
    assert_eq!(d.inspect("ins:1", "{{.Config.StopSignal}} {{json .Config.Shell}} {{index .Config.Labels \"built.by\"}}"), r#"SIGINT ["/bin/sh","-e","-c"] test"#);
    assert_eq!(d.inspect("ins:1", "{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}"), "/cache /data");
    assert_eq!(d.inspect("ins:1", "{{json .Config.Healthcheck}}"), r#"{"Test":["CMD-SHELL","test -f /onbuild.txt"],"Interval":5000000000,"Timeout":2000000000,"Retries":4}"#);
    assert_eq!(d.inspect("ins:1", "{{json .Config.OnBuild}}"), "null", "triggers run once, not inherited");
    let env = d.inspect("ins:1", "{{json .Config.Env}}");
    assert!(env.contains("\"abc=bye\"") && env.contains("\"def=hello\""), "one ENV's pairs see the values from before it: {env}");
    assert_eq!(d.ok(&["run", "--rm", "--entrypoint", "stat", "ins:1", "-c", "%a", "/downloaded/remote.txt"]).trim(), "600");

    // FROM scratch with a context sent on stdin as a tar.
    let sctx = sb.path("sctx");
    write(&sctx, "Dockerfile", "FROM scratch\nCOPY hello /\nCOPY bin /bin\nCMD [\"/bin/sh\", \"-c\", \"cat /hello\"]\n");
    write(&sctx, "hello", "from scratch\n");
    fs::create_dir_all(sctx.join("bin")).unwrap();
    fs::copy("/bin/busybox", sctx.join("bin/sh")).unwrap();
    fs::copy("/bin/busybox", sctx.join("bin/cat")).unwrap();
    let tarfile = sb.path("sctx.tar");
    common::run_ok(&mut common::cmd("tar", &["-C", sctx.to_str().unwrap(), "-cf", tarfile.to_str().unwrap(), "."]));
    let o = d.run_stdin(&["build", "-t", "scr:1", "-"], &fs::read(&tarfile).unwrap());
    assert!(o.ok(), "{o}");
    assert_eq!(d.ok(&["run", "--rm", "scr:1"]).trim(), "from scratch");
    assert_eq!(d.inspect("scr:1", "{{len .RootFS.Layers}}"), "2", "two COPY layers and nothing else");

    // Prune forgets the cache: the next build runs every step again.
    d.ok(&["builder", "prune", "-f"]);
    let out = d.ok(&["build", "-t", "scr:1", sctx.to_str().unwrap()]);
    assert_eq!(cache_hits(&out).0, 0, "{out}");
    d.finish();
}
