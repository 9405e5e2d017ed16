#!/bin/bash
# Runs inside the fresh Debian root (scripts/fresh-machine-check), as root, as a new user
# would: clone the commit under test, then the README's two commands. Writes its logs and
# the screenshot to /fresh-io (the host's output folder).
#   inside.sh COMMIT
# The two runs of Hookline happen offline (inside.sh COMMIT --offline): in a network
# namespace of their own with only loopback, so that their webhook port (8787) and X
# display cannot meet whatever the host runs; they need no network.
set -euo pipefail
commit="$1"
io=/fresh-io
project=/root/hookline
RUN_WITHIN=30      # seconds: the demo area's first run must be in the log by then
WINDOW_WITHIN=90   # seconds: the window must be on the virtual screen by then

say() { printf '\033[1m==> fresh machine: %s\033[0m\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }
phase_start=$SECONDS
phase() {  # phase KEY [WHAT]: the time the previous phase took goes to the timings file
  [ -z "${phase_name:-}" ] || echo "$phase_name $((SECONDS - phase_start))s" >>"$io/timings"
  phase_name="$1"; phase_start=$SECONDS
  [ -z "${2:-}" ] || say "$2"
}

# Brings up loopback in a new network namespace (no iproute2 on a fresh machine), then
# runs the command: SIOCGIFFLAGS, SIOCSIFFLAGS with IFF_UP.
LOOPBACK_UP='import fcntl, os, socket, struct, sys
sock = socket.socket()
ifreq = fcntl.ioctl(sock, 0x8913, struct.pack("16sH22x", b"lo", 0))
flags = struct.unpack("16sH22x", ifreq)[1]
fcntl.ioctl(sock, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))
os.execvp(sys.argv[1], sys.argv[1:])'

stop_group() {  # SIGINT (Hookline's Ctrl+C), then SIGKILL, to a process group
  local pgid="$1" waited=0
  kill -INT -- "-$pgid" 2>/dev/null || return 0
  while kill -0 -- "-$pgid" 2>/dev/null && [ "$waited" -lt 20 ]; do sleep 0.5; waited=$((waited + 1)); done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

if [ "${2:-}" != --offline ]; then
  phase clone "git clone of $commit"
  git clone -q --no-checkout /src/hookline.git "$project"
  git -C "$project" -c advice.detachedHead=false checkout -q --detach "$commit"
  cd "$project"

  phase test "scripts/dev test (the README's test command)"
  scripts/dev test 2>&1 | tee "$io/test.log" || fail "scripts/dev test (log: test.log)"

  phase xvfb "apt-get install xvfb (this check's own tool)"
  # Installed after scripts/dev, so it cannot supply what the app lacks: xvfb brings no
  # libxcb-* utility library that Qt's xcb platform needs.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends xvfb >"$io/xvfb-install.log" 2>&1 ||
    { cat "$io/xvfb-install.log"; fail "apt-get install xvfb"; }
  phase ""
  exec unshare --net -- python3 -c "$LOOPBACK_UP" /bin/bash "$0" "$commit" --offline
fi
cd "$project"

phase run "scripts/dev run, headless (the README's run command)"
data=/root/hookline-headless
setsid scripts/dev run --data-dir "$data" >"$io/run.log" 2>&1 &
run_pid=$!
started=$SECONDS
until grep -qs 'run #1 of area .*: succeeded' "$data/logs/hookline.log"; do
  kill -0 "$run_pid" 2>/dev/null || { cat "$io/run.log"; fail "scripts/dev run exited (log: run.log)"; }
  [ $((SECONDS - started)) -lt "$RUN_WITHIN" ] || { cat "$io/run.log"; fail "no run of the demo area in $data/logs/hookline.log within ${RUN_WITHIN}s"; }
  sleep 1
done
say "the demo area ran after $((SECONDS - started))s: $(grep -m1 'run #1 of area' "$data/logs/hookline.log")"
stop_group "$run_pid"
wait "$run_pid" 2>/dev/null || true

phase window "scripts/dev run with a display (Xvfb): the window, and a screenshot"
mkdir -p /tmp/fb
rm -f /tmp/displayfd
setsid Xvfb -displayfd 3 -screen 0 1280x800x24 -fbdir /tmp/fb -nolisten tcp -br 3>/tmp/displayfd \
  >"$io/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 50); do [ -s /tmp/displayfd ] && break; sleep 0.2; done
[ -s /tmp/displayfd ] || { cat "$io/xvfb.log"; fail "Xvfb did not start"; }
display=":$(head -1 /tmp/displayfd)"
data=/root/hookline-window
DISPLAY="$display" setsid scripts/dev run --data-dir "$data" >"$io/window.log" 2>&1 &
app_pid=$!
started=$SECONDS
shown=""
while [ $((SECONDS - started)) -lt "$WINDOW_WITHIN" ]; do
  sleep 2
  kill -0 "$app_pid" 2>/dev/null || { cat "$io/window.log"; fail "the app exited under Xvfb (log: window.log)"; }
  if python3 "$io/xwd2png.py" /tmp/fb/Xvfb_screen0 >/dev/null; then shown=yes; break; fi
done
[ -n "$shown" ] || { cat "$io/window.log"; python3 "$io/xwd2png.py" /tmp/fb/Xvfb_screen0 "$io/screenshot.png" || true
                     fail "nothing on the virtual screen after ${WINDOW_WITHIN}s (screenshot.png)"; }
sleep 3  # let it finish drawing
shot="$(python3 "$io/xwd2png.py" /tmp/fb/Xvfb_screen0 "$io/screenshot.png")" ||
  fail "the screen went blank (screenshot.png): $shot"
say "screenshot after $((SECONDS - started))s: $shot"
kill -0 "$app_pid" 2>/dev/null || { cat "$io/window.log"; fail "the app exited after drawing (log: window.log)"; }
grep -E 'qt\.qpa' "$io/window.log" || true  # Qt's platform warnings, for the record
if grep -E 'Could not load|Fatal|Traceback' "$io/window.log"; then fail "errors from the app under Xvfb (log: window.log)"; fi
stop_group "$app_pid"
wait "$app_pid" 2>/dev/null || true
stop_group "$xvfb_pid"
phase ""
say "inside: all good"
