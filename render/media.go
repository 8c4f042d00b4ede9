// Package render builds DHCP-less boot media: OpenStack config drives and
// cloud-init NoCloud seeds as ISO 9660 images, and the network and meta
// data documents on them. Every input is explicit (no clock, no random
// IDs): the same inputs give byte-identical images.
package render

import (
	"fmt"
	"io"
	"time"
)

// Format is a kind of boot media.
type Format string

// Formats.
const (
	// ConfigDrive is an OpenStack config drive (label config-2), read by
	// cloud-init's ConfigDrive datasource, Ironic's agent and Glean.
	ConfigDrive Format = "configdrive"
	// NoCloud is a cloud-init NoCloud seed (label cidata).
	NoCloud Format = "nocloud"
)

// Label returns the volume label consumers look for.
func (f Format) Label() string {
	switch f {
	case ConfigDrive:
		return "config-2"
	case NoCloud:
		return "cidata"
	}
	return ""
}

// ParseFormat parses "configdrive" or "nocloud".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case ConfigDrive, NoCloud:
		return f, nil
	}
	return "", fmt.Errorf("unknown media format %q (want configdrive or nocloud)", s)
}

// Only openstack/latest is written: cloud-init prefers any dated version
// directory over latest.
const osDir = "openstack/latest/"

// Files returns the files of the media for n, in image order.
func Files(f Format, n Node) ([]File, error) {
	var files []File
	add := func(path string, data []byte, err error) error {
		if err != nil {
			return err
		}
		files = append(files, File{Path: path, Data: data})
		return nil
	}
	var err error
	switch f {
	case ConfigDrive:
		md, mdErr := MetaData(n)
		err = add(osDir+"meta_data.json", md, mdErr)
		if err == nil && hasNetwork(n.Network) {
			nd, ndErr := NetworkData(n.Network)
			err = add(osDir+"network_data.json", nd, ndErr)
		}
		if err == nil && n.UserData != nil {
			err = add(osDir+"user_data", n.UserData, nil)
		}
	case NoCloud:
		md, mdErr := NoCloudMetaData(n)
		err = add("meta-data", md, mdErr)
		if err == nil && hasNetwork(n.Network) {
			nc, ncErr := NetworkConfig(n.Network)
			err = add("network-config", nc, ncErr)
		}
		if err == nil {
			// The NoCloud reader requires user-data to exist.
			err = add("user-data", n.UserData, nil)
		}
	default:
		return nil, fmt.Errorf("unknown media format %q", f)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %s: %w", n.Name, f, err)
	}
	return files, nil
}

// Write renders the media of format f for n to w, stamped with modTime,
// and returns the number of bytes written.
func Write(w io.Writer, f Format, n Node, modTime time.Time) (int64, error) {
	files, err := Files(f, n)
	if err != nil {
		return 0, err
	}
	size, err := WriteISO(w, ISO{VolumeID: f.Label(), ModTime: modTime, Files: files})
	if err != nil {
		return size, fmt.Errorf("node %s: %s: %w", n.Name, f, err)
	}
	return size, nil
}
