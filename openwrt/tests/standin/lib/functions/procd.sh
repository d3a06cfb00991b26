# Stand-in for OpenWrt's /lib/functions/procd.sh, written for the off-device
# service tests (not OpenWrt's code). Instead of building JSON for
# `ubus call service set`, each call is recorded as one tab-separated line in
# /harness/calls, which the tests read back as procd would receive it.
# shellcheck shell=dash

# As OpenWrt's procd.sh does when sourced: the service's lock on fd 1000,
# inherited by whatever the init script runs.
if command -v flock > /dev/null; then
	# shellcheck disable=SC3023 # busybox ash takes descriptors above 9
	exec 1000>> "/var/lock/procd_$(basename "${initscript:-service}").lock"
	flock -w 10 1000
fi

_procd_record() {
	local a
	printf '%s' "$1" >> /harness/calls
	shift
	for a in "$@"; do printf '\t%s' "$a" >> /harness/calls; done
	echo >> /harness/calls
}

procd_open_service() {
	_PROCD_SERVICE=$1
	_procd_record service_open "$@"
}

procd_close_service() {
	if type service_triggers > /dev/null 2>&1; then
		_procd_record triggers_open
		service_triggers
		_procd_record triggers_close
	fi
	_procd_record service_close "$_PROCD_SERVICE" "${1:-set}"
}

procd_open_instance() {
	_PROCD_INSTANCE=${1:-instance1}
	_procd_record instance_open "$_PROCD_INSTANCE"
}

procd_set_param() {
	[ -n "$_PROCD_INSTANCE" ] || { echo "procd_set_param outside an instance" >&2; return 1; }
	_procd_record param "$_PROCD_INSTANCE" "$@"
}

procd_append_param() {
	[ -n "$_PROCD_INSTANCE" ] || { echo "procd_append_param outside an instance" >&2; return 1; }
	_procd_record append "$_PROCD_INSTANCE" "$@"
}

procd_close_instance() {
	_procd_record instance_close "$_PROCD_INSTANCE"
	_PROCD_INSTANCE=
}

procd_add_reload_trigger() {
	_procd_record reload_trigger "$@"
}

procd_add_interface_trigger() {
	_procd_record interface_trigger "$@"
}

procd_add_raw_trigger() {
	_procd_record raw_trigger "$@"
}

procd_kill() {
	_procd_record kill "$@"
}

procd_lock() {
	:
}
