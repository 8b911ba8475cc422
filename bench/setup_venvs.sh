#!/usr/bin/env bash
# Create the competitors' virtualenvs outside the repository:
#   $THUMBSVC_BENCH_VENVS/pyvips   pyvips + pyvips-binary (libvips inside the wheel) + numpy
#   $THUMBSVC_BENCH_VENVS/thumbor  thumbor 7.8 (its own Pillow)
# Idempotent: a venv whose marker file exists is left alone (pass --force to rebuild).
set -euo pipefail

VENVS="${THUMBSVC_BENCH_VENVS:-$HOME/.cache/thumbsvc-bench}"
PYTHON="${PYTHON:-python3}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1
mkdir -p "$VENVS"

make_venv() {
    local name="$1"; shift
    local dir="$VENVS/$name"
    if [[ $FORCE == 0 && -f "$dir/.ready" ]]; then
        echo "$name: ready at $dir"
        return
    fi
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip
    "$dir/bin/pip" install --quiet "$@"
    touch "$dir/.ready"
    echo "$name: installed at $dir"
}

make_venv pyvips "pyvips>=3.2" "pyvips-binary>=8.18" "numpy>=1.26"
"$VENVS/pyvips/bin/python" -c "import pyvips; print('pyvips', pyvips.__version__, 'libvips', pyvips.version(0), pyvips.version(1), pyvips.version(2))"

make_venv thumbor "thumbor==7.8.*"
"$VENVS/thumbor/bin/python" -c "import thumbor, PIL; print('thumbor', thumbor.__version__, 'Pillow', PIL.__version__)"
