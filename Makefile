# berth: build, test, conformance, bench, demo, install.
CARGO   ?= cargo
PREFIX  ?= /usr/local
RUNTIME ?= $(CURDIR)/target/release/berth-runtime
export RUNTIME

.PHONY: all deps build test unit conformance bench demo install clean

all: build

deps:
	bash scripts/install-deps.sh

build:
	$(CARGO) build --release --workspace

# Every test: unit tests, containerd integration, and the spec conformance suite against
# berth-runtime. Runs as root (real namespaces, cgroups, mounts).
test: deps build
	$(CARGO) test --release --workspace --no-fail-fast -- --test-threads=2

conformance: deps build
	bash spec-conformance/run.sh

bench: deps build
	bash bench/runtime.sh
	bash bench/shim.sh
	bash bench/pull.sh
	bash bench/run.sh
	bash bench/net.sh
	bash bench/build.sh

demo: deps build
	bash scripts/demo.sh

install: build
	install -D -m 0755 target/release/berth-runtime $(DESTDIR)$(PREFIX)/bin/berth-runtime
	install -D -m 0755 target/release/containerd-shim-berth-v2 $(DESTDIR)$(PREFIX)/bin/containerd-shim-berth-v2
	install -D -m 0755 target/release/berthd $(DESTDIR)$(PREFIX)/bin/berthd
	install -D -m 0755 target/release/berth $(DESTDIR)$(PREFIX)/bin/berth

clean:
	$(CARGO) clean
