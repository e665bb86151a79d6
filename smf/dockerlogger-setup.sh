#!/bin/sh
#
# SMF method for svc:/smartdc/application/dockerlogger:default (see
# dockerlogger.xml). POSIX sh; runs under illumos /bin/sh (ksh93).
#
#   start    install the binary, check it, mount it into running docker zones,
#            and, if the installed file changed, tell running loggers
#   refresh  the same: "svcadm refresh" after dropping a new binary at
#            install/source is the live-upgrade path
#   stop     nothing: running containers keep using the installed binary
#
# Settings come from the service's properties (svcprop):
#   install/source     the binary as shipped (platform image or update)
#   install/target     where it is installed; its directory is what zones see
#   zones/mountpoint   where that directory appears inside each docker zone
#   zones/brands       zone brands that may hold docker containers
#   config/*           default log-opts, validated with the new binary
#
# Install: the new file is copied next to the target, made 0755, run
# ("version", "--list-drivers", "--validate" with config/*) and only then
# renamed over the target, so a broken or half-copied binary never replaces
# a working one, and a logger starting meanwhile sees the old or the new
# file, never a partial one.
#
# Docker zones: running zones (zoneadm list -p) whose brand is in
# zones/brands and whose zonecfg has the attr docker=true. Into each, the
# target's directory is lofs-mounted read-only at zones/mountpoint unless a
# lofs mount is already there. The mount point is created inside the zone
# root only through real directories: the zone's files belong to its tenant,
# so a symlink on the way is refused rather than followed into the global
# zone. Zones that boot later are not covered here; the service runs before
# svc:/system/zones at boot, so autobooted zones find the binary installed.
#
# Live upgrade: when the installed file changed, SIGHUP goes to each
# dockerlogger supervisor in the docker zones; a supervisor hands over to a
# worker started from the new file with no lost lines. Only supervisors are
# signalled (processes named like the target whose child is its worker):
# a worker, or a logger run with DOCKERLOG_SUPERVISOR=off, is not an
# upgrade target, and pkill -x alone would signal those too. A supervisor
# between two workers is missed, and needs no signal: it starts every
# worker from the file on disk.
#
set -o errexit
set -o nounset

if [ -f /lib/svc/share/smf_include.sh ]; then
	# shellcheck source=/dev/null # illumos only: SMF_EXIT_* codes
	. /lib/svc/share/smf_include.sh
fi
SMF_EXIT_OK=${SMF_EXIT_OK:-0}
SMF_EXIT_ERR_FATAL=${SMF_EXIT_ERR_FATAL:-95}
SMF_EXIT_ERR_CONFIG=${SMF_EXIT_ERR_CONFIG:-96}
FMRI=${SMF_FMRI:-svc:/smartdc/application/dockerlogger:default}

log() {
	printf 'dockerlogger-setup: %s\n' "$*"
}

die() {
	code=$1
	shift
	printf 'dockerlogger-setup: %s\n' "$*" >&2
	exit "$code"
}

# prop NAME: the value(s) of the property NAME of this service, with
# svcprop's backslash escapes removed.
prop() {
	svcprop -p "$1" "$FMRI" | sed 's/\\\(.\)/\1/g'
}

