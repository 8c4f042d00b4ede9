package mediaserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"metalsync.dev/metalsync/render"
	"metalsync.dev/metalsync/schema"
)

// DefaultTTL is how long a published image stays downloadable when the
// site sets no media.ttl.
const DefaultTTL = time.Hour

// PublisherOptions are the settings that are not in the inventory.
type PublisherOptions struct {
	// Format is the media kind; empty means render.ConfigDrive, which both
	// cloud-init and the deploy agent read.
	Format render.Format
	// TTL overrides the site's media.ttl.
	TTL time.Duration
	// ModTime is stamped on every image. Zero means the Unix epoch, so a
	// node's image (and its SHA-256) depends only on its inputs.
	ModTime time.Time
	// PublicKeys go to every node's default user.
	PublicKeys []string
	// UserData is written to every image when not nil.
	UserData []byte
	// Agent returns a node's deploy agent settings (nil for none).
	// epoch is the publication's epoch (see apply.Media).
	Agent func(node, epoch string) (*render.Agent, error)
	// Template, when set, makes every image a view of this deploy agent
	// template with the node's meta_data.json and network_data.json in
	// its slots, served in place; Format, ModTime and UserData do not
	// apply then.
	Template *Template
}

// Publisher renders a node's boot media and publishes it on a Server: the
// executor's virtual media step calls Publish, inserts the URL through the
// BMC, and calls Unpublish after ejecting.
type Publisher struct {
	srv   *Server
	site  schema.SiteSpec
	opts  PublisherOptions
	ttl   time.Duration
	bases []*url.URL // the site's media.baseURLs
}

// NewPublisher returns a publisher for the site's settings (site may be
// nil: defaults apply).
func NewPublisher(srv *Server, site *schema.Site, opts PublisherOptions) (*Publisher, error) {
	p := &Publisher{srv: srv, opts: opts, ttl: opts.TTL}
	if site != nil {
		p.site = site.Spec
	}
	if p.opts.Format == "" {
		p.opts.Format = render.ConfigDrive
	}
	if _, err := render.ParseFormat(string(p.opts.Format)); err != nil {
		return nil, fmt.Errorf("media publisher: %w", err)
	}
	if p.ttl == 0 && p.site.Media != nil && p.site.Media.TTL != "" {
		d, err := time.ParseDuration(p.site.Media.TTL)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("media publisher: site media.ttl %q is not a positive duration", p.site.Media.TTL)
		}
		p.ttl = d
	}
	if p.ttl == 0 {
		p.ttl = DefaultTTL
	}
	if p.site.Media != nil {
		for _, b := range p.site.Media.BaseURLs {
			u, err := url.Parse(b)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("media publisher: site media.baseURLs: %q is not an http(s) URL", b)
			}
			// The server routes by its own base path; another prefix would
			// need a proxy that metalsync does not know about.
			if strings.TrimSuffix(u.Path, "/") != srv.basePath() {
				return nil, fmt.Errorf("media publisher: site media.baseURLs: %q: path must be %q, the media server's", b, srv.basePath()+"/")
			}
			u.Path = srv.basePath()
			p.bases = append(p.bases, u)
		}
	}
	if p.opts.ModTime.IsZero() {
		p.opts.ModTime = time.Unix(0, 0).UTC()
	}
	return p, nil
}

// Publish renders node's media, publishes it and returns its URL (which
// carries a token: treat it as a secret) and the image's SHA-256.
func (p *Publisher) Publish(ctx context.Context, node *schema.Node, epoch string) (url, sha256 string, err error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	rn, err := p.renderNode(node, epoch)
	if err != nil {
		return "", "", err
	}
	if p.opts.Template != nil {
		return p.publishView(node, rn)
	}
	var buf bytes.Buffer
	if _, err := render.Write(&buf, p.opts.Format, rn, p.opts.ModTime); err != nil {
		return "", "", fmt.Errorf("media: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	pub, err := p.srv.Publish(node.Name(), &buf, p.ttl)
	if err != nil {
		return "", "", err
	}
	return p.urlFor(node, pub), pub.SHA256, nil
}

// emptyNetworkData is network_data.json for a node on DHCP: valid and
// empty, so the agent leaves the network to DHCP.
const emptyNetworkData = `{"links":[],"networks":[],"services":[]}` + "\n"

// publishView publishes the template with the node's documents in its
// slots, without copying the template.
func (p *Publisher) publishView(node *schema.Node, rn render.Node) (url, sha256 string, err error) {
	md, err := render.MetaData(rn)
	if err != nil {
		return "", "", fmt.Errorf("node %s: media: meta data: %w", node.Name(), err)
	}
	nd, err := render.NetworkData(rn.Network)
	if errors.Is(err, render.ErrNoStaticNetwork) {
		nd, err = []byte(emptyNetworkData), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("node %s: media: network data: %w", node.Name(), err)
	}
	v, err := p.opts.Template.View(md, nd)
	if err != nil {
		return "", "", fmt.Errorf("node %s: %w", node.Name(), err)
	}
	pub, err := p.srv.PublishReaderAt(node.Name(), v, p.ttl)
	if err != nil {
		return "", "", err
	}
	return p.urlFor(node, pub), pub.SHA256, nil
}

// urlFor is pub's URL through the site base URL the node's BMC reaches.
func (p *Publisher) urlFor(node *schema.Node, pub Published) string {
	if b := p.baseFor(node.Spec.BMC.Address); b != nil {
		return b.String() + pub.Path
	}
	return pub.URL
}

// baseFor picks the site base URL a BMC can reach: one of the BMC
// address's IP family (a host name fits both), else the first.
func (p *Publisher) baseFor(bmcAddress string) *url.URL {
	if len(p.bases) == 0 {
		return nil
	}
	var bmcIP netip.Addr
	if u, err := url.Parse(bmcAddress); err == nil {
		bmcIP, _ = netip.ParseAddr(u.Hostname())
	}
	if !bmcIP.IsValid() {
		return p.bases[0]
	}
	for _, b := range p.bases {
		ip, err := netip.ParseAddr(b.Hostname())
		if err != nil || ip.Unmap().Is4() == bmcIP.Unmap().Is4() {
			return b
		}
	}
	return p.bases[0]
}

// Unpublish revokes the node's image URL.
func (p *Publisher) Unpublish(ctx context.Context, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.srv.Unpublish(node)
}

func (p *Publisher) renderNode(node *schema.Node, epoch string) (render.Node, error) {
	rn := render.NodeFromSchema(node, p.site.DHCP)
	rn.PublicKeys, rn.UserData = p.opts.PublicKeys, p.opts.UserData
	if p.opts.Agent != nil {
		a, err := p.opts.Agent(node.Name(), epoch)
		if err != nil {
			return render.Node{}, fmt.Errorf("node %s: media: agent settings: %w", node.Name(), err)
		}
		rn.Agent = a
	}
	return rn, nil
}
