#!/usr/bin/env bash
# Debian packages the test suite uses to look at reports as a person would:
# headless Chromium (HTML) and poppler-utils (PDF → images/text). Installed only when missing,
# only as root; otherwise the tests that need them skip with a reason.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${need[*]} not installed (not root or no apt-get); report rendering tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null 2>&1 \
  || echo "note: could not install ${need[*]}; report rendering tests will skip" >&2
exit 0
