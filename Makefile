# The two commands a fresh machine needs: `make demo` and `make test`.
SWIFT ?= swift
RELEASE_BIN := .build/release/fspf

.PHONY: deps build release test demo bench clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release --product fspf

# Every test: library tests and CLI tests against the built binary.
test: deps
	$(SWIFT) build
	$(SWIFT) test

demo: release
	scripts/demo.sh $(RELEASE_BIN)

# Encryption throughput next to `openssl speed` x cores; writes docs/BENCHMARKS.md.
bench: release
	scripts/bench-encrypt.sh $(RELEASE_BIN)

clean:
	rm -rf .build
