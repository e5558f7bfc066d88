# Sourced by the scripts: puts the project's .venv first on PATH when it exists.
if [ -x "$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/python" ]; then
    PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH"
    export PATH
fi
