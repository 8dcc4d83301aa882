# DMABufKit — the two commands a user needs are `make demo` and `make test` (see README.md).
# Each installs what is missing (Debian packages through apt-get, only when missing), builds, runs.

SWIFT        ?= swift
SWIFT_FLAGS  ?=
# Debian packages the build needs; the kernel test tier adds its own when it lands.
BUILD_DEBS   :=
TEST_DEBS    :=

.PHONY: demo test build deps check-swift clean help

help:
	@echo "make demo   build and run the main job on the built-in default scenario"
	@echo "make test   run every test tier"
	@echo "make build  build the package (warnings are errors)"
	@echo "make clean  remove build products"

check-swift:
	@command -v $(SWIFT) >/dev/null 2>&1 || { \
	  echo "error: '$(SWIFT)' is not on PATH. Install Swift 6.2 or newer (https://swift.org/install) and retry." >&2; exit 2; }

deps: check-swift
	@scripts/ensure-packages.sh $(BUILD_DEBS)

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

demo: build
	$(SWIFT) run $(SWIFT_FLAGS) --skip-build dmabuf demo

test: deps
	@scripts/ensure-packages.sh $(TEST_DEBS)
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build

clean:
	rm -rf .build
