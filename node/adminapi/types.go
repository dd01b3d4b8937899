// Package adminapi holds the node admin API's wire types and a typed client
// for it. The node serves these types; the operator and the tests call them
// through Client.
package adminapi

// Suffrage says whether a member votes in elections and commits.
type Suffrage string

// Suffrage values, as hashicorp/raft names them.
const (
	Voter    Suffrage = "voter"
	Nonvoter Suffrage = "nonvoter"
)

// Member is one server in the Raft configuration.
type Member struct {
	// ID is the Raft server ID (the pod name in Kubernetes).
	ID string `json:"id"`
	// Address is the Raft address (host:port).
	Address string `json:"address"`
	// Suffrage is voter or nonvoter.
	Suffrage Suffrage `json:"suffrage"`
	// Leader is true for the current leader.
	Leader bool `json:"leader"`
	// LastIndex is the last log index the member reported having applied;
	// absent when the member could not be asked.
	LastIndex *uint64 `json:"last_index,omitempty"`
	// HTTPURL and AdminURL are the member's published client and admin URLs,
	// empty until the member has published them into the replicated state.
	HTTPURL  string `json:"http_url,omitempty"`
	AdminURL string `json:"admin_url,omitempty"`
}

// Cluster is the answer of GET /cluster.
type Cluster struct {
	// ServedBy is the node that answered.
	ServedBy string `json:"served_by"`
	// Leader is the leader's server ID, empty when none is known.
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// ConfigurationIndex is the log index of the latest configuration the
	// answering node knows committed (0 when it knows none yet).
	ConfigurationIndex uint64 `json:"configuration_index"`
	// ConfigurationPending is true when Members is a newer configuration
	// than the one at ConfigurationIndex: a change appended and not yet
	// known committed.
	ConfigurationPending bool     `json:"configuration_pending,omitempty"`
	Members              []Member `json:"members"`
}

// Status is the answer of GET /status: one node's own view, cheap to ask.
// Members ask each other for it over the peer channel too.
type Status struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Leader string `json:"leader"`
	// LeaderAddress is the leader's Raft address, when one is known.
	LeaderAddress string `json:"leader_address,omitempty"`
	Term          uint64 `json:"term"`
	LastIndex     uint64 `json:"last_index"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	// HasData is true when the node holds anything beyond the bootstrap
	// configuration: a node starting on an empty data dir learns from it
	// that the cluster exists.
	HasData bool `json:"has_data"`
	// Joining is true while the node is a new incarnation (it came back
	// with an empty data dir) that may not vote yet.
	Joining bool `json:"joining"`
	// ClusterID and Incarnation come from the data dir's identity; the
	// incarnation changes each time the node starts on an empty data dir.
	ClusterID   string `json:"cluster_id,omitempty"`
	Incarnation string `json:"incarnation,omitempty"`
	// RecoveredIndex is the last index at which this node last recovered
	// from a lost quorum (POST /cluster/recover), 0 if it never did.
	RecoveredIndex uint64 `json:"recovered_index,omitempty"`
	// ClockUnixNano is the node's wall clock when it answered: the leader
	// compares its own with the voters' before it stamps purchases.
	ClockUnixNano int64 `json:"clock_unix_nano"`
	// ClockSkewed is true on a leader whose clock disagrees with a majority
	// of the voters (it stamps nothing); MaxClockOffsetSeconds is the
	// largest offset it measured to a voter.
	ClockSkewed           bool    `json:"clock_skewed,omitempty"`
	MaxClockOffsetSeconds float64 `json:"max_clock_offset_seconds,omitempty"`

	// DiskFreeBytes and DiskTotalBytes describe the file system of the
	// node's data dir, as last checked; DiskPressure is true while its free
	// space is below the node's watermark (--min-free-disk) or a write
	// failed for lack of space, and new purchases answer 507.
	DiskFreeBytes  uint64 `json:"disk_free_bytes"`
	DiskTotalBytes uint64 `json:"disk_total_bytes"`
	DiskPressure   bool   `json:"disk_pressure"`

	// Digest is the SHA-256 of the node's applied records (hex) and
	// DigestIndex the applied index it is at; members whose digests differ
	// at one index hold different state.
	Digest      string `json:"digest"`
	DigestIndex uint64 `json:"digest_index"`
	// Halted is why the node's ledger stopped applying, empty while healthy.
	Halted string `json:"halted,omitempty"`
	// Diverged says why the node answers nothing while its digest differs
	// from another member's and no majority has decided which is right.
	Diverged string `json:"diverged,omitempty"`
}

// AddMemberRequest is the body of POST /cluster/members.
type AddMemberRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// TransferRequest is the body of POST /cluster/leadership-transfer; an empty
// ID lets Raft pick the most up-to-date voter.
type TransferRequest struct {
	ID string `json:"id,omitempty"`
}

// RecoverRequest is the body of POST /cluster/recover: LastIndex is the
// survivor's last log index as the caller observed it, so a node whose log
// moved since is not recovered at a state nobody looked at.
type RecoverRequest struct {
	LastIndex uint64 `json:"last_index"`
}

// RecoverResult is the answer of POST /cluster/recover: the node is the only
// voter of a configuration recovered at LastIndex, and leads in Term.
type RecoverResult struct {
	Recovered bool   `json:"recovered"`
	LastIndex uint64 `json:"last_index"`
	Term      uint64 `json:"term"`
}

// RecoverRefusal is the body of a 409 answer of POST /cluster/recover: the
// error and the node's current last log index.
type RecoverRefusal struct {
	Error     ErrorDetail `json:"error"`
	LastIndex uint64      `json:"last_index"`
}

// NodeInfo is what a node publishes about itself into the replicated state,
// so that peers can forward requests to it.
type NodeInfo struct {
	ID       string `json:"id"`
	HTTPURL  string `json:"http_url"`
	AdminURL string `json:"admin_url"`
}

// Result is the answer of a mutating call.
type Result struct {
	// Index is the Raft log index of the configuration change, 0 when
	// nothing had to change.
	Index   uint64 `json:"index"`
	Message string `json:"message"`
}

// ErrorBody is the JSON error shape shared with the client API.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes one error.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// GET /backup's headers: the index and purchase count are known before the
// stream starts; the checksum (hex SHA-256 of the stream before its own
// trailer) is sent as an HTTP trailer.
const (
	HeaderBackupIndex     = "Buytracker-Backup-Index"
	HeaderBackupPurchases = "Buytracker-Backup-Purchases"
	HeaderBackupCreatedAt = "Buytracker-Backup-Created-At"
	TrailerBackupChecksum = "Buytracker-Backup-Checksum"
)
