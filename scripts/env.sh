# Sourced by the run/test scripts: keep caches and noisy libraries out of $HOME and the terminal.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-${TMPDIR:-/tmp}/weightshare-mpl}"
export KERAS_HOME="${KERAS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/weightshare/keras}"
export PYTHONDONTWRITEBYTECODE=1
