package schema

// APIVersion is the apiVersion of every file this version of metalsync reads.
const APIVersion = "metalsync.dev/v1alpha1"

// Kinds of inventory files.
const (
	KindNode           = "Node"
	KindOwner          = "Owner"
	KindDeployTemplate = "DeployTemplate"
	KindSite           = "Site"
	KindNodeStatus     = "NodeStatus"
)

// Meta is the metadata block of every file.
type Meta struct {
	Name        string            `json:"name"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Source says where a resource was read from, relative to the repository root.
type Source struct {
	File string `json:"-"`
	Line int    `json:"-"`
}

// Node is a machine managed through its BMC.
type Node struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Meta     `json:"metadata"`
	Spec       NodeSpec `json:"spec"`
	Source     Source   `json:"-"`
}

// Name returns the node's name.
func (n *Node) Name() string { return n.Metadata.Name }

// NodeSpec is the desired state of a node.
type NodeSpec struct {
	BMC             BMC               `json:"bmc"`
	Owner           string            `json:"owner"`
	Lessee          string            `json:"lessee,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Traits          []string          `json:"traits,omitempty"`
	Power           string            `json:"power,omitempty"`
	Provision       Provision         `json:"provision"`
	BootMode        string            `json:"bootMode,omitempty"`
	SecureBoot      bool              `json:"secureBoot,omitempty"`
	RootDeviceHints *RootDeviceHints  `json:"rootDeviceHints,omitempty"`
	Network         *Network          `json:"network,omitempty"`
	Inspect         string            `json:"inspect,omitempty"`
	Retired         *Reason           `json:"retired,omitempty"`
	Quarantine      *Reason           `json:"quarantine,omitempty"`
	Protected       *Reason           `json:"protected,omitempty"`
	DisablePowerOff bool              `json:"disablePowerOff,omitempty"`
}

// Reason records why a person stopped or changed automation for a node.
type Reason struct {
	Reason string `json:"reason"`
	Since  string `json:"since,omitempty"`
}

// BMC says how to reach a node's baseboard management controller.
type BMC struct {
	// Address is a URL whose scheme picks the driver:
	// redfish+https://host/redfish/v1/Systems/1, ipmi://host:623, fake://name.
	Address        string         `json:"address"`
	CredentialsRef CredentialsRef `json:"credentialsRef"`
	TLS            *TLS           `json:"tls,omitempty"`
	IPMI           *IPMIOptions   `json:"ipmi,omitempty"`
}

// CredentialsRef names the site's credential set holding a node's BMC
// credentials; it never holds them.
type CredentialsRef struct {
	Set string `json:"set,omitempty"`
	// Env, File and AgeFile are the inline sources of earlier versions.
	// Validation refuses them, saying how to move them into a site set;
	// nothing resolves them.
	Env     *EnvCredentials `json:"env,omitempty"`
	File    string          `json:"file,omitempty"`
	AgeFile string          `json:"ageFile,omitempty"`
}

// EnvCredentials names the environment variables holding credentials.
type EnvCredentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TLS configures certificate verification for a BMC.
type TLS struct {
	Verify bool   `json:"verify"`
	CAFile string `json:"caFile,omitempty"`
}

// IPMIOptions tunes the IPMI driver.
type IPMIOptions struct {
	CipherSuite int `json:"cipherSuite"`
}

// Provision is the desired provision state of a node.
type Provision struct {
	State           string   `json:"state"`
	Image           *Image   `json:"image,omitempty"`
	DeployTemplates []string `json:"deployTemplates,omitempty"`
	Adopt           bool     `json:"adopt,omitempty"`
}

// Image is a disk image to deploy.
type Image struct {
	URL      string `json:"url"`
	Checksum string `json:"checksum"`
	Format   string `json:"format"`
}

