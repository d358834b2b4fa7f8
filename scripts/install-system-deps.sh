#!/usr/bin/env bash
# Installs the system programs the tests drive for real: Chromium (browser tests) and OpenSSH's sshd
# (SFTP tests). Debian/Ubuntu with apt; run as root (CI) or through sudo. Idempotent and quick when present.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing ${missing[*]} (apt)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
