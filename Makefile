# The two commands a fresh machine needs: `make demo` and `make test`.
SWIFT ?= swift
RELEASE_BIN := .build/release/fspf
# Our code builds with warnings as errors; SwiftPM does not pass the flag on to dependencies, and
# Package.swift carries no unsafe flags, so that other packages can depend on FSPFCore.
SWIFTFLAGS ?= -Xswiftc -warnings-as-errors
# Release binaries carry the Swift runtime (nothing from the toolchain at run time). Every release
# build uses exactly these flags, or SwiftPM rebuilds everything.
RELEASE_FLAGS := -c release --static-swift-stdlib $(SWIFTFLAGS)
export RELEASE_FLAGS
# make install / make deb (scripts/install.sh has the layout).
PREFIX ?= /usr/local
DESTDIR ?=
export PREFIX DESTDIR

.PHONY: deps spark-deps tool-deps packaging-deps build release lib man install uninstall deb wheel image check test test-security test-asan test-tsan fuzz demo demo-spark bench clean
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld -Xlinker --export-dynamic

deps:
	@scripts/install-deps.sh

# Java 17 and the project's .venv with PySpark and the deployment linters: the Spark and deploy
# tests, make demo-spark, make bench.
spark-deps:
	@scripts/install-deps.sh --spark

tool-deps:
	@scripts/install-deps.sh --tools

# debootstrap, mandoc and the rest of what make deb, make wheel and PackagingTests use.
packaging-deps:
	@scripts/install-deps.sh --packaging

build: deps
	$(SWIFT) build $(SWIFTFLAGS)

# fspf and fspf-mount, and libfspf.so linked by scripts/link-libfspf.sh (SwiftPM would link the
# library against the toolchain's shared runtime).
release: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product fspf
	$(SWIFT) build $(RELEASE_FLAGS) --product fspf-mount
	$(SWIFT) build $(RELEASE_FLAGS) --target libfspf
	scripts/link-libfspf.sh .build/release .build/release/libfspf.so

# Man pages in .build/man, generated from the commands' definitions by swift-argument-parser's
# generate-manual (a page per command and subcommand).
man: release
	scripts/build-man.sh .build/release .build/man

# PREFIX=/usr/local, DESTDIR for staging; scripts/install.sh lists what goes where. make uninstall
# removes exactly what the last make install with the same PREFIX and DESTDIR installed.
install: release man
	scripts/install.sh install

uninstall:
	scripts/install.sh uninstall

# .build/deb/fspf_VERSION_ARCH.deb
deb: release man packaging-deps
	scripts/build-deb.sh .build/deb

# .build/wheel/fspf-VERSION-py3-none-linux_ARCH.whl: the Python package with libfspf.so inside.
wheel: release packaging-deps
	scripts/build-wheel.sh .build/release/libfspf.so .build/wheel

# The in-process readers in .build/lib: libfspf.so with include/fspf.h (C, Python's ctypes), and
# the Hadoop file system for fspf:// (fspf-hadoop.jar, libfspf_jni.so) for spark-submit --jars.
lib: release spark-deps
	scripts/build-lib.sh .build/release/libfspf.so .build/lib

# deploy/container/Dockerfile built with podman from local base images (scripts/build-image.sh):
# IMAGE_TARGET=runtime (default), job (with JOB_VOLUME=DIR, an encrypted volume) or spark;
# IMAGE_TAG defaults to localhost/fspf-IMAGE_TARGET.
IMAGE_TARGET ?= runtime
export JOB_VOLUME
image: packaging-deps $(if $(filter spark,$(IMAGE_TARGET)),spark-deps)
	scripts/build-image.sh $(IMAGE_TARGET) $(IMAGE_TAG)

# Every test: library tests, CLI tests against the built binary, real FUSE mounts, libfspf from
# C (also under ASan), Python (pytest), Spark (fspf:// in local mode and on a cluster), and the
# packages: make install into a DESTDIR, the .deb and the wheel in a clean debootstrap chroot,
# the container images built with podman and run. The Debian base both use is made first.
test: deps spark-deps tool-deps packaging-deps deb wheel
	scripts/debian-chroot.sh --tarball > /dev/null
	$(SWIFT) build $(SWIFTFLAGS)
	$(SWIFT) test $(SWIFTFLAGS)
	.build/debug/fspf-tamper --quick --mount .build/debug/fspf-mount

