# Two commands for a newcomer: `make run` and `make test`. Both create .venv
# on first use and install the project into it; nothing is installed by hand.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCENARIO ?= examples/scenarios/pi_server.yaml
SHARED   ?= examples/scenarios/shared_edge.yaml

.PHONY: run test bench surrogate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

MODEL    ?= build/digits-resnet32

# The analytic prediction, then the simulation of the same scenario (compiled
# kernel), then two chains sharing devices with bursts (event engine); then a
# real early-exit network: trained and calibrated on digits (about a minute),
# profiled on this host, and its accuracy-latency trade-off per threshold; and
# the exit thresholds that keep its device's loss under 1% at 500 jobs/s; last,
# the talk's testbed (CEED's profile, from ../shared): the latency-optimal ILP
# placement against the loss-aware one, written as a scenario and simulated; and
# the trained network split over two emulated devices, run for real for 20 s
# beside its twin; last, the shipped learned twin judged on ChainNet's
# published deployments (its parity plot: build/surrogate-parity.png), and
# used to place the two chains of two_cameras together.
TESTBED ?= examples/scenarios/testbed_ceed.yaml
run: $(STAMP)
	$(BIN)/edgeperf analyze $(SCENARIO)
	$(BIN)/edgeperf simulate $(SCENARIO)
	$(BIN)/edgeperf simulate $(SHARED)
	$(BIN)/edgeperf train-exits --out $(MODEL)
	$(BIN)/edgeperf profile $(MODEL) --out $(MODEL)/profile.json
	$(BIN)/edgeperf exits $(MODEL) --profile $(MODEL)/profile.json --plot $(MODEL)/exits.png
	$(BIN)/edgeperf schedule examples/scenarios/digits_pi.yaml --exit-table $(MODEL)/exit_table.npz \
		--policy bayes --loss-target 0.01 --simulate
	@if [ -d ../shared/data/ceed ]; then \
		$(BIN)/edgeperf place $(TESTBED) --method ilp && \
		$(BIN)/edgeperf place $(TESTBED) --method loss-aware --out build/testbed-placed.yaml && \
		$(BIN)/edgeperf simulate build/testbed-placed.yaml; \
	else echo "make run: ../shared/data/ceed not found, skipping the testbed placement"; fi
	$(BIN)/edgeperf run examples/scenarios/digits_split.yaml --duration 20
	@if [ -d ../shared/data/chainnet/val ]; then \
		$(BIN)/edgeperf surrogate evaluate models/surrogate/chainnet.safetensors \
			--chainnet ../shared/data/chainnet/val --samples 1000 --plot build/surrogate-parity.png; \
	else echo "make run: ../shared/data/chainnet/val not found, skipping the surrogate's evaluation"; fi
	$(BIN)/edgeperf place examples/scenarios/two_cameras.yaml --method surrogate --time-budget-s 5 \
		--out build/cameras-placed.yaml
	$(BIN)/edgeperf surrogate predict build/cameras-placed.yaml

# pytest exits 5 when it collected no test: that is a failure, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	exit $$rc

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# Retrain the shipped learned twins from scratch: 19,000 deployments of
# ChainNet's regime and 4,000 of ours labelled by the simulator (about 30
# minutes on 2 cores), then the two trainings (about 30 more).
SURROGATE_DATA := build/surrogate/chainnet_3000.npz build/surrogate/chainnet_4000b.npz \
	build/surrogate/chainnet_4000_s5.npz build/surrogate/chainnet_4000_s6.npz \
	build/surrogate/chainnet_4000_s7.npz
surrogate: $(STAMP)
	mkdir -p build/surrogate
	$(BIN)/edgeperf surrogate generate --out build/surrogate/chainnet_3000.npz --samples 3000 --seed 1
	$(BIN)/edgeperf surrogate generate --out build/surrogate/chainnet_4000b.npz --samples 4000 --seed 4
	for s in 5 6 7; do $(BIN)/edgeperf surrogate generate \
		--out build/surrogate/chainnet_4000_s$$s.npz --samples 4000 --seed $$s || exit 1; done
	$(BIN)/edgeperf surrogate generate --out build/surrogate/edgeperf_4000_s8.npz --samples 4000 \
		--seed 8 --regime edgeperf
	$(BIN)/edgeperf surrogate train $(SURROGATE_DATA) --out models/surrogate
	$(BIN)/edgeperf surrogate train $(SURROGATE_DATA) build/surrogate/edgeperf_4000_s8.npz \
		--out models/surrogate --name chainnet_edgeperf --end-to-end

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
