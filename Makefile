# pxe-conformance: conformance tests for PXE booting virtual machines on Kubernetes with KubeVirt.
#
# make test      unit tests and the local QEMU lab's integration tests (installs what it needs)
# make lab       the documented PXE procedure end to end in a local QEMU lab, with a verdict
# make bench     boot time: direct kernel boot vs dnsmasq vs our PXE server
# make bench-pxe our server under load beside dnsmasq: 1,000 DHCP clients, TFTP and HTTP
# make e2e       the main job: kind cluster (images from registries or built here), the suite, teardown
# make e2e-registry  the same from a registry on loopback holding our builds under upstream names
# make list-images   the images of the set in use, one reference per line (PXEC_IMAGES, PXEC_IMAGES_FILE)
# make pin-images    pin fixtures/images/upstream.yaml's tags to digests, where its registries answer
# make certify KUBECONFIG=...   the suite against an existing cluster (vendor certification)
# make preflight KUBECONFIG=... only the suite's preflight checks, one PASS/FAIL/SKIP line each
# make list      the suite's specs and labels, without running them
# make soak N=20 the suite N times on one cluster, then a table of passes and failures per spec
# make interrupt Ctrl-C at each phase of make e2e, then a look for anything left behind
# make bench-e2e the suite's speed on the running lab cluster (medians of RUNS runs)
# make bench-images  the offline image build from empty caches, timed by step
# make cluster / cluster-down   the kind + KubeVirt + Multus + bridge CNI lab cluster
# make sonobuoy-image           the Sonobuoy plugin's image and Sonobuoy's own, built offline
# make test-sonobuoy KUBECONFIG=...   the plugin's Job, then Sonobuoy itself, on the lab cluster

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
ARTIFACTS ?= $(CURDIR)/_artifacts
export ARTIFACTS

# Debian packages the lab needs on the host. The guest payload's packages are only downloaded
# (apt-get download), never installed.
LAB_PACKAGES := qemu-system-x86 qemu-utils ipxe-qemu ovmf seabios iproute2 dpkg busybox-static
BENCH_PACKAGES := dnsmasq-base
# The results page's test renders it in headless Chromium.
REPORT_PACKAGES := chromium
ENGINE_PACKAGES := docker.io debootstrap libvirt-dev

.PHONY: bench-images e2e-registry list-images pin-images sonobuoy-image test-sonobuoy interrupt soak bench-pxe bench-e2e all deps test-deps test test-cluster unit lab bench fuzz lint e2e certify preflight list cluster cluster-deps cluster-down images clean-lab

all: test

# apt_install installs those of the Debian packages $(1) that are missing.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(LAB_PACKAGES) $(BENCH_PACKAGES))

# What `make test` needs besides the lab's packages.
test-deps: deps
	$(call apt_install,$(REPORT_PACKAGES))

unit:
	$(GO) test -short ./...

# Modules the image builder's tests read from the module cache (the patch must apply to the
# pinned KubeVirt, kind's base-image files must be where the node builder looks).
BUILDER_MODULES := kubevirt.io/kubevirt@v1.9.0 sigs.k8s.io/kind@v0.33.0

test: test-deps lint
	$(GO) mod download $(BUILDER_MODULES)
	$(GO) test -p 2 -timeout 30m $(if $(filter true,$(CI)),-count=1) ./...

# Integration tests that create kind clusters from the offline images (make images first).
test-cluster: cluster-deps
	$(GO) test -tags cluster -p 1 -timeout 60m ./framework/cluster ./framework/network

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e,cluster ./...

lab: deps
	$(GO) run ./ci/lab

bench: deps
	$(GO) run ./ci/bench

# Needs root (network namespaces) and dnsmasq; BENCH_PXE_ARGS passes flags, e.g. -cpuprofile.
bench-pxe:
	$(call apt_install,$(BENCH_PACKAGES) iproute2)
	$(GO) run ./ci/benchpxe $(BENCH_PXE_ARGS)

# Every fuzz target for FUZZTIME each: a count of inputs (100000x) or a duration (30s). .ci/run
# gives each a count: with a duration, Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" at the deadline, no input at fault (golang/go#75804, fixed in Go
# 1.27; CI hit it once on FuzzConnect). A count has no deadline to race.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./framework/pxe:FuzzDHCPHandler ./framework/pxe:FuzzResolvePath ./framework/pxe:FuzzHTTPHandler ./framework/pxe:FuzzTFTPPacket \
	./framework/vnc:FuzzReadFramebufferUpdate ./framework/vnc:FuzzConnect
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

cluster-deps:
	$(call apt_install,$(ENGINE_PACKAGES))
	bash ci/engine-up.sh

# The lab cluster: kind + KubeVirt + Multus + bridge CNI, its images from registries or built
# here (PXEC_IMAGES=auto|upstream|offline, PXEC_IMAGES_FILE; README "Image sources"), proven by a
# bridge-attached VMI whose serial console shows iPXE. Built, not `go run`, which would turn the
# exit status 2 of a bad value into 1.
cluster: cluster-deps
	$(GO) build -o bin/cluster ./ci/cluster
	bin/cluster up

cluster-down:
	$(GO) build -o bin/cluster ./ci/cluster
	bin/cluster down

# The images of the set in use, one reference per line, for mirroring (no cluster, no network).
list-images:
	@$(GO) build -o bin/cluster ./ci/cluster
	@bin/cluster list-images

# Resolve fixtures/images/upstream.yaml's tags to digests and hash its manifest (needs its registries).
pin-images:
	$(GO) run ./ci/registry pin --file fixtures/images/upstream.yaml

