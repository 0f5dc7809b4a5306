#!/usr/bin/env bash
# Installs the system programs the tests drive: Chromium (browser tests), redis-server and
# redis-cli (Hub tests, Redis Cluster), nats-server (the NATS hub, with JetStream), and checks
# for pyenv's Python 2.7.18 (Autobahn|Testsuite, the conformance run, is Python 2 only).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)

PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
PYENV="$(command -v pyenv || echo "$PYENV_ROOT/bin/pyenv")"
need_python2=0
if [ -z "${AUTOBAHN_PYTHON2:-}" ] && ! { [ -x "$PYENV" ] && "$PYENV" prefix 2.7.18 >/dev/null 2>&1; }; then
  need_python2=1
  # What pyenv needs to build CPython 2.7.
  for package in build-essential libssl-dev zlib1g-dev libbz2-dev libreadline-dev \
                 libsqlite3-dev libffi-dev; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]}; install them with your package manager" >&2
    exit 0
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "system-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$need_python2" -eq 1 ]; then
  if [ -x "$PYENV" ]; then
    echo "system-deps: building Python 2.7.18 with pyenv (a few minutes, once)"
    PYENV_ROOT="$PYENV_ROOT" "$PYENV" install -s 2.7.18 \
      || echo "system-deps: pyenv could not build 2.7.18; set AUTOBAHN_PYTHON2 to a Python 2.7" >&2
  else
    echo "system-deps: no pyenv; set AUTOBAHN_PYTHON2 to a Python 2.7 for the conformance run" >&2
  fi
fi
