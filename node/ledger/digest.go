package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
)

// The digest of the applied state is the SHA-256 of every stored record's
// encoded bytes, concatenated in id order (records are self-delimiting, so
// the concatenation reads only one way). Records are append-only and never
// change, so the state keeps the hash running and Apply feeds it each new
// record; the digest is the running hash's sum after each entry that
// recorded purchases. Two members hold equal records exactly when their
// digests at one applied index are equal. Restore recomputes it from the
// restored records, so the snapshot format needs no new field.
//
// A chain of one SHA-256 per record (sha256(previous digest || record))
// would cost two compressions per record, about 10 % of applying a batch of
// 256 purchases; the running hash costs under one (docs/benchmarks.md).

// digestRingSize is how many (applied index, digest) pairs a ledger keeps,
// so that members applying at different speeds can still compare digests
// at one index.
const digestRingSize = 4096

// stateDigest is one value of the digest.
type stateDigest [sha256.Size]byte

// emptyDigest is the digest of a state with no records.
var emptyDigest stateDigest = sha256.Sum256(nil)

// recordsHash is a running SHA-256 over encoded records.
type recordsHash struct{ h hash.Hash }

func newRecordsHash() recordsHash { return recordsHash{h: sha256.New()} }

// clone returns an independent copy, which a plan can feed without changing
// the state's own hash.
func (r recordsHash) clone() recordsHash {
	c, err := r.h.(hash.Cloner).Clone()
	if err != nil {
		panic(fmt.Sprintf("ledger: clone sha256: %v", err)) // never fails for crypto/sha256
	}
	return recordsHash{h: c}
}

func (r recordsHash) add(record []byte) { r.h.Write(record) }

// sum returns the digest of the records added so far; the hash runs on.
func (r recordsHash) sum() stateDigest {
	var d stateDigest
	r.h.Sum(d[:0])
	return d
}

// digestAt is the digest the state had right after applying index.
type digestAt struct {
	index  uint64
	digest stateDigest
}

// digestRing holds the last digestRingSize digests, oldest first from
// start. A pair is added only when an entry changed the digest: an entry
// that recorded no purchase keeps the digest before it, so the digest at any
// index is the newest pair at or below it.
type digestRing struct {
	pairs []digestAt
	start int
}

func newDigestRing(first digestAt) digestRing {
	r := digestRing{pairs: make([]digestAt, 0, 16)}
	r.add(first)
	return r
}

func (r *digestRing) add(p digestAt) {
	if len(r.pairs) < digestRingSize {
		r.pairs = append(r.pairs, p)
		return
	}
	r.pairs[r.start] = p
	r.start = (r.start + 1) % digestRingSize
}

func (r *digestRing) at(i int) digestAt {
	return r.pairs[(r.start+i)%len(r.pairs)]
}

// lookup returns the digest right after index, given that the state has
// applied up to last. It fails for an index above last or older than the
// oldest pair kept.
func (r *digestRing) lookup(index, last uint64) (stateDigest, bool) {
	n := len(r.pairs)
	if n == 0 || index > last || index < r.at(0).index {
		return stateDigest{}, false
	}
	// The first pair above index; the one before it holds.
	i := sort.Search(n, func(i int) bool { return r.at(i).index > index })
	return r.at(i - 1).digest, true
}

// Digest returns the applied index and the digest of the state at it, in
// hex.
func (l *Ledger) Digest() (uint64, string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.st.lastIndex, hex.EncodeToString(l.st.digest[:])
}

// DigestAt returns the digest the state had right after applying index, in
// hex, while that index is among the last pairs kept.
func (l *Ledger) DigestAt(index uint64) (string, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	d, ok := l.st.digests.lookup(index, l.st.lastIndex)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(d[:]), true
}
