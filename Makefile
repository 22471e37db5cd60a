# SPDX-License-Identifier: Apache-2.0
# Top-level build of bdev_ozone: the engine (Rust: libozbd.a and the `ozbd` CLI), the SPDK
# module and ozone_tgt (when an SPDK install is found), and the nbdkit plugin.
#
#   export SPDK_ROOT=/path/to/spdk     # optional: an SPDK install prefix (see spdk/Makefile)
#   make                               # build everything that can be built
#   make install [PREFIX=/usr/local] [DESTDIR=]
#   make test                          # scripts/test-all (starts a local Ozone if none runs)
#   make DEBUG=1                       # cargo dev profile (target/debug) and C at -O0 -g
#   make clean
#   make NBDKIT=no / SPDK=no           leave a part out on purpose (default: auto = build it
#                                      when its headers/libraries are found)
#
# Installs: bin/ozbd, bin/ozone_tgt, lib/libspdk_bdev_ozone.so, include/ozbd.h,
# share/bdev_ozone/rpc_plugin/bdev_ozone_rpc.py, and $(NBDKIT_PLUGINDIR)/nbdkit-ozbd-plugin.so
# (default $(PREFIX)/lib/nbdkit/plugins; pass NBDKIT_PLUGINDIR=$$(pkg-config
# --variable=plugindir nbdkit) to install it where nbdkit finds it by name).
#
# Owns: the order of the builds, the DEBUG switch, and what `make install` puts where.
# Must never: build or fetch SPDK or nbdkit, or skip a part silently: a part that cannot be
# built (no SPDK, no nbdkit headers) is announced loudly, and `make install` then installs
# the rest.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL ?= install
CARGO ?= cargo
NBDKIT_PLUGINDIR ?= $(PREFIX)/lib/nbdkit/plugins

DEBUG ?=
ifneq ($(DEBUG),)
  CARGO_PROFILE_FLAG :=
  TARGET_DIR := $(TOP)/target/debug
  C_OPT := -O0 -g
else
  CARGO_PROFILE_FLAG := --release
  TARGET_DIR := $(TOP)/target/release
  C_OPT := -O2 -g
endif
OZBD_LIB := $(TARGET_DIR)/libozbd.a

# SPDK is looked up by spdk/Makefile (SPDK_ROOT, pkg-config spdk_bdev, /opt/spdk).
SPDK ?= auto
NBDKIT ?= auto
ifeq ($(SPDK),no)
  SPDK_FOUND := no
else
  SPDK_FOUND := $(shell $(MAKE) -s --no-print-directory -C $(TOP)/spdk spdk-found 2>/dev/null)
endif
ifeq ($(NBDKIT),no)
  NBDKIT_FOUND := no
else
  NBDKIT_FOUND := $(shell pkg-config --exists nbdkit 2>/dev/null && echo yes)
endif

SUB_MAKE_VARS := OZBD_LIB=$(OZBD_LIB) DEBUG=$(DEBUG)

.PHONY: all engine spdk nbdkit install install-engine install-spdk install-nbdkit test clean

all: engine spdk nbdkit

engine:
	cd $(TOP) && $(CARGO) build $(CARGO_PROFILE_FLAG) -p ozbd-capi -p ozbd-cli

spdk: engine
ifeq ($(SPDK_FOUND),yes)
	$(MAKE) -C $(TOP)/spdk $(SUB_MAKE_VARS)
else
	@echo "##################################################################"
	@echo "# SPDK NOT FOUND (or SPDK=no): the SPDK module and ozone_tgt are NOT built."
	@echo "# Set SPDK_ROOT=<SPDK install prefix>, or PKG_CONFIG_PATH so that"
	@echo "# 'pkg-config spdk_bdev' works, or install SPDK in /opt/spdk"
	@echo "# (docs/spdk-module.md, 'Getting SPDK')."
	@echo "##################################################################"
endif

nbdkit: engine
ifeq ($(NBDKIT_FOUND),yes)
	$(MAKE) -C $(TOP)/nbdkit $(SUB_MAKE_VARS) CFLAGS="$(C_OPT) -Wall -Wextra -Wno-unused-parameter"
else
	@echo "##################################################################"
	@echo "# NBDKIT NOT FOUND (no 'pkg-config nbdkit', or NBDKIT=no): the nbdkit plugin is NOT"
	@echo "# built. Install nbdkit's plugin headers (Debian: nbdkit-plugin-dev)."
	@echo "##################################################################"
endif

install: install-engine install-spdk install-nbdkit

install-engine: engine
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include
	$(INSTALL) -m 755 $(TARGET_DIR)/ozbd $(DESTDIR)$(PREFIX)/bin/ozbd
	$(INSTALL) -m 644 $(TOP)/capi/include/ozbd.h $(DESTDIR)$(PREFIX)/include/ozbd.h

install-spdk: spdk
ifeq ($(SPDK_FOUND),yes)
	$(MAKE) -C $(TOP)/spdk $(SUB_MAKE_VARS) install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)
else
	@echo "# SPDK NOT FOUND: ozone_tgt and libspdk_bdev_ozone.so NOT installed."
endif

install-nbdkit: nbdkit
ifeq ($(NBDKIT_FOUND),yes)
	$(INSTALL) -d $(DESTDIR)$(NBDKIT_PLUGINDIR)
	$(INSTALL) -m 755 $(TOP)/nbdkit/nbdkit-ozbd-plugin.so $(DESTDIR)$(NBDKIT_PLUGINDIR)/nbdkit-ozbd-plugin.so
else
	@echo "# NBDKIT NOT FOUND: nbdkit-ozbd-plugin.so NOT installed."
endif

test:
	$(TOP)/scripts/test-all

clean:
	cd $(TOP) && $(CARGO) clean -p ozbd-capi -p ozbd-cli -p ozbd-chunkstore -p ozbd-backend
	$(MAKE) -C $(TOP)/spdk clean
	$(MAKE) -C $(TOP)/nbdkit clean
