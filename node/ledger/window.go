package ledger

import (
	"encoding/binary"
	"sort"
)

// windowIndex answers "how many purchases, and for how much, since time t"
// in O(log n) for one stream of purchases (all of them, one promotion, one
// product, or one promotion-product pair).
//
// Recorded times never decrease, so the index is an append-only list of
// points (recorded time, cumulative count, cumulative cents); purchases that
// share a recorded time (a whole Raft batch does) share one point. To keep
// memory far below a record per purchase, points are kept in blocks of
// blockPoints: a block stores its first point in full and the rest as
// varint deltas (typically 6-9 bytes a point instead of 24). A query finds
// the block by binary search and decodes at most one block.
type windowIndex struct {
	blocks []windowBlock
	// tail is the open block, not yet compressed.
	tail []windowPoint
	last windowPoint
}

type windowPoint struct {
	at     int64 // recorded time, Unix nanoseconds
	count  int64 // purchases recorded at or before at
	amount int64 // their amount in cents
}

// windowBlock is a sealed run of blockPoints points.
type windowBlock struct {
	first  windowPoint
	deltas []byte // the points after first, as uvarint deltas of at, count, amount
}

const blockPoints = 64

// add records one purchase at time at, which must not precede the last one.
func (w *windowIndex) add(at, cents int64) {
	w.last.count++
	w.last.amount += cents
	if n := len(w.tail); n > 0 && w.tail[n-1].at == at {
		w.tail[n-1] = windowPoint{at: at, count: w.last.count, amount: w.last.amount}
		w.last.at = at
		return
	}
	w.last.at = at
	if len(w.tail) == blockPoints {
		w.seal()
	}
	w.tail = append(w.tail, w.last)
}

// seal compresses the open block.
func (w *windowIndex) seal() {
	b := windowBlock{first: w.tail[0]}
	buf := make([]byte, 0, 8*len(w.tail))
	prev := w.tail[0]
	for _, p := range w.tail[1:] {
		buf = binary.AppendUvarint(buf, uint64(p.at-prev.at))
		buf = binary.AppendUvarint(buf, uint64(p.count-prev.count))
		buf = binary.AppendUvarint(buf, uint64(p.amount-prev.amount))
		prev = p
	}
	b.deltas = append([]byte(nil), buf...) // exact size
	w.blocks = append(w.blocks, b)
	w.tail = w.tail[:0]
}

// points returns how many points the index holds.
func (w *windowIndex) points() int {
	if w == nil {
		return 0
	}
	return len(w.blocks)*blockPoints + len(w.tail)
}

// totals returns the count and amount of every purchase in the index.
func (w *windowIndex) totals() (count, amount int64) {
	if w == nil {
		return 0, 0
	}
	return w.last.count, w.last.amount
}

// since returns the count and amount of purchases recorded at or after t.
func (w *windowIndex) since(t int64) (count, amount int64) {
	if w == nil || w.last.count == 0 {
		return 0, 0
	}
	before, ok := w.before(t)
	if !ok {
		return w.last.count, w.last.amount
	}
	return w.last.count - before.count, w.last.amount - before.amount
}

// before returns the last point recorded before t, if any.
func (w *windowIndex) before(t int64) (windowPoint, bool) {
	// The open block holds the newest points: most windows end there.
	if len(w.tail) > 0 && w.tail[0].at < t {
		i := sort.Search(len(w.tail), func(i int) bool { return w.tail[i].at >= t })
		return w.tail[i-1], true
	}
	// The last sealed block whose first point precedes t holds the answer.
	i := sort.Search(len(w.blocks), func(i int) bool { return w.blocks[i].first.at >= t })
	if i == 0 {
		return windowPoint{}, false
	}
	b := &w.blocks[i-1]
	p := b.first
	for buf := b.deltas; len(buf) > 0; {
		var next windowPoint
		var d [3]uint64
		for j := range d {
			v, n := binary.Uvarint(buf)
			d[j], buf = v, buf[n:]
		}
		next.at, next.count, next.amount = p.at+int64(d[0]), p.count+int64(d[1]), p.amount+int64(d[2])
		if next.at >= t {
			break
		}
		p = next
	}
	return p, true
}
