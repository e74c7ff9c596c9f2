#!/usr/bin/env bash
# Load a page in headless Chromium and check what a person would see there:
# the page's text after the browser parsed it (tags removed, character
# references decoded, whitespace collapsed), and which elements exist. Works
# on a file (file:///…/flux.html#failing, from `flux-reporter report -o html`)
# and on the operator's pages (http://127.0.0.1:9080/…, through
# `kubectl port-forward`).
#
#   hack/browser-check.sh URL [CHECK]... [--screenshot FILE] [--size W,H]
#
# Checks, each as often as needed:
#   --text TEXT        TEXT is in the page's text
#   --no-text TEXT     TEXT is not
#   --no-element NAME  no <NAME> element in the page (e.g. img: an <img …>
#                      from a message must be text, not an element)
#   --dom TEXT         TEXT is in the serialized DOM (markup, as Chromium writes it)
#
# --screenshot FILE writes a PNG of the top of the page, --size its window
# (default 1280,1600). --dom-out FILE keeps the DOM. CHROMIUM names the
# browser (default: chromium, then chromium-browser). Exit 0 when every check
# holds, 1 when one does not (each is named), 2 when the page could not be
# loaded or Chromium is missing.
set -euo pipefail

die() { echo "browser-check: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: $0 URL [--text T] [--no-text T] [--no-element NAME] [--dom T] [--screenshot FILE] [--size W,H] [--dom-out FILE]"
url=$1
shift
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$chromium" ] || die "Chromium is not installed: apt-get install -y chromium (Debian; .ci/run installs it), or set CHROMIUM to the browser's path"

size=1280,1600
screenshot=
dom_out=
checks=()
while [ $# -gt 0 ]; do
  case $1 in
    --text|--no-text|--no-element|--dom)
      [ $# -ge 2 ] || die "$1 needs a value"
      checks+=("$1" "$2"); shift 2 ;;
    --screenshot) screenshot=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --dom-out) dom_out=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
  esac
done

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No sandbox (CI runs as root), no GPU, nothing fetched but the page itself.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-extensions --user-data-dir="$profile" --hide-scrollbars
  --force-device-scale-factor=1 --window-size="$size")

dom=$(timeout 60 "$chromium" "${flags[@]}" --dump-dom "$url" 2>"$profile/stderr") ||
  die "Chromium could not load $url: $(tail -3 "$profile/stderr")"
[ -n "$dom" ] || die "Chromium returned an empty page for $url"
if [ -n "$dom_out" ]; then printf '%s\n' "$dom" >"$dom_out"; fi

# The page's text: tags out, references decoded (&amp; last), spaces collapsed.
text=$(printf '%s' "$dom" | sed -e 's/<[^>]*>/ /g' \
  -e 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&#39;/'"'"'/g; s/&nbsp;/ /g; s/&amp;/\&/g' |
  tr -s '[:space:]' ' ')

failed=0
i=0
while [ $i -lt ${#checks[@]} ]; do
  kind=${checks[$i]}
  value=${checks[$((i + 1))]}
  i=$((i + 2))
  case $kind in
    --text) grep -qF -- "$value" <<<"$text" || { echo "browser-check: FAIL: text not shown: $value"; failed=1; } ;;
    --no-text) ! grep -qF -- "$value" <<<"$text" || { echo "browser-check: FAIL: text shown: $value"; failed=1; } ;;
    --no-element) ! grep -qiE "<$value([[:space:]>/]|$)" <<<"$dom" || { echo "browser-check: FAIL: a <$value> element is in the page"; failed=1; } ;;
    --dom) grep -qF -- "$value" <<<"$dom" || { echo "browser-check: FAIL: not in the DOM: $value"; failed=1; } ;;
  esac
done

if [ -n "$screenshot" ]; then
  rm -f "$screenshot"
  timeout 60 "$chromium" "${flags[@]}" --screenshot="$screenshot" "$url" >/dev/null 2>&1 || true
  [ -s "$screenshot" ] || die "Chromium wrote no screenshot of $url"
fi

if [ $failed -ne 0 ]; then
  exit 1
fi
echo "browser-check: ok: $url ($(( ${#checks[@]} / 2 )) checks)"