// RootDeviceHints select the disk the image is written to (Ironic's hints).
type RootDeviceHints struct {
	Name       string `json:"name,omitempty"`
	Model      string `json:"model,omitempty"`
	Vendor     string `json:"vendor,omitempty"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	HCTL       string `json:"hctl,omitempty"`
	Size       int    `json:"size,omitempty"`
	Rotational *bool  `json:"rotational,omitempty"`
}

// Network is a node's static network configuration.
type Network struct {
	DHCP   *bool   `json:"dhcp,omitempty"`
	Links  []Link  `json:"links"`
	Routes []Route `json:"routes,omitempty"`
	DNS    *DNS    `json:"dns,omitempty"`
}

// Link types.
const (
	LinkPhy  = "phy"
	LinkBond = "bond"
	LinkVLAN = "vlan"
)

// Link is a physical NIC, a bond or a VLAN.
type Link struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	MAC       string   `json:"mac,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	Members   []string `json:"members,omitempty"`
	ID        int      `json:"id,omitempty"`
	Parent    string   `json:"parent,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// Route is a static route.
type Route struct {
	To     string `json:"to"`
	Via    string `json:"via"`
	Metric int    `json:"metric,omitempty"`
}

// DNS holds resolvers and search domains.
type DNS struct {
	Servers []string `json:"servers,omitempty"`
	Search  []string `json:"search,omitempty"`
}

// Owner is a tenant: the people who may change the nodes it owns or leases.
type Owner struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   Meta      `json:"metadata"`
	Spec       OwnerSpec `json:"spec"`
	Source     Source    `json:"-"`
}

// OwnerSpec lists an owner's members.
type OwnerSpec struct {
	Description string   `json:"description,omitempty"`
	Admin       bool     `json:"admin,omitempty"`
	Members     []Member `json:"members"`
}

// Member is a person allowed to act for an owner.
type Member struct {
	Email      string `json:"email"`
	SigningKey string `json:"signingKey,omitempty"`
}

// DeployTemplate is a named list of deploy steps, Ironic style.
type DeployTemplate struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   Meta               `json:"metadata"`
	Spec       DeployTemplateSpec `json:"spec"`
	Source     Source             `json:"-"`
}

// DeployTemplateSpec holds the steps of a template.
type DeployTemplateSpec struct {
	Description string   `json:"description,omitempty"`
	Traits      []string `json:"traits,omitempty"`
	Steps       []Step   `json:"steps"`
}

// Step (steps.go) is one deploy step.

// Site holds site-wide settings (metalsync.yaml).
type Site struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Meta     `json:"metadata"`
	Spec       SiteSpec `json:"spec"`
	Source     Source   `json:"-"`
}

// SiteSpec is the content of metalsync.yaml.
type SiteSpec struct {
	Media       *MediaSettings `json:"media,omitempty"`
	Listen      []string       `json:"listen,omitempty"`
	Concurrency *Concurrency   `json:"concurrency,omitempty"`
	Sync        *SyncSettings  `json:"sync,omitempty"`
	PowerSync   string         `json:"powerSync,omitempty"`
	Faults      *FaultSettings `json:"faults,omitempty"`
	Status      *StatusTarget  `json:"status,omitempty"`
	Git         *GitSettings   `json:"git,omitempty"`
	DHCP        bool           `json:"dhcp,omitempty"`
	Agent       *AgentSettings `json:"agent,omitempty"`
	// Credentials and BMCNetworks are the site's control over where
	// credentials come from and where they may be sent (bmcpolicy.go).
	Credentials *CredentialSettings `json:"credentials,omitempty"`
	BMCNetworks []BMCNetwork        `json:"bmcNetworks,omitempty"`
}

// CredentialSettings declare the credential sets nodes may name.
type CredentialSettings struct {
	// Directory is the absolute directory on the daemon's host holding the
	// files of file sets; a set's file cannot leave it.
	Directory string                   `json:"directory,omitempty"`
	Sets      map[string]CredentialSet `json:"sets,omitempty"`
}

// CredentialSet is one source of BMC credentials: exactly one of Env,
// File (relative to CredentialSettings.Directory) and AgeFile (in the
// repository). Owners, when set, are the only owners whose nodes may use it.
type CredentialSet struct {
	Env     *EnvCredentials `json:"env,omitempty"`
	File    string          `json:"file,omitempty"`
	AgeFile string          `json:"ageFile,omitempty"`
	Owners  []string        `json:"owners,omitempty"`
}

// BMCNetwork is a place BMCs may live: a CIDR or a host pattern (a name,
// or *.domain for every name below domain). Owners, when set, are the only
// owners whose BMCs may be there.
type BMCNetwork struct {
	CIDR           string   `json:"cidr,omitempty"`
	Host           string   `json:"host,omitempty"`
	Owners         []string `json:"owners,omitempty"`
	AllowPlainHTTP bool     `json:"allowPlainHTTP,omitempty"`
}

// AgentSettings say where the deploy agent's boot image is and where the
// agent on a node calls the daemon back.
type AgentSettings struct {
	// Image is the agent ISO template (`metalsync agent-image build`);
	// its manifest sits next to it as <image>.json.
	Image string `json:"image,omitempty"`
	// URL is the https address nodes reach the agent listener at.
	URL string `json:"url,omitempty"`
	// Listen is the agent listener's host:port on the daemon.
	Listen string `json:"listen,omitempty"`
	// ImageCacheSize bounds the daemon's image cache ("50GiB"); see
	// ImageCacheBytes.
	ImageCacheSize string `json:"imageCacheSize,omitempty"`
}

// MediaSettings says where BMCs download boot media from.
type MediaSettings struct {
	BaseURLs []string `json:"baseURLs,omitempty"`
	TTL      string   `json:"ttl,omitempty"`
}

// Concurrency bounds parallel BMC work.
type Concurrency struct {
	Global int `json:"global,omitempty"`
	PerBMC int `json:"perBMC,omitempty"`
}

// SyncSettings are the daemon's intervals (Go durations).
type SyncSettings struct {
	PollInterval  string `json:"pollInterval,omitempty"`
	PowerInterval string `json:"powerInterval,omitempty"`
}

// FaultSettings configure automatic quarantine.
type FaultSettings struct {
	Threshold int `json:"threshold,omitempty"`
}

// StatusTarget says where status files go: a directory or a branch.
type StatusTarget struct {
	Directory string `json:"directory,omitempty"`
	Branch    string `json:"branch,omitempty"`
}

// GitSettings is the bot identity of status commits.
type GitSettings struct {
	AuthorName  string `json:"authorName,omitempty"`
	AuthorEmail string `json:"authorEmail,omitempty"`
	// RequireSignatures makes every author sign: an unsigned commit's
	// e-mail is never trusted, even for members without a signingKey.
	RequireSignatures bool `json:"requireSignatures,omitempty"`
}

// Site defaults, applied by Defaults.
const (
	DefaultConcurrency    = 64
	DefaultPerBMC         = 1
	DefaultFaultThreshold = 3
	DefaultStatusDir      = "status"
	DefaultPowerSync      = "enforce"
)

// Defaults returns the site settings with every unset value filled in.
func (s SiteSpec) Defaults() SiteSpec {
	if s.Concurrency == nil {
		s.Concurrency = &Concurrency{}
	}
	c := *s.Concurrency
	if c.Global == 0 {
		c.Global = DefaultConcurrency
	}
	if c.PerBMC == 0 {
		c.PerBMC = DefaultPerBMC
	}
	s.Concurrency = &c
	if s.PowerSync == "" {
		s.PowerSync = DefaultPowerSync
	}
	f := FaultSettings{}
	if s.Faults != nil {
		f = *s.Faults
	}
	if f.Threshold == 0 {
		f.Threshold = DefaultFaultThreshold
	}
	s.Faults = &f
	st := StatusTarget{}
	if s.Status != nil {
		st = *s.Status
	}
	if st.Directory == "" && st.Branch == "" {
		st.Directory = DefaultStatusDir
	}
	s.Status = &st
	return s
}
