#!/usr/bin/env bash
# Installs what railbot needs from the operating system, only where it is missing, on Debian or Ubuntu:
# Mosquitto (the tests start their own brokers), the libraries OpenCV loads (libgl1, libglib2.0-0),
# a C++ compiler (hnswlib builds from source), a C compiler (the MCU frame codec's tests), and uv (into .tools/ with pip) when it is not on PATH.
# With --bench, also wrk (the HTTP load generator the benchmarks use).
# Prints the path of the uv to use as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
if [ "${1:-}" = "--bench" ]; then
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
fi
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || [ -x /usr/bin/mosquitto_passwd ] || missing+=(mosquitto)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
for lib in libgl1 libglib2.0-0; do
    dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "install ok installed" || missing+=("$lib")
done
uv_bin=$(command -v uv || true)
if [ -z "$uv_bin" ] && [ ! -x .tools/bin/uv ]; then
    python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing from apt: ${missing[*]}" >&2
    as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    # Debian starts the packaged broker on port 1883; the tests never use it, so it is left as it is.
fi

if [ -z "$uv_bin" ]; then
    if [ ! -x .tools/bin/uv ]; then
        echo "setup: installing uv $UV_VERSION into .tools/ with pip" >&2
        python3 -m venv .tools >&2
        .tools/bin/python -m pip install -q "uv==$UV_VERSION" >&2
    fi
    uv_bin=$PWD/.tools/bin/uv
fi
echo "$uv_bin"
