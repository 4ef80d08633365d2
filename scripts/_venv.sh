# Shared by scripts/demo and scripts/test: a project virtualenv with annotate installed.
# VENV overrides where it lives (default: .venv in the repository).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check --upgrade pip
fi

# install_project SPEC NAME: pip install SPEC (e.g. "$ROOT" or "-e $ROOT[test]") unless nothing the
# install reads changed since the last install under NAME. Quiet: pip's warnings about this machine's
# package indexes are not the project's; errors still show.
install_project() {
  local stamp="$VENV/.installed-$2"
  if [ -f "$stamp" ] && [ -z "$(cd "$ROOT" && find pyproject.toml annotate hit_templates examples training \
        -newer "$stamp" -type f -not -path '*/__pycache__/*' -print -quit 2>/dev/null)" ]; then
    return 0
  fi
  # shellcheck disable=SC2086  # SPEC may hold two words (-e PATH)
  rm -f "$VENV"/.installed-*  # an editable and a plain install replace each other
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check $1
  touch "$stamp"
}
