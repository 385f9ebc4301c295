# rpi-deploy — the front door. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin
GO      ?= go
export CGO_ENABLED ?= 0

.PHONY: help deps build cross test test-go test-arm64 lint bench demo initramfs tftproot e2e deb clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install the Debian packages, Go modules and npm packages the build and tests need
	@scripts/install-deps.sh

build: ## build rpi-deployd, rpi-agent and rpi-image for this machine into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./server/cmd/rpi-deployd ./agent/cmd/rpi-agent ./image-tools/cmd/rpi-image

# Operators prepare images on macOS and Windows too: rpi-image and rpi-deployd's operator
# commands build there (`serve` and `tftproot` answer that they run on Linux only).
OPERATOR_PLATFORMS := darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

cross: ## cross-build all binaries for linux/arm64, rpi-image and rpi-deployd for macOS and Windows (amd64, arm64) into bin/OS-ARCH/
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ ./server/cmd/rpi-deployd ./agent/cmd/rpi-agent ./image-tools/cmd/rpi-image
	for p in $(OPERATOR_PLATFORMS); do \
		os=$${p%/*} arch=$${p#*/}; \
		echo "GOOS=$$os GOARCH=$$arch: rpi-image rpi-deployd"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$os-$$arch/ ./server/cmd/rpi-deployd ./image-tools/cmd/rpi-image; \
	done

lint: ## gofmt, go vet, go mod tidy and scripts/funclen (no function over 80 lines unless allowlisted) must leave nothing to say
	@scripts/lint.sh

TESTSUM := $(GO) run ./scripts/testsum

test-go: ## Go tests with the race detector (network tests make their own namespaces; needs root), also of the patched copies in third_party (pin-tftp; anacrolix-torrent: rpi-deploy's own test), then test-arm64; fails on any skipped test
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m -json ./... | $(TESTSUM)
	(cd third_party/pin-tftp && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 5m -json ./...) | $(TESTSUM)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 5m -json github.com/anacrolix/torrent | $(TESTSUM)
	$(MAKE) test-arm64

# The arm64 SHA-256 kernel (internal/sha256x2) and its users, as arm64 test binaries run
# through qemu-user (qemu-user-static, scripts/deps/initramfs.apt; -exec needs no binfmt).
ARM64_TESTS := TestPairedDataProof|TestDataProof|TestZeroFrames|TestVerifyPairs|TestVerify|TestPackCompressedSHA256|TestPackFreeSpaceIsZeros

test-arm64: ## the SHA-256 kernel's tests and the agent's, read-back's and pack's that use it, built for arm64 and run under qemu-aarch64-static
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -timeout 10m -exec qemu-aarch64-static -json ./internal/sha256x2/ | $(TESTSUM)
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -timeout 10m -exec qemu-aarch64-static -json -tags purego ./internal/sha256x2/ | $(TESTSUM)
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -timeout 10m -exec qemu-aarch64-static -json -run '^($(ARM64_TESTS))$$' \
	  ./agent/flash/ ./image-tools/readback/ ./image-tools/pack/ | $(TESTSUM)

test: deps ## everything CI runs: lint, Go tests, cross-builds, boot in QEMU (and the second boot), browser tests
	@scripts/test.sh

bench: deps build ## benchmarks, each printing "bench: NAME ours=X baseline=Y ratio=R"
	@scripts/bench.sh

demo: deps build ## server + SQLite + virtual boards flashing image files, dashboard up (Ctrl-C stops)
	@scripts/demo.sh

# --- initramfs: u-root, rpi-agent as uinit (docs/initramfs.md) ---
INITRAMFS    ?= build/initramfs_2712
MODULES_FROM ?=
MODULES      ?= $(if $(MODULES_FROM),,virtio_pci,virtio_net,virtio_blk,virtio_rng)
COMPRESS     ?= gzip

initramfs: ## arm64 u-root initramfs, rpi-agent as uinit -> build/initramfs_2712 (MODULES_FROM=lib/modules/VER MODULES=a,b; default: QEMU virtio modules)
	@if [ -z "$(MODULES_FROM)" ]; then initramfs/fetch-kernel.sh; fi
	$(GO) run ./initramfs/cmd/mkinitramfs -o '$(INITRAMFS)' -compress '$(COMPRESS)' \
	  -modules-from '$(or $(MODULES_FROM),build/kernel/modules)' -modules '$(MODULES)'