images: cluster-deps
	$(GO) run ./ci/imagebuilder

# The Sonobuoy plugin's image (pxec.local/pxe-conformance-sonobuoy:dev: the compiled suite, its
# entrypoint, the guest payload) and Sonobuoy v0.57.3's (pxec.local/sonobuoy:v0.57.3, built from
# its own module, which is also its CLI).
sonobuoy-image: cluster-deps
	$(GO) run ./ci/imagebuilder sonobuoy

# The plugin on the lab cluster of $(KUBECONFIG) (make cluster): its Job with a stand-in worker,
# then `sonobuoy run`; each runs the certification specs. SONOBUOY_TESTS picks one by name.
SONOBUOY_TESTS ?= .
test-sonobuoy: sonobuoy-image
	@if [ -z "$(KUBECONFIG)" ]; then echo "test-sonobuoy: set KUBECONFIG to the lab cluster's"; exit 2; fi
	KUBECONFIG="$(KUBECONFIG)" $(GO) test -tags cluster -p 1 -count=1 -v -timeout 240m -run '$(SONOBUOY_TESTS)' ./ci/sonobuoy

clean-lab:
	$(GO) run ./ci/lab --sweep

GINKGO := $(GO) run github.com/onsi/ginkgo/v2/ginkgo

# The main job: the conformance suite on a kind cluster (ci/e2e.sh: make cluster, the suite,
# make cluster-down). GINKGO_ARGS and SUITE_ARGS pass on.
e2e: deps cluster-deps
	bash ci/e2e.sh

# The upstream path for real, with no internet: a registry on loopback holds this machine's
# builds under the upstream repository names, and a cluster of its own (pxec-registry) pulls
# every image from it, passes the suite, and is removed (ci/registry-e2e.sh).
e2e-registry: deps cluster-deps
	bash ci/registry-e2e.sh

# Vendor certification: the suite against the cluster of $(KUBECONFIG), which must already run
# KubeVirt and Multus with the bridge CNI and have the bridge on every node. LABELS is a Ginkgo
# label filter, passed quoted (e.g. LABELS='certification && bios'); in GINKGO_ARGS the shell
# would split it and take && and ! for its own. The suite creates only its own namespaces and
# removes them.
certify: deps
	@if [ -z "$(KUBECONFIG)" ]; then echo "certify: set KUBECONFIG to the cluster to certify"; exit 2; fi
	PXEC_KUBECONFIG="$(KUBECONFIG)" $(GINKGO) --tags e2e -v --timeout 90m $(if $(LABELS),--label-filter='$(LABELS)') $(GINKGO_ARGS) ./suites/pxe -- $(SUITE_ARGS)

# The suite's preflight checks alone against the cluster of $(KUBECONFIG): one line per check;
# exit 1 when a required check failed, 2 on bad settings (SUITE_ARGS: --pxec.* flags). Built,
# not `go run`, which would turn exit 2 into 1.
preflight:
	@if [ -z "$(KUBECONFIG)" ]; then echo "preflight: set KUBECONFIG to the cluster to check"; exit 2; fi
	$(GO) build -o bin/preflight ./ci/preflight
	@status=0; PXEC_KUBECONFIG="$(KUBECONFIG)" bin/preflight $(SUITE_ARGS) || status=$$?; \
	case $$status in \
	  0) ;; \
	  1) echo "preflight: exit 1: a required check failed (make exits 2; bin/preflight gives 1)"; exit 1 ;; \
	  2) echo "preflight: exit 2: bad settings (see above)"; exit 2 ;; \
	  *) echo "preflight: exit $$status"; exit $$status ;; \
	esac

# The suite's speed on the running lab cluster (make cluster first): RUNS runs, then one line of
# medians: suite=<s> specs=<n> bios_assertions=<s> efi_assertions=<s> running=<s>.
RUNS ?= 3
bench-e2e:
	$(GO) run ./ci/benche2e --runs $(RUNS) --ginkgo-args "$(GINKGO_ARGS)"

# The offline image build from nothing, on a quiet machine: every image with empty builder, Go
# build and Go module caches (BENCH_IMAGES_ARGS=--module-cache=host keeps this machine's
# modules), ending with images=<s> kubernetes=<s> kubevirt=<s> coredns=<s> other=<s>; each
# step's time in _artifacts/bench-images. The images replace the pxec.local ones (same inputs).
bench-images: cluster-deps
	$(GO) run ./ci/benchimages --artifacts $(ARTIFACTS)/bench-images $(BENCH_IMAGES_ARGS)

# The suite N times on one cluster (the running lab cluster, or one brought up for all runs),
# then a table of every spec by passes, failures and skips (also in _artifacts/soak/soak.md),
# with each failure's message and artifacts. E2E_LABELS etc. pass on to ci/e2e.sh.
N ?= 20
soak: deps cluster-deps
	$(GO) run ./ci/soak --runs $(N) --artifacts $(ARTIFACTS)/soak

# Ctrl-C leaves nothing: make e2e interrupted at each phase (image build, kind create, KubeVirt
# install, a spec booting, artifact collection), then a look for anything left behind.
# PHASE=<name> runs one phase.
interrupt: deps cluster-deps
	$(GO) run ./ci/interrupt --artifacts $(ARTIFACTS)/interrupt $(if $(PHASE),--phase "$(PHASE)")

# Every spec with its labels, without a cluster.
list:
	$(GINKGO) --tags e2e --dry-run -v --no-color ./suites/pxe | grep -E '^[A-Z].*\[[a-z, -]+\]$$' || true
