#!/usr/bin/env bash
# Install the real DICOM peers the tests use (Debian packages), only when missing.
#   dcmtk: storescu, storescp, echoscu, findscu, movescu   orthanc: /usr/sbin/Orthanc   tmux: end-to-end TUI test
#   openssl: TLS test certificates   systemd: systemd-analyze verify of contrib/rtstation.service
#   curl: the control API over its Unix socket, as the README shows it
#   dicom3tools: dciodvfy checks the derived series ([DERIVE]) and the de-identified copies ([ANON]) against their IODs
set -euo pipefail
missing=()
[[ -x /usr/bin/storescu && -x /usr/bin/storescp && -x /usr/bin/echoscu ]] || missing+=(dcmtk)
[[ -x /usr/sbin/Orthanc ]] || missing+=(orthanc)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[[ -x /usr/bin/openssl ]] || missing+=(openssl)                # test certificates for DICOM TLS
[[ -x /usr/bin/systemd-analyze ]] || missing+=(systemd)        # checks contrib/rtstation.service
[[ -x /usr/bin/curl ]] || missing+=(curl)                      # the control API's README examples (--unix-socket)
[[ -x /usr/bin/dciodvfy ]] || missing+=(dicom3tools)           # IOD check of derived series and anonymized copies
if (( ${#missing[@]} == 0 )); then exit 0; fi
echo "install-peers: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d 101: the orthanc package must not start its system service; tests start their own on loopback
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
