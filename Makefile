# pyfalloc — make demo | make test | make bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: all demo test crashtest bench clean shim examples ceph-up ceph-down bytecode

all: $(STAMP) shim examples bytecode

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	# the device clients' Python bindings come from Debian (python3-libnbd, python3-rbd,
	# python3-rados), not from PyPI: their modules are linked into the venv
	mkdir -p $(VENV)/debian-bindings
	for m in nbd.py libnbdmod.*.so rados.*.so rbd.*.so; do \
	  for f in /usr/lib/python3/dist-packages/$$m; do [ -e "$$f" ] && ln -sf "$$f" $(VENV)/debian-bindings/; done; \
	done; true
	echo $(abspath $(VENV))/debian-bindings > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/debian-bindings.pth
	touch $(STAMP)

# the LD_PRELOAD shim (cffi embedding mode)
SHIM := build/libpyfalloc.so
shim: $(SHIM)
$(SHIM): $(STAMP) $(wildcard shim/*.c shim/*.h) shim/build.py cdefs/shim.h cdefs/shim_c.h cdefs/fallocate2.h
	$(PY) shim/build.py build

# Every process the shim starts imports the package: with PYTHONDONTWRITEBYTECODE set (or a
# read-only checkout) nothing caches the compiled modules, and each start would compile them
# again (tens of ms). compileall skips what is up to date.
bytecode: $(STAMP)
	$(PY) -m compileall -q pyfalloc

# the example C programs: syscall 486 + FIEMAP, the compat entry and the i386 registers
EXAMPLES := build/place build/compat
examples: $(EXAMPLES)
build/%: examples/%.c cdefs/fallocate2.h
	@mkdir -p build
	$(CC) -Wall -Wextra -O2 -I cdefs -o $@ $< -ldl

demo: $(STAMP) $(SHIM) bytecode
	$(PY) examples/demo.py

test: $(STAMP) $(SHIM) bytecode
	$(VENV)/bin/pytest -q -rs

# 10^4 power-cut states over 20 recorded workloads (make test checks 300 over 2)
crashtest: $(STAMP) bytecode
	PYFALLOC_CRASH_STATES=10000 PYFALLOC_CRASH_SEEDS=20 $(VENV)/bin/pytest -q tests/test_crash_states.py -k durability

bench: $(STAMP) $(SHIM) bytecode
	$(PY) bench/alloc_latency.py
	$(PY) bench/move_throughput.py
	$(PY) bench/compact.py
	$(PY) bench/compact.py --strategies exact --no-kernel --cold
	$(PY) bench/shim_io.py
	$(PY) bench/metadata.py
	$(PY) bench/programs.py
	$(PY) bench/conversions.py
	$(PY) bench/thin.py

# a throwaway single-host Ceph cluster (one mon, one mgr, one OSD on a file) under $(CEPH_DIR);
# export CEPH_CONF=$(CEPH_DIR)/ceph.conf to use it. make test starts its own.
CEPH_DIR ?= $(abspath out/ceph)
ceph-up:
	tests/ceph/up.sh $(CEPH_DIR)
ceph-down:
	tests/ceph/down.sh $(CEPH_DIR)

clean:
	rm -rf $(VENV) out build *.egg-info