# A contributor's loop (docs/DEVELOPING.md): every suite that needs no FUSE mount, JDK, .venv or
# packaging tools — the format, crypto, system calls, key sources, attestation, the key server
# (its load tests aside, minutes of them) and libfspf's threads.
CHECK_SUITES := FSPFCryptoTests|FSPFSystemTests|FSPFCommandLineTests|FSPFCoreTests|FSPFProvisioningTests|FSPFAttestationTests|FSPFKeyBrokerTests|libfspfTests.ConcurrencyTests
check: deps
	$(SWIFT) build $(SWIFTFLAGS) --build-tests
	$(SWIFT) test $(SWIFTFLAGS) --skip-build --filter '$(CHECK_SUITES)' --skip LoadTests

# The adversarial suite with its counts (docs/SECURITY.md): the full tamper matrix, a read-write
# mount SIGKILLed at 200 random points, then the fuzzers for FUZZ_SECONDS each. The fault, load
# and secret tests run in `make test`.
test-security: deps
	$(SWIFT) build $(SWIFTFLAGS)
	@# The matrix is single-threaded: it runs beside the crash points, its report printed after.
	.build/debug/fspf-tamper --mount .build/debug/fspf-mount > .build/tamper-matrix.log 2>&1 & matrix=$$!; \
	FSPF_CRASH_POINTS=200 $(SWIFT) test $(SWIFTFLAGS) --filter 'WritableMountTests.aKilledDaemonLeavesTheLastSealedVersion'; \
	crash=$$?; wait $$matrix; status=$$?; cat .build/tamper-matrix.log; [ $$crash -eq 0 ] && [ $$status -eq 0 ]
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

# The whole suite under AddressSanitizer (the spawned tools too), but for the packaging and image
# tests (they check release builds) and the integration suites that only drive scripts and Spark
# through the daemon FSPFMountTests already runs instrumented (the Python and Hadoop suites stay:
# they load the instrumented libfspf). Leak reports are off: the daemon's parent exits by design
# with its allocations live once the child serves the mount.
test-asan: deps spark-deps tool-deps
	$(SWIFT) build $(SWIFTFLAGS) --build-tests --scratch-path .build-asan -Xswiftc -sanitize=address
	ASAN_OPTIONS=detect_leaks=0 FSPF_SANITIZED=1 FSPF_BIN=$(CURDIR)/.build-asan/debug/fspf \
	  $(SWIFT) test $(SWIFTFLAGS) --skip-build --scratch-path .build-asan -Xswiftc -sanitize=address \
	  --skip PackagingTests --skip ContainerImageTests --skip SparkJobTests --skip SconeScriptTests --skip DeployTests

# The library suites under ThreadSanitizer: the writer's workers, the concurrent reader and
# verifier, the key broker's event loops and workers, libfspf's handles shared by threads. (The FUSE
# daemon forks, which ThreadSanitizer does not support; docs/SECURITY.md.)
test-tsan: deps
	$(SWIFT) build $(SWIFTFLAGS) --build-tests --scratch-path .build-tsan -Xswiftc -sanitize=thread
	FSPF_SANITIZED=1 $(SWIFT) test $(SWIFTFLAGS) --skip-build --scratch-path .build-tsan -Xswiftc -sanitize=thread \
	  --filter 'FSPFCryptoTests|FSPFSystemTests|FSPFCoreTests|FSPFProvisioningTests|FSPFKeyBrokerTests|libfspfTests.ConcurrencyTests'

# libFuzzer on every parser, FUZZ_SECONDS per target, with AddressSanitizer.
fuzz: deps
	$(SWIFT) build $(SWIFTFLAGS) $(FUZZ_FLAGS) --product fspf-fuzz
	scripts/fuzz.sh .build-fuzz/debug/fspf-fuzz $(FUZZ_SECONDS)

demo: release
	scripts/demo.sh $(RELEASE_BIN)

# The confidential Spark job: generated NYC-taxi Parquet and the PySpark job in two volumes,
# keys from the key server, spark-submit through the mounts (local and standalone), then with
# the data read in-process through fspf:// (libfspf in the JVMs), all compared with the plain run.
# Installs Java 17 and PySpark (.venv) on first use. ROWS=N sets the size.
demo-spark: release spark-deps
	scripts/demo-spark.sh $(RELEASE_BIN)

# Every measurement in one run, side by side with plain files, passthrough_ll, gocryptfs,
# securefs and format 1's fspf (reads cold and warm, trees, random I/O, the Spark job on 2 GiB of
# Parquet, encryption, hashes, mount time and memory at scale, chunk sizes); writes
# docs/BENCHMARKS.md. About an hour; needs root
# and ~30 GB of free disk. SPARK_SIZE=5GiB for a bigger Spark dataset.
bench: release
	@scripts/install-deps.sh --bench --spark
	scripts/bench.sh $(RELEASE_BIN)

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan .build-v1 fuzz-artifacts
	git worktree prune
