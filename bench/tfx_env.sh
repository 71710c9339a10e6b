#!/usr/bin/env bash
# Build TFX 1.16 in its own virtual environment, beside the project and never in its locks, for bench/tfx_compare.py.
#
#   bash bench/tfx_env.sh [VENV]      (default: $KFP_TABULAR_CACHE/tfx-1.16, else ~/.cache/kfp-tabular/tfx-1.16)
#
# TFX 1.16 declares Python < 3.11; it is installed with --ignore-requires-python. Every package TFX shares with the
# project's pipeline environment is constrained to the version in locks/pipeline.txt (hashes dropped), so TFDV,
# tfx-bsl, TensorFlow, Beam, pyarrow and pandas are the very versions our validate step runs. A package whose locked
# version TFX refuses (pip names it) is left unconstrained and listed in $VENV/unconstrained.txt.
# The venv is marked complete by $VENV/.installed once TFX imports; a failed build leaves the log in $VENV.log and
# exits non-zero (running it again resumes in the same venv).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${KFP_TABULAR_CACHE:-$HOME/.cache/kfp-tabular}/tfx-1.16}"
python="${TFX_PYTHON:-python3.11}"
log="$venv.log"
if [[ -f "$venv/.installed" ]]; then
  echo "tfx env: $venv (ready)"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
: >"$log"
echo "tfx env: building $venv with $($python --version) (log: $log)"
# A venv left by an interrupted or failed build is reused: pip keeps what is already installed.
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >>"$log" 2>&1

# name==version lines of the lock, without hashes, comments or continuation lines.
constraints="$venv/constraints.txt"
sed -nE 's/^([A-Za-z0-9._-]+==[^ ;\\]+).*/\1/p' "$here/locks/pipeline.txt" >"$constraints"
: >"$venv/unconstrained.txt"
for attempt in $(seq 1 25); do
  if "$venv/bin/pip" install --disable-pip-version-check --ignore-requires-python -c "$constraints" \
      tfx==1.16.0 dill >>"$log" 2>&1; then
    # dill: tfx-bsl imports it, but Beam 2.72 only brings it with its [dill] extra (the project's lock has it).
    if ! versions=$("$venv/bin/python" -c 'import tfx, tensorflow_data_validation as t
from tfx.v1.orchestration import LocalDagRunner
print("tfx", tfx.__version__, "tfdv", t.__version__)' 2>>"$log"); then
      echo "tfx env: FAILED: tfx installed in $venv but does not import; last lines of $log:" >&2
      tail -n 15 "$log" >&2
      exit 1
    fi
    touch "$venv/.installed"
    echo "tfx env: ready ($versions)"
    [[ -s "$venv/unconstrained.txt" ]] && echo "tfx env: left unconstrained (TFX needs other versions): $(tr '\n' ' ' <"$venv/unconstrained.txt")"
    exit 0
  fi
  # "The conflict is caused by: The user requested (constraint) kfp-pipeline-spec==0.6.0 ..." -> drop that pin.
  conflicts=$(sed -nE 's/.*The user requested \(constraint\) ([A-Za-z0-9._-]+)==.*/\1/p' "$log" | sort -u)
  dropped=0
  for name in $conflicts; do
    if grep -qiE "^${name}==" "$constraints"; then
      grep -viE "^${name}==" "$constraints" >"$constraints.new" && mv "$constraints.new" "$constraints"
      echo "$name" >>"$venv/unconstrained.txt"
      echo "tfx env: attempt $attempt: TFX refuses the locked $name; leaving it unconstrained"
      dropped=1
    fi
  done
  [[ $dropped == 1 ]] || break
done
echo "tfx env: FAILED to install tfx==1.16.0 in $venv; last lines of $log:" >&2
tail -n 25 "$log" >&2
exit 1
