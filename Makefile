# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO := protos/screening/v1/screening.proto
GENERATED := screening/v1/screening_pb2.py screening/v1/screening_pb2.pyi screening/v1/screening_pb2_grpc.py screening/v1/screening_pb2_grpc.pyi

.PHONY: install run test lint proto check-proto bench clean e2e bench-sip sip-packages bench-packages console-packages console-messages

install: $(STAMP)

# Install also compiles screening/_native.c (in place, editable; see setup.py), so it
# reruns when that changes; an old build is removed first so that it is never used stale.
$(STAMP): pyproject.toml setup.py screening/_native.c
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	rm -f screening/_native.*.so
	$(BIN)/pip install --quiet -e '.[dev]'
	@$(BIN)/python -c 'import screening._native' 2>/dev/null || \
		echo "WARNING: screening/_native.c was not compiled (no C compiler?): screening runs its slower pure-Python path"
	touch $(STAMP)

# The gRPC server ($(ARGS) are its flags) and the web console beside it on http://127.0.0.1:8080
# (SCREENING_CONSOLE_LISTEN moves it); Ctrl-C stops both.
run: $(STAMP)
	$(BIN)/python -m screening.console.devrun $(ARGS)

test: $(STAMP) console-packages
	$(BIN)/pytest $(PYTEST_ARGS)

# Kamailio + SIPp on loopback (integrations/kamailio): real SIP calls screened by a real server.
SIP_PACKAGES := kamailio kamailio-python3-modules sip-tester
KAMAILIO_DIR := integrations/kamailio

# Installs Debian packages, only those missing: $(call debian-packages,pkg ...).
define debian-packages
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing Debian packages:$$missing"; \
		$$sudo apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

sip-packages:
	$(call debian-packages,$(SIP_PACKAGES))

# The console's browser tests (tests/console) drive Debian's chromium through Playwright's
# Python API; the font draws the Chinese pages.
CONSOLE_PACKAGES := chromium fonts-wqy-microhei

console-packages:
	$(call debian-packages,$(CONSOLE_PACKAGES))

# New console strings into the Chinese catalog (then translate the empty msgstr lines).
CONSOLE_LOCALE := screening/console/locale

console-messages: $(STAMP)
	$(BIN)/pybabel extract -F screening/console/babel.cfg -k _ -k gettext -k ngettext:1,2 \
		--no-location --sort-output -o $(CONSOLE_LOCALE)/messages.pot .
	$(BIN)/pybabel update -i $(CONSOLE_LOCALE)/messages.pot -d $(CONSOLE_LOCALE) -D messages \
		--ignore-obsolete --width 120
	rm $(CONSOLE_LOCALE)/messages.pot

e2e: $(STAMP) sip-packages
	PYTHONPATH=$(KAMAILIO_DIR):. $(BIN)/pytest $(KAMAILIO_DIR)/e2e -p no:cacheprovider $(PYTEST_ARGS)

# Our screening beside Kamailio's userblocklist and plain Kamailio, alternating, on one
# list of 100,000 numbers and 1,000 prefixes: setup time, CPU per call, highest rate with
# no failed call, the service frozen; prints the ratios (about 10 minutes).
# userblocklist and db_text come with Debian's kamailio package. BENCH_SIP_ARGS=--help.
bench-sip: $(STAMP) sip-packages
	PYTHONPATH=$(KAMAILIO_DIR) $(BIN)/python $(KAMAILIO_DIR)/bench_sip.py $(BENCH_SIP_ARGS)

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--python_out=. --pyi_out=. --grpc_python_out=. \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=. \
		$(PROTO)

# The speed figures (not part of `make test`: over an hour; ARGS="--only a,d" for some;
# starts its own PostgreSQL and servers). ARGS="--help" lists its knobs.
# h2load (nghttp2-client): figure g's unary load, from a client in C.
BENCH_PACKAGES := nghttp2-client

bench-packages:
	$(call debian-packages,$(BENCH_PACKAGES))

bench: $(STAMP) bench-packages
	$(BIN)/python -m bench $(ARGS)

# Fails when the committed generated code is not what `make proto` makes.
check-proto: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=$$tmp \
		$(PROTO) && \
	for f in $(GENERATED); do \
		cmp -s $$tmp/$$f $$f || { echo "$$f is stale: run 'make proto' and commit"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated code is up to date"

lint: $(STAMP) check-proto
	$(BIN)/ruff check screening storage tests integrations bench
	$(BIN)/ruff format --check screening storage tests integrations bench
	$(BIN)/mypy screening storage bench
	$(BIN)/lint-imports --no-cache
	MYPYPATH=$(KAMAILIO_DIR):$(KAMAILIO_DIR)/e2e:. $(BIN)/mypy $(KAMAILIO_DIR)

clean:
	rm -rf $(VENV) .screening build *.egg-info screening/*.so