TFTPROOT     ?= build/tftproot
PI_INITRAMFS ?= build/pi/initramfs_2712

tftproot: ## TFTP root for IMAGE=master.img: its Pi 5 boot files + an initramfs with the image's kernel modules -> build/tftproot
	@[ -n "$(IMAGE)" ] || { echo "usage: make tftproot IMAGE=master.img [MODULES_FROM=DIR|IMAGE] [MODULES=a,b] [TFTPROOT=DIR]" >&2; exit 2; }
	@$(MAKE) initramfs INITRAMFS='$(PI_INITRAMFS)' MODULES_FROM='$(or $(MODULES_FROM),$(IMAGE))' \
	  MODULES='$(if $(filter command line environment,$(origin MODULES)),$(MODULES))'
	$(GO) run ./server/cmd/rpi-deployd tftproot --image '$(IMAGE)' --initramfs '$(PI_INITRAMFS)' --out '$(TFTPROOT)'

e2e: ## boot the initramfs in QEMU against rpi-deployd (DHCP full mode) in netns: hello, flash, verify, name; then boot the flashed OS images (root)
	@initramfs/fetch-kernel.sh
	@$(MAKE) initramfs
	RPI_DEPLOY_INITRAMFS='$(abspath $(INITRAMFS))' RPI_DEPLOY_KERNEL='$(abspath build/kernel/vmlinuz)' \
	  $(GO) test -tags e2e -count=1 -json -timeout 60m -run 'TestBootFlashVerify|TestRescueShell|TestArchive|TestRecoveryCardFlashed|TestSecondBoot' ./initramfs/e2e ./initramfs \
	  | $(TESTSUM) -v

# --- Debian package: nfpm as a library (scripts/mkdeb), files in packaging/ ---
DEB_ARCHES  ?= amd64 arm64
DEB_VERSION ?=
DEB_OUT     ?= build/deb
# The commit's time: the changelog date, the no-tag version's date, every file's mtime.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
HOST_ARCH   := $(shell $(GO) env GOARCH)

deb: deps ## Debian packages rpi-deploy_VERSION_ARCH.deb for DEB_ARCHES (amd64 arm64) -> build/deb/ (DEB_VERSION=V overrides the version from git; ships build/initramfs_2712 if built)
	@rm -rf '$(DEB_OUT)/bin' '$(DEB_OUT)/man'
	@for a in $(DEB_ARCHES) $(HOST_ARCH); do \
	  [ -x '$(DEB_OUT)'/bin/$$a/rpi-deployd ] && continue; \
	  echo "build linux/$$a"; \
	  GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o '$(DEB_OUT)'/bin/$$a/ \
	    ./server/cmd/rpi-deployd ./agent/cmd/rpi-agent ./image-tools/cmd/rpi-image; \
	done
	@mkdir -p '$(DEB_OUT)/man'
	@help2man -N --no-discard-stderr -n 'rpi-deploy server (DHCP, TFTP, HTTP API, dashboard) and operator CLI' \
	  -o '$(DEB_OUT)/man/rpi-deployd.1' '$(DEB_OUT)/bin/$(HOST_ARCH)/rpi-deployd'
	@help2man -N --no-discard-stderr -n 'flash, verify and name a Raspberry Pi 5 SD card from rpi-deployd' \
	  -o '$(DEB_OUT)/man/rpi-agent.1' '$(DEB_OUT)/bin/$(HOST_ARCH)/rpi-agent'
	@help2man -N --no-discard-stderr -n 'pack, inspect and verify Raspberry Pi master images' \
	  -o '$(DEB_OUT)/man/rpi-image.1' '$(DEB_OUT)/bin/$(HOST_ARCH)/rpi-image'
	@for a in $(DEB_ARCHES); do \
	  $(GO) run ./scripts/mkdeb -arch $$a -bin '$(DEB_OUT)'/bin/$$a -man '$(DEB_OUT)/man' \
	    -describe '$(VERSION)' -version '$(DEB_VERSION)' -o '$(DEB_OUT)' \
	    $(if $(wildcard $(INITRAMFS)),-initramfs '$(INITRAMFS)'); \
	done

clean: ## remove build output
	rm -rf $(BIN) build
