# shellcheck shell=bash
# Shell helper, sourced by the scripts in scripts/: the Debian mirror this
# machine's apt sources already use, so that nothing here names a host.

# Print the first Debian (non-security) mirror URI in the machine's apt
# sources, deb822 (*.sources) or one-line (sources.list); nothing if none.
mirror_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            /^[[:space:]]*$/ { if (debian && uri) { print uri; exit } uri=""; debian=0; next }
            /^URIs:/ { uri=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) debian=1 }
            END { if (debian && uri) print uri }
        ' "$f" | grep -v security | head -n 1
    done
    if [ -f /etc/apt/sources.list ]; then
        awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list
    fi
}

# The mirror, or exit with a message naming the calling script ($1).
require_mirror_uri() {
    local uri
    uri=$(mirror_uri | head -n 1)
    if [ -z "$uri" ]; then
        echo "$1: found no Debian mirror in /etc/apt/sources.list*" >&2
        exit 1
    fi
    printf '%s\n' "$uri"
}
