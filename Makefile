# DMABufKit — the two commands a user needs are `make demo` and `make test` (see README.md).
# Each installs what is missing (Debian packages through apt-get, only when missing), builds, runs.

SWIFT        ?= swift
SWIFT_FLAGS  ?=
# Debian packages the build needs; the kernel test tier adds its own when it lands.
BUILD_DEBS   := libdrm-dev zlib1g-dev pkg-config
TEST_DEBS    :=

.PHONY: demo test build deps check-swift clean help
.PHONY: test-kernel test-conformance-plugin gpu-check docs install bench
.PHONY: fuzz sanitize leak-check

help:
	@echo "make demo   build and run the main job on the built-in default scenario"
	@echo "make test   run every test tier"
	@echo "make test-kernel  Debian 6.12 and 7.3 under QEMU: story 7 on both, the P2P oracle and VFIO on 7.3"
	@echo "make test-conformance-plugin  run the conformance plugin on Examples/ThirdPartyOps"
	@echo "make bench  run the benchmarks (Benchmarks/) and print each row against its baseline"
	@echo "make gpu-check  build a static dmabuf to run cuda-export on a GPU machine (docs/gpu.md)"
	@echo "make docs   build the DocC documentation (warnings are errors)"
	@echo "make install [PREFIX=/usr/local]  install dmabuf and its shell completions"
	@echo "make fuzz   run each libFuzzer target for a fixed count (Fuzz/, RELIABILITY.md)"
	@echo "make sanitize  the whole suite under the address and thread sanitizers, then make leak-check"
	@echo "make leak-check  dmabuf demo under LeakSanitizer and valgrind"
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
	$(MAKE) docs
	$(MAKE) test-conformance-plugin
	$(MAKE) --no-print-directory test-kernel

# The SwiftPM command plugin on a third-party package (Examples/ThirdPartyOps): its good ops must
# conform and its mask-ignoring ops must fail exactly the dma-mask check.
test-conformance-plugin: check-swift
	cd Examples/ThirdPartyOps && $(SWIFT) package dma-conformance

# The kernel tier: the real kernels as judges, in QEMU guests (scripts/kernel-tier, docs/kernel-tier.md):
# story 7 on Debian's 6.12 and 7.3, the P2P oracle (six guests, every NVMe CMB pair) and VFIO on 7.3.
test-kernel: check-swift
	SWIFT=$(SWIFT) scripts/kernel-tier/run.sh

# The benchmarks: a separate package (Benchmarks/, ordo-one/benchmark) that depends on this one by
# path, so `make test` never builds it. lspci (pciutils) is the baseline of the sysfs row.
bench: check-swift
	@scripts/ensure-packages.sh $(BUILD_DEBS) pciutils python3
	SWIFT=$(SWIFT) Benchmarks/run.sh

# Installs dmabuf and its shell completions under PREFIX (default /usr/local).
PREFIX ?= /usr/local
install: deps
	$(SWIFT) build -c release --product dmabuf
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(PREFIX)/share/bash-completion/completions" \
	  "$(DESTDIR)$(PREFIX)/share/zsh/site-functions" "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d"
	install -m 755 "$$($(SWIFT) build -c release --show-bin-path)/dmabuf" "$(DESTDIR)$(PREFIX)/bin/dmabuf"
	"$(DESTDIR)$(PREFIX)/bin/dmabuf" --generate-completion-script bash > "$(DESTDIR)$(PREFIX)/share/bash-completion/completions/dmabuf"
	"$(DESTDIR)$(PREFIX)/bin/dmabuf" --generate-completion-script zsh > "$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_dmabuf"
	"$(DESTDIR)$(PREFIX)/bin/dmabuf" --generate-completion-script fish > "$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/dmabuf.fish"
	@echo "installed $(DESTDIR)$(PREFIX)/bin/dmabuf and its bash, zsh and fish completions"

# The DocC documentation of the library products (articles in Sources/*/*.docc); any warning fails.
DOC_TARGETS := DMACore DMAMapping PCI DMABuf DMADevices DMAScenario DMAConformance LinuxDMABuf CUDA
docs: check-swift
	$(SWIFT) package generate-documentation $(addprefix --target ,$(DOC_TARGETS)) --warnings-as-errors
	@echo "documentation archives: .build/plugins/Swift-DocC/outputs/"

# A fully static dmabuf for a GPU machine that has no Swift (docs/gpu.md): copy it there and run
# the line printed at the end.
gpu-check: deps
	$(SWIFT) build -c release --scratch-path .build-static -Xswiftc -static-executable --product dmabuf
	mkdir -p out/gpu-check
	cp "$$($(SWIFT) build -c release --scratch-path .build-static -Xswiftc -static-executable --show-bin-path)/dmabuf" out/gpu-check/dmabuf
	@echo "built out/gpu-check/dmabuf ($$(du -h out/gpu-check/dmabuf | cut -f1), static). On the GPU machine run:"
	@echo "  ./dmabuf cuda-export --size 64MiB && ./dmabuf topo --pairs && nvidia-smi topo -m"

# Reliability (RELIABILITY.md): the fuzz targets for a fixed count each (FUZZ_RUNS, FUZZ_TARGETS
# override), and the sanitizer runs, each in its own scratch folder. Not part of `make test`,
# which replays the fuzz corpora and regression inputs through ReliabilityTests instead.
# Under the sanitizers the XCTest runner's own objects show as leaks at exit, so LeakSanitizer is
# kept for leak-check. The whole suite runs, the CLI tests (which spawn dmabuf) included. The
# thread run builds the model's locks on pthread mutexes (DMA_PTHREAD_LOCKS, ModelMutex in
# DMACore), which ThreadSanitizer sees, where it cannot see Synchronization.Mutex's futex.
TSAN_FLAGS ?= -Xswiftc -DDMA_PTHREAD_LOCKS
fuzz: deps
	SWIFT=$(SWIFT) Fuzz/run.sh

sanitize: deps
	$(SWIFT) build $(SWIFT_FLAGS) --scratch-path .build-asan --build-tests --sanitize=address
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test $(SWIFT_FLAGS) --scratch-path .build-asan --skip-build --sanitize=address
	$(SWIFT) build $(SWIFT_FLAGS) $(TSAN_FLAGS) --scratch-path .build-tsan --build-tests --sanitize=thread
	$(SWIFT) test $(SWIFT_FLAGS) $(TSAN_FLAGS) --scratch-path .build-tsan --skip-build --sanitize=thread
	$(MAKE) --no-print-directory leak-check

leak-check: deps
	@scripts/ensure-packages.sh valgrind
	SWIFT=$(SWIFT) scripts/leak-check.sh

clean:
	rm -rf .build
