# make demo | make test | make test-fast | make test-floor | make bench
# The venv is built once: pyproject.toml's ranges, at the exact versions of constraints.txt (torch and torchvision
# from pip's local wheels).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast test-floor test-gpu gpu-wheels bench browser slurm tmux clean

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	# compat: the checkout itself goes on sys.path, so Hydra's plugin scan sees hydra_plugins/ from any directory
	# pip writes bytecode on one core; compileall -j 0 writes the same on every core (~25 s sooner here). Without
	# it nothing would: the environment may set PYTHONDONTWRITEBYTECODE, and every process would compile torch.
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
		>/dev/null || true  # a package's own py2-era test files do not compile; pip ignores them too
	touch $@

demo: $(VENV)/.installed  ## conv1..conv5 of an untrained ResNet50 inverted as one batch (W&B offline), and its report
	$(PY) -m representation_probe invert experiment=demo hydra.run.dir=outputs/demo
	$(PY) -m representation_probe report outputs/demo

test: $(VENV)/.installed browser slurm tmux  ## the whole suite, slow tests included (what CI runs), on every core
	$(PY) -m pytest -n auto --dist loadgroup

test-fast: $(VENV)/.installed  ## skips the subprocess and end-to-end tests
	$(PY) -m pytest -n auto --dist loadgroup -m "not slow"

FLOOR ?= .venv-floor
test-floor:  ## the fast suite in a venv of the ranges' floors (constraints-floor.txt; downloads them from PyPI)
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --quiet -c constraints-floor.txt -e '.[test]' --config-settings editable_mode=compat
	$(FLOOR)/bin/python -m pytest -n auto --dist loadgroup -m "not slow"

# The GPU machine brings its own Python 3.12 and torch (`make test-gpu PYTHON=python3`: that interpreter as it is,
# the checkout on PYTHONPATH); what it lacks comes from .whl/ (`make gpu-wheels`, here), installed into a temp dir.
GIVEN_PYTHON := $(filter command line environment,$(origin PYTHON))
GPU_PY := $(if $(GIVEN_PYTHON),$(PYTHON),$(PY))
GPU_WHEELS := hydra-core omegaconf antlr4-python3-runtime submitit wandb optuna hydra-submitit-launcher \
	hydra-optuna-sweeper

test-gpu: $(if $(GIVEN_PYTHON),,$(VENV)/.installed)  ## every command on one CUDA device + bench/gpu_bench.py -> gpu_check/ (no GPU: the CPU, smallest sizes)
	@site=$$(mktemp -d); trap 'rm -rf "$$site"' EXIT; \
	if ls .whl/*.whl >/dev/null 2>&1; then \
		$(GPU_PY) -m pip install --quiet --no-index --no-deps --target "$$site" .whl/*.whl || exit 1; fi; \
	PYTHONPATH="$(CURDIR):$$site$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PY) bench/gpu_check.py --out gpu_check

gpu-wheels: $(VENV)/.installed  ## what the GPU machine lacks, as this venv pins it, for CPython 3.12 manylinux x86-64, into .whl/
	rm -rf .whl && mkdir .whl
	pins=$$($(PY) -c "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' for p in '$(GPU_WHEELS)'.split()))"); \
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --dest .whl --python-version 3.12 --implementation cp \
		--abi cp312 --abi none --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
		$$(printf '%s\n' $$pins | grep -v antlr4) && \
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir .whl $$(printf '%s\n' $$pins | grep antlr4)  # it ships no wheel
	@du -ch .whl/*.whl | tail -1

bench: $(VENV)/.installed  ## on a quiet machine; figures and their reading in bench/RESULTS.md
	$(PY) bench/invert_bench.py --bf16-until 0.5
	$(PY) bench/time_to_quality.py --bf16-until 0.5
	$(PY) bench/pipeline_bench.py
	$(PY) bench/train_bench.py
	OMP_NUM_THREADS=1 $(PY) bench/mlp_bench.py --steps 2000 --repeats 3 --threads 1
	$(PY) bench/gpu_bench.py
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/similarity_bench.py
	# the peer for inversion, without its dependencies' dependencies (it must not move torch)
	$(PY) -m pip install --quiet --no-deps plenoptic==2.1.1 pyrtools==1.1.1 einops==0.8.2 pooch==1.9.0 importlib_resources==7.1.0
	$(PY) bench/plenoptic_bench.py

browser:  ## Debian's chromium, for the test that screenshots the HTML report
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "warning: chromium not installed; the report screenshot test will be skipped"

tmux:  ## for the test that reads W&B's terminal viewer (wandb leet) off a tmux pane
	@command -v tmux >/dev/null || (apt-get update -qq && apt-get install -y -qq tmux) \
		|| echo "warning: tmux not installed; the wandb leet test will be skipped"

slurm:  ## Debian's SLURM and munge, for the tests that start a one-node cluster (tests/slurm_cluster.py)
	@PATH="$$PATH:/usr/sbin:/sbin"; for tool in slurmctld slurmd munged sbatch srun; do command -v $$tool >/dev/null || missing=1; done; \
		[ -z "$$missing" ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			slurmctld slurmd slurm-client munge >/dev/null) \
		|| echo "warning: SLURM not installed; the tests on a local SLURM cluster will be skipped"

clean:
	rm -rf $(VENV) $(FLOOR) outputs multirun
