#!/usr/bin/env bash
# A VIA program for ../shared/agents-offline/run_all.sh: headroom's proxy between each CLI and the fake upstream.
#
#   via_headroom.sh start AGENT SCENARIO UPSTREAM_URL   # prints the base URL the CLI should use
#   via_headroom.sh stop AGENT SCENARIO
#
# Each run gets its own proxy (`headroom proxy --port 0`, the OS picks the port, read back from the proxy's
# registration, state/proxy-<pid>.json, so two runs never race for one) and its own HEADROOM_HOME, $VIA_DIR/<agent>-<scenario>/:
# the stats database, the CCR originals and state/logs/daemon.log stay there for inspection, next to
# $VIA_DIR/<agent>-<scenario>.log (the proxy's stderr). All three upstreams are UPSTREAM_URL.
#
# Knobs: HEADROOM_BIN (default: the repository's .venv/bin/headroom), VIA_DIR (default
# ${TMPDIR:-/tmp}/headroom-via), HEADROOM_VIA_MODE (ccr or lossless; default ccr),
# HEADROOM_VIA_VERBOSE=1 (debug log), HEADROOM_VIA_HOME (one HEADROOM_HOME for every run, kept, so that one
# database collects them all: bench/holdout_bench.py), HEADROOM_VIA_HOLDOUT (`[proxy] holdout` in its config.toml).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${HEADROOM_BIN:-$here/../.venv/bin/headroom}"
dir="${VIA_DIR:-${TMPDIR:-/tmp}/headroom-via}"
cmd=${1:?usage: via_headroom.sh start|stop AGENT SCENARIO [UPSTREAM_URL]}
agent=${2:?agent} scen=${3:?scenario}
home="${HEADROOM_VIA_HOME:-$dir/$agent-$scen}"
pidf="$dir/$agent-$scen.pid"
logf="$dir/$agent-$scen.log"

case $cmd in
  start)
    up=${4:?upstream URL}
    mkdir -p "$dir"
    [ -n "${HEADROOM_VIA_HOME:-}" ] || rm -rf "$home"
    mkdir -p "$home"
    if [ -n "${HEADROOM_VIA_HOLDOUT:-}" ]; then
      printf '[proxy]\nholdout = %s\n' "$HEADROOM_VIA_HOLDOUT" >"$home/config.toml"
    fi
    extra=()
    [ "${HEADROOM_VIA_VERBOSE:-0}" = 1 ] && extra+=(--verbose)
    [ -n "${HEADROOM_VIA_MODE:-}" ] && extra+=(--mode "$HEADROOM_VIA_MODE")
    HEADROOM_HOME="$home" "$bin" proxy --host 127.0.0.1 --port 0 \
      --anthropic-upstream "$up" --openai-upstream "$up" --gemini-upstream "$up" "${extra[@]}" \
      </dev/null >"$logf" 2>&1 &
    echo $! >"$pidf"
    state="$home/state/proxy-$(cat "$pidf").json"  # a standalone proxy's own registration
    for _ in $(seq 1 300); do
      if ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
        echo "headroom proxy exited at start: $(tail -3 "$logf")" >&2
        exit 1
      fi
      if [ -s "$state" ]; then
        url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$state" 2>/dev/null) || url=""
        if [ -n "$url" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1)' "$url" 2>/dev/null; then
          echo "$url"
          exit 0
        fi
      fi
      sleep 0.1
    done
    echo "headroom proxy did not answer /healthz within 30 s: $(tail -3 "$logf")" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidf" ] || exit 0
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null
    # The proxy was started by an earlier `start` that has exited, so it is nobody's child here: once it exits
    # it may stay a zombie until init reaps it, which `kill -0` cannot tell from running.
    gone() { ! kill -0 "$pid" 2>/dev/null || [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; }
    for _ in $(seq 1 100); do
      gone && break
      sleep 0.05
    done
    gone || { echo "headroom proxy $pid ignored SIGTERM for 10 s; killing it" >&2; kill -9 "$pid"; }
    rm -f "$pidf"
    exit 0
    ;;
  *)
    echo "usage: via_headroom.sh start AGENT SCENARIO UPSTREAM_URL | stop AGENT SCENARIO" >&2
    exit 2
    ;;
esac
