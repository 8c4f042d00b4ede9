#!/bin/sh
# ipmi_sim's chassis_control program (lan.conf, OpenIPMI's
# ipmi_sim_chassiscontrol protocol), called through popen as
#
#   chassis-control.sh STATE_DIR MC_ADDR get PARAM...
#   chassis-control.sh STATE_DIR MC_ADDR set PARAM VALUE [PARAM VALUE]...
#
# It keeps the simulated machine in files under STATE_DIR, so that a chassis
# power command really changes what Get Chassis Status reports, and so that
# tests can see resets and the boot device independently of the BMC:
#   power   1 or 0
#   boot    none, pxe, default, cdrom or bios (ipmi_sim's names)
#   resets  number of hard resets done while powered on
# "get" prints PARAM:VALUE lines; errors go to stdout and exit non-zero.
set -u
dir=$1
op=$3
shift 3

read_file() { cat "$dir/$1" 2>/dev/null || echo "$2"; }

case $op in
get)
	for p in "$@"; do
		case $p in
		power) echo "power:$(read_file power 0)" ;;
		boot) echo "boot:$(read_file boot default)" ;;
		*) echo "chassis-control: cannot get $p"; exit 1 ;;
		esac
	done
	;;
set)
	while [ $# -ge 2 ]; do
		p=$1 v=$2
		shift 2
		case $p in
		power) echo "$v" >"$dir/power" ;;
		# The simulated OS obeys an ACPI shutdown at once.
		shutdown) echo 0 >"$dir/power" ;;
		reset)
			if [ "$(read_file power 0)" = 1 ]; then
				echo $(($(read_file resets 0) + 1)) >"$dir/resets"
			fi
			;;
		boot) echo "$v" >"$dir/boot" ;;
		identify) ;;
		*) echo "chassis-control: cannot set $p"; exit 1 ;;
		esac
	done
	;;
check) ;;
*) echo "chassis-control: unknown operation $op"; exit 1 ;;
esac