# json_string S: S as a JSON string.
json_string() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# config_json: the config property group as a JSON object of log-opts.
config_json() {
	out='{'
	sep=''
	lines=$(svcprop -p config "$FMRI" 2>/dev/null) || lines=''
	while read -r name _type value; do
		[ -n "$name" ] || continue
		value=$(printf '%s' "$value" | sed 's/\\\(.\)/\1/g')
		out="$out$sep$(json_string "${name#config/}"):$(json_string "$value")"
		sep=','
	done <<EOF
$lines
EOF
	printf '%s}' "$out"
}

# check BINARY: the binary runs, names its drivers, and accepts config/*.
check() {
	"$1" version || return 1
	drivers=$("$1" --list-drivers) || return 1
	log "drivers: $(printf '%s' "$drivers" | tr '\n' ' ')"
	DOCKERLOG_CONFIG=$(config_json) DOCKERLOG_CONTAINERID=smf-validate \
	    "$1" --validate json-file || return 1
}

# install_binary: copy install/source to install/target atomically. Sets
# changed=true if the target's content changed.
install_binary() {
	changed=false
	[ -f "$source" ] || die "$SMF_EXIT_ERR_CONFIG" "install/source $source: no such file"
	dir=$(dirname "$target")
	mkdir -p "$dir"
	if [ -f "$target" ] && cmp -s "$source" "$target"; then
		chmod 0755 "$target"
		check "$target" || die "$SMF_EXIT_ERR_FATAL" "$target does not run"
		log "$target is up to date"
		return 0
	fi
	tmp="$dir/.$(basename "$target").new.$$"
	trap 'rm -f "$tmp"' EXIT
	cp "$source" "$tmp"
	chmod 0755 "$tmp"
	check "$tmp" || die "$SMF_EXIT_ERR_FATAL" "$source does not run or rejects config/*; $target left as it was"
	mv -f "$tmp" "$target"
	trap - EXIT
	changed=true
	log "installed $source as $target"
}

# docker_zones: "name zonepath" of each running docker zone.
docker_zones() {
	brands=" $(prop zones/brands | tr '\n' ' ') "
	zoneadm list -p | while IFS=: read -r _id name state path _uuid brand _rest; do
		if [ "$name" = global ] || [ "$state" != running ]; then
			continue
		fi
		case $brands in
		*" $brand "*) ;;
		*) continue ;;
		esac
		zonecfg -z "$name" info attr name=docker 2>/dev/null |
		    grep -q '^[[:space:]]*value: true$' || continue
		printf '%s %s\n' "$name" "$path"
	done
}

# lofs_mounted PATH: a lofs filesystem is mounted at PATH.
lofs_mounted() {
	mount -p | awk -v mp="$1" '$3 == mp && $4 == "lofs" { found = 1 } END { exit !found }'
}

# make_mountpoint ROOT REL: create ROOT/REL through real directories only.
make_mountpoint() {
	p=$1
	rest=${2#/}
	while [ -n "$rest" ]; do
		part=${rest%%/*}
		case $rest in
		*/*) rest=${rest#*/} ;;
		*) rest='' ;;
		esac
		[ -n "$part" ] || continue
		p="$p/$part"
		if [ -h "$p" ]; then
			log "$p is a symbolic link; not following it"
			return 1
		fi
		[ -d "$p" ] || mkdir -m 0755 "$p" || return 1
	done
}

# mount_zones: lofs-mount the target's directory into each docker zone.
mount_zones() {
	mountpoint=$(prop zones/mountpoint)
	dir=$(dirname "$target")
	zones=''
	list=$(docker_zones)
	while read -r name path; do
		[ -n "$name" ] || continue
		zones="$zones${zones:+,}$name"
		mp="$path/root$mountpoint"
		if lofs_mounted "$mp"; then
			log "zone $name: $mp already mounted"
			continue
		fi
		if make_mountpoint "$path/root" "$mountpoint" &&
		    mount -F lofs -o ro "$dir" "$mp"; then
			log "zone $name: mounted $dir read-only at $mountpoint"
		else
			log "zone $name: could not mount $dir at $mp" >&2
		fi
	done <<EOF
$list
EOF
}

# hup_supervisors: SIGHUP to the dockerlogger supervisors in $zones.
hup_supervisors() {
	[ -n "$zones" ] || return 0
	name=$(basename "$target")
	all=$(pgrep -z "$zones" -x "$name" | tr '\n' ',') || all=''
	all=${all%,}
	[ -n "$all" ] || { log "no running $name to upgrade"; return 0; }
	workers=$(pgrep -z "$zones" -x "$name" -P "$all" | tr '\n' ',') || workers=''
	workers=${workers%,}
	[ -n "$workers" ] || { log "no $name supervisor to upgrade"; return 0; }
	sups=$(ps -o ppid= -p "$workers" | awk '{ print $1 }' | sort -u | tr '\n' ' ')
	sups=${sups% }
	log "SIGHUP to $name supervisors: $sups"
	# shellcheck disable=SC2086 # one argument per pid
	kill -HUP $sups || log "some supervisors exited before the signal"
}

case ${1:-} in
start | refresh)
	source=$(prop install/source)
	target=$(prop install/target)
	install_binary
	mount_zones
	if [ "$changed" = true ]; then
		hup_supervisors
	fi
	;;
stop)
	log "stop: the installed binary and zone mounts stay for running containers"
	;;
*)
	die "$SMF_EXIT_ERR_CONFIG" "usage: $0 start|refresh|stop"
	;;
esac
exit "$SMF_EXIT_OK"
