# Stand-in for OpenWrt's /lib/functions.sh, written for the off-device
# service tests (not OpenWrt's code): the UCI reading functions init scripts
# use, and default_postinst / default_prerm as OpenWrt documents them.
# File lists hold one path without spaces per line: SC2013 does not apply.
# shellcheck shell=dash disable=SC2034,SC2013

# config_load PKG: /etc/config/PKG is shell once config/option/list are
# functions (OpenWrt evaluates `uci export` output the same way).
config_load() {
	CONFIG_SECTIONS=
	CONFIG_NUM_SECTIONS=0
	CONFIG_SECTION=
	[ -f "/etc/config/$1" ] || return 1
	# shellcheck source=/dev/null
	. "/etc/config/$1"
}

config() {
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	CONFIG_SECTION=${2:-cfg$CONFIG_NUM_SECTIONS}
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}

option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}

list() {
	local len
	eval "len=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	len=$((len + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$len=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$len"
	eval "CONFIG_${CONFIG_SECTION}_$1=\"\${CONFIG_${CONFIG_SECTION}_$1:+\$CONFIG_${CONFIG_SECTION}_$1 }\$2\""
}

config_get() {
	case "$#" in
		4) eval "$1=\${CONFIG_$2_$3:-\$4}" ;;
		3) eval "$1=\${CONFIG_$2_$3}" ;;
		2) eval "echo \"\${CONFIG_$1_$2}\"" ;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
		1 | on | true | yes | enabled) _tmp=1 ;;
		0 | off | false | no | disabled) _tmp=0 ;;
		*) _tmp="$4" ;;
	esac
	eval "$1=\$_tmp"
}

config_foreach() {
	local fn=$1 type=$2 section t
	shift 2
	for section in $CONFIG_SECTIONS; do
		eval "t=\$CONFIG_${section}_TYPE"
		[ -z "$type" ] || [ "$t" = "$type" ] || continue
		"$fn" "$section" "$@"
	done
}

config_list_foreach() {
	local section=$1 option=$2 fn=$3 len i v
	shift 3
	eval "len=\${CONFIG_${section}_${option}_LENGTH:-0}"
	i=1
	while [ "$i" -le "$len" ]; do
		eval "v=\$CONFIG_${section}_${option}_ITEM$i"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}

# The package's file list: opkg's info directory or apk's packages directory.
_pkg_list() {
	local f
	for f in "${IPKG_INSTROOT}/usr/lib/opkg/info/$1.list" "${IPKG_INSTROOT}/lib/apk/packages/$1.list"; do
		[ -f "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

add_group_and_user() {
	:
}

# default_postinst [SCRIPT]: on a running system, run the package's
# uci-defaults (each deleted once it succeeded), commit, then enable (unless
# upgrading) and start its init scripts.
default_postinst() {
	local name list file
	name=${pkgname:-$(basename "${1%.*}")}
	list=$(_pkg_list "$name") || return 0
	[ -n "$IPKG_INSTROOT" ] && return 0
	for file in $(grep '^/etc/uci-defaults/' "$list"); do
		[ -f "$file" ] || continue
		# shellcheck source=/dev/null
		( cd /etc/uci-defaults && . "$file" ) && rm -f "$file"
	done
	uci commit
	for file in $(grep '^/etc/init.d/' "$list"); do
		[ "$PKG_UPGRADE" = 1 ] || "$file" enable
		"$file" start
	done
	return 0
}

# default_prerm [SCRIPT]: stop the package's init scripts, and disable them
# unless upgrading.
default_prerm() {
	local name list file
	name=${pkgname:-$(basename "${1%.*}")}
	list=$(_pkg_list "$name") || return 0
	for file in $(grep '^/etc/init.d/' "$list"); do
		[ "$PKG_UPGRADE" = 1 ] || "$file" disable
		"$file" stop
	done
	return 0
}
