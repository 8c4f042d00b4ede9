// Package media finds and reads the deploy agent's boot media: the ISO
// 9660 volume labelled config-2 that the BMC presents as a CD or a USB
// disk, holding OpenStack's meta_data.json (who the node is, where the
// daemon listens, the token and CA) and network_data.json.
package media

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"metalsync.dev/metalsync/agentapi"
	"metalsync.dev/metalsync/credentials/secret"
	"metalsync.dev/metalsync/render/networkdata"
)

// Label is the volume id of a config drive.
const Label = "config-2"

// Paths of the files on the media.
const (
	MetaDataPath    = "openstack/latest/meta_data.json"
	NetworkDataPath = "openstack/latest/network_data.json"
)

// maxFile bounds what is read of one file: slots are 64 KiB.
const maxFile = 1 << 20

// Config is what the agent learns from its media.
type Config struct {
	Node  string
	URL   string // https://host:port of the daemon's agent listener
	Token secret.Value
	CA    []byte // PEM
	// Network is nil when the media has no network_data.json.
	Network *networkdata.Data
}

// String redacts the token.
func (c Config) String() string {
	return fmt.Sprintf("{Node:%s URL:%s Token:[redacted] CA:%d bytes}", c.Node, c.URL, len(c.CA))
}

// GoString redacts the token in %#v.
func (c Config) GoString() string { return "media.Config" + c.String() }

// LogValue logs the node and URL, never the token.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("node", c.Node), slog.String("url", c.URL))
}

// Candidates lists the block devices under dev that may hold the media:
// BMCs present virtual media as a CD (sr), a USB or SCSI disk (sd), and
// VMs as virtio (vd); nvme for completeness. Whole disks sort before
// their partitions.
func Candidates(dev string) ([]string, error) {
	var all []string
	for _, pat := range []string{"sr*", "sd*", "vd*", "nvme*n*"} {
		m, err := filepath.Glob(filepath.Join(dev, pat))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", pat, err)
		}
		all = append(all, m...)
	}
	slices.Sort(all)
	return all, nil
}

// VolumeID reads the volume id of the ISO 9660 primary volume descriptor
// at byte 32768 (sector 16): type 1, "CD001", version 1, then the volume
// id at offset 40, 32 bytes padded with spaces.
func VolumeID(r io.ReaderAt) (string, error) {
	var pvd [72]byte
	if _, err := r.ReadAt(pvd[:], 16*2048); err != nil {
		return "", fmt.Errorf("read primary volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" || pvd[6] != 1 {
		return "", errors.New("no ISO 9660 primary volume descriptor")
	}
	return strings.TrimRight(string(pvd[40:72]), " \x00"), nil
}

// Find waits until one of the devices list returns carries the volume
// label, and returns its path. Devices appear while modules load, so it
// looks again every interval until ctx ends; the error then says what
// each device was.
func Find(ctx context.Context, list func() ([]string, error), label string, interval time.Duration) (string, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	seen := map[string]string{}
	for {
		devs, err := list()
		if err != nil {
			return "", err
		}
		for _, d := range devs {
			id, err := volumeIDOf(d)
			if err != nil {
				seen[d] = err.Error()
				continue
			}
			if id == label {
				return d, nil
			}
			seen[d] = fmt.Sprintf("label %q", id)
		}
		select {
		case <-ctx.Done():
			var b strings.Builder
			for _, d := range slices.Sorted(maps.Keys(seen)) {
				fmt.Fprintf(&b, "; %s: %s", d, seen[d])
			}
			return "", fmt.Errorf("no volume labelled %s%s: %w", label, b.String(), ctx.Err())
		case <-t.C:
		}
	}
}

func volumeIDOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // names the path; an empty CD tray is ENOMEDIUM
	}
	defer f.Close()
	return VolumeID(f)
}

// Load reads the config from the media's file system (the mounted ISO or
// a directory for local runs).
func Load(fsys fs.FS) (*Config, error) {
	meta, err := readFile(fsys, MetaDataPath)
	if err != nil {
		return nil, err
	}
	c, err := ParseMetaData(meta)
	if err != nil {
		return nil, err
	}
	nd, err := readFile(fsys, NetworkDataPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, err
	}
	if c.Network, err = networkdata.Parse(nd); err != nil {
		return nil, fmt.Errorf("%s: %w", NetworkDataPath, err)
	}
	return c, nil
}

func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("media: read %s: %w", name, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("media: %s is larger than %d bytes", name, maxFile)
	}
	return b, nil
}

// ParseMetaData reads meta_data.json: the node name and the agent
// settings in "meta". Trailing space padding is fine (JSON whitespace).
// Errors never quote the token.
func ParseMetaData(b []byte) (*Config, error) {
	var md struct {
		Name string            `json:"name"`
		Meta map[string]string `json:"meta"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&md); err != nil {
		// json errors quote at most a type or offset, never the input.
		return nil, fmt.Errorf("%s: %w", MetaDataPath, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", MetaDataPath)
	}
	c := &Config{
		Node:  md.Name,
		URL:   md.Meta[agentapi.MetaURL],
		Token: secret.Value(md.Meta[agentapi.MetaToken]),
		CA:    []byte(md.Meta[agentapi.MetaCA]),
	}
	if c.Node == "" || strings.ContainsAny(c.Node, "/\r\n\x00") {
		return nil, fmt.Errorf("%s: missing or invalid name", MetaDataPath)
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%s: meta %s: want an https URL with a host", MetaDataPath, agentapi.MetaURL)
	}
	if c.Token == "" || strings.ContainsAny(c.Token.Reveal(), "\r\n") {
		return nil, fmt.Errorf("%s: meta %s: missing or not one line", MetaDataPath, agentapi.MetaToken)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(c.CA) {
		return nil, fmt.Errorf("%s: meta %s: no PEM certificate (the agent trusts only this CA)", MetaDataPath, agentapi.MetaCA)
	}
	return c, nil
}
