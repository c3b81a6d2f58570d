# berth: build, test, conformance, bench, demo, install.
CARGO   ?= cargo
PREFIX  ?= /usr/local
RUNTIME ?= $(CURDIR)/target/release/berth-runtime
export RUNTIME
HOST    := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')

.PHONY: all deps build dist test unit conformance bench demo install clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	$(CARGO) build --release --workspace

# What `make install` ships and `make bench` measures: the release binaries, with the shim
# linked statically (glibc static-pie: no ld.so, libc or libgcc_s mapped into each of the
# hundreds of shims a host runs; 2.4 MB RSS against 3.4 MB dynamic). A target dir of its
# own, since crt-static must not reach build scripts and proc-macros.
dist: build
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p containerd-shim-berth-v2 --target $(HOST) --target-dir target/static
	mkdir -p target/dist
	cp target/release/berthd target/release/berth target/release/berth-runtime target/dist/
	cp target/static/$(HOST)/release/containerd-shim-berth-v2 target/dist/

# Every test: unit tests, containerd integration, and the spec conformance suite against
# berth-runtime. Runs as root (real namespaces, cgroups, mounts).
test: deps build
	$(CARGO) test --release --workspace --no-fail-fast -- --test-threads=2

conformance: deps build
	bash spec-conformance/run.sh

bench: deps dist
	bash bench/runtime.sh
	bash bench/shim.sh
	bash bench/pull.sh
	bash bench/run.sh
	bash bench/net.sh
	bash bench/build.sh

demo: deps build
	bash scripts/demo.sh

install: dist
	install -D -m 0755 target/dist/berth-runtime $(DESTDIR)$(PREFIX)/bin/berth-runtime
	install -D -m 0755 target/dist/containerd-shim-berth-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-berth-v2
	install -D -m 0755 target/dist/berthd $(DESTDIR)$(PREFIX)/bin/berthd
	install -D -m 0755 target/dist/berth $(DESTDIR)$(PREFIX)/bin/berth

clean:
	$(CARGO) clean
