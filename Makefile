# podyard: `make demo` sets everything up and converges the examples; `make test` runs every tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/pytest

.PHONY: help venv docker tools images demo test test-unit test-docker test-lab lint bench bench-lab lab lab-down clean

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint,lab]'
	touch $(STAMP)

venv: $(STAMP)  ## Build .venv with podyard (editable), the test and lint tools, and Ansible

# iptables, conntrack, dnsmasq and a static busybox: the node agent's image (Services data plane,
# cluster DNS) is assembled from this host's own binaries. A daemon.json is written only for an
# engine started here and only when none exists: a running engine is never touched.
docker:  ## Install and start a Docker engine when none answers, plus the node agent's binaries
	@missing=""; \
	for pkg in iptables conntrack dnsmasq-base busybox-static; do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then missing="docker.io$$missing"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi; \
	if ! docker info >/dev/null 2>&1; then \
	  if [ ! -e /etc/docker/daemon.json ]; then \
	    echo "writing /etc/docker/daemon.json (userland-proxy off: published ports through iptables)"; \
	    mkdir -p /etc/docker && echo '{"userland-proxy": false}' >/etc/docker/daemon.json; \
	  fi; \
	  echo "starting dockerd (log: /var/log/dockerd.log)"; \
	  nohup dockerd >/var/log/dockerd.log 2>&1 & \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
	fi; docker info --format 'docker engine {{.ServerVersion}} is up'

# kubectl (Debian's kubernetes-client, 1.20) reads the API `reconcile --api-listen` serves in
# the docker tier; any kubectl already installed is used as it is.
tools:  ## Install the client tools the tests use (ssh, git, kubectl) when missing
	@missing=""; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	command -v git >/dev/null || missing="$$missing git"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

images: docker  ## Build the example and test images locally (no registry needed)
	@bash examples/images/build.sh

demo: venv images lab  ## Set up everything: lab cluster, examples converged, status printed
	$(BIN)/reconcile --validate examples/manifests
	$(BIN)/reconcile --scope demo examples/manifests
	$(BIN)/podyard --scope demo get pods -o wide
	$(BIN)/podyard --scope demo get rc
	$(BIN)/podyard --scope demo get svc
	@echo "the primer's mysql + myweb (examples/primer/), in a scope of their own:"
	$(BIN)/reconcile --scope primer examples/primer
	$(BIN)/podyard --scope primer get svc,endpoints 2>/dev/null || $(BIN)/podyard --scope primer get svc
	@echo "the lab: examples/lab/ pushed to the master's manifest repository, applied by its controller:"
	bash examples/lab/push.sh

test: venv images tools  ## Run every tier: unit, docker, lab
	$(PYTEST) -m "unit or docker or lab"

test-unit: venv  ## Pure code only, no Docker
	$(PYTEST) -m unit

test-docker: venv images tools  ## Against the local Docker engine
	$(PYTEST) -m docker

test-lab: venv images tools  ## Against the Ansible-provisioned lab hosts
	$(PYTEST) -m lab

lint: venv  ## ruff, mypy (strict), the import contracts and ansible-lint (production profile)
	$(BIN)/ruff check reconciler tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint

lab: venv docker tools  ## Start the lab hosts (containers acting as machines) and run site.yml on them
	$(BIN)/ansible-playbook -i inventory/lab playbooks/lab_up.yml
	$(BIN)/ansible-playbook -i inventory/lab site.yml

lab-down: venv  ## Remove exactly what `make lab` made (the host image stays as a cache)
	$(BIN)/ansible-playbook -i inventory/lab playbooks/lab_down.yml

bench: venv images  ## The benchmarks, each rewriting its bench/results/<name>.md (the lab's: bench-lab)
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/manifests.py
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/converge.py --pods 100 --idle-pods 500 --parallelism 8 --rounds 2
	$(BIN)/python bench/watch.py --rounds 5
	$(BIN)/python bench/services.py

# The API's benchmark needs the lab that bench/lab.py has just provisioned: it stays up.
bench-lab: venv docker tools  ## Time the lab from nothing, its idempotent second run, then kubectl over 500 pods
	$(BIN)/python bench/lab.py --cold --keep --output bench/results/lab.md
	$(BIN)/python bench/api.py

clean:  ## Remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .hypothesis
