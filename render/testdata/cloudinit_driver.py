"""Feed an extracted boot media tree to Debian's cloud-init 22.4.

Usage: /usr/bin/python3 cloudinit_driver.py configdrive|nocloud SRC OUT KNOWN_MACS_JSON

Reads SRC with cloud-init's own datasource readers, converts the network
data to cloud-init's network state and renders it with the netplan, ENI and
networkd renderers into OUT/netplan, OUT/eni and OUT/networkd. Writes a JSON
summary of what the datasource read to stdout. Any log record at WARNING or
above, and any exception, fails the run (exit status 3 or 1).
"""
import json
import logging
import os
import sys


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append("%s: %s" % (record.name, record.getMessage()))


def main():
    kind, src, out, known_macs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    # Importing cloudinit replaces the root logger's handlers, so import
    # everything first and attach the collector after.
    from cloudinit import util
    from cloudinit.net import eni, netplan, network_state, networkd
    from cloudinit.sources import DataSourceConfigDrive, DataSourceNoCloud
    from cloudinit.sources.helpers import openstack

    collect = Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)

    os.makedirs(out, exist_ok=True)
    summary = {}
    if kind == "configdrive":
        res = DataSourceConfigDrive.read_config_drive(src)
        md = res["metadata"]
        summary["version"] = res.get("version")
        summary["instance-id"] = md.get("uuid")
        summary["hostname"] = md.get("hostname")
        summary["public-keys"] = sorted((md.get("public_keys") or {}).values())
        summary["meta"] = md.get("meta") or {}
        summary["user-data"] = (res.get("userdata") or b"").decode() if isinstance(res.get("userdata"), bytes) else res.get("userdata")
        netjson = res.get("networkdata")
        netcfg = openstack.convert_net_json(netjson, known_macs=known_macs) if netjson else None
    elif kind == "nocloud":
        seeded = util.pathprefix2dict(
            src, required=["user-data", "meta-data"], optional=["vendor-data", "network-config"]
        )
        mydata = {"meta-data": {}, "user-data": "", "vendor-data": "", "network-config": None}
        mydata = DataSourceNoCloud._merge_new_seed(mydata, seeded)
        md = mydata["meta-data"]
        summary["instance-id"] = md.get("instance-id")
        summary["hostname"] = md.get("local-hostname")
        summary["public-keys"] = sorted(md.get("public-keys") or [])
        summary["meta"] = {k: v for k, v in md.items() if k.startswith("metalsync_")}
        ud = mydata["user-data"]
        summary["user-data"] = ud.decode() if isinstance(ud, bytes) else ud
        netcfg = mydata["network-config"]
    else:
        raise SystemExit("unknown kind %r" % kind)

    summary["network"] = netcfg is not None
    if netcfg is not None:
        ns = network_state.parse_net_config_data(netcfg, skip_broken=False)
        renderers = {
            "netplan": netplan.Renderer({"features": [], "postcmds": False, "clean_default": False}),
            "eni": eni.Renderer({}),
            "networkd": networkd.Renderer({}),
        }
        for name, r in renderers.items():
            target = os.path.join(out, name)
            os.makedirs(target, exist_ok=True)
            r.render_network_state(ns, target=target)

    if collect not in logging.getLogger().handlers:
        raise SystemExit("cloud-init removed the warning collector; warnings would go unseen")
    json.dump(summary, sys.stdout, sort_keys=True, indent=2)
    sys.stdout.write("\n")
    if collect.records:
        sys.stderr.write("cloud-init warnings:\n" + "\n".join(collect.records) + "\n")
        sys.exit(3)


if __name__ == "__main__":
    main()
