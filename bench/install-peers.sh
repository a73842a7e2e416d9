#!/usr/bin/env bash
# Install the benchmark peers (bench/requirements-peers.txt) into their own venv, .bench-venv.
#
# A separate venv keeps wandb/MLflow and their large dependency trees out of Stemma's .venv,
# so the benchmark's Stemma numbers are measured with exactly Stemma's own dependencies.
# Idempotent: a stamp file records the hash of the requirements file and the install is
# skipped while it matches. Non-interactive; works as root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/.bench-venv"
reqs="$here/requirements-peers.txt"
stamp="$venv/.peers-installed"
python="${PYTHON:-python3}"

want="$(sha256sum "$reqs" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bench peers up to date in $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$reqs"
# Fail now, not in the middle of a benchmark, if a peer does not import.
"$venv/bin/python" -c "import mlflow, wandb; print('wandb', wandb.__version__, '/ mlflow', mlflow.__version__)"
echo "$want" > "$stamp"
echo "bench peers installed in $venv"
