package ledger

import "sort"

// windowIndex answers "how many purchases, and for how much, since time t"
// in O(log n) for one stream of purchases (all of them, one promotion, one
// product, or one promotion-product pair). Recorded times never decrease, so
// the index is an append-only list of cumulative totals; purchases that share
// a recorded time (a whole Raft batch does) share one point, which keeps the
// index far smaller than the records under load.
type windowIndex struct {
	points []windowPoint
}

type windowPoint struct {
	at     int64 // recorded time, Unix nanoseconds
	count  int64 // purchases recorded at or before at
	amount int64 // their amount in cents
}

// add records one purchase at time at, which must not precede the last one.
func (w *windowIndex) add(at, cents int64) {
	n := len(w.points)
	if n > 0 && w.points[n-1].at == at {
		w.points[n-1].count++
		w.points[n-1].amount += cents
		return
	}
	var count, amount int64
	if n > 0 {
		count, amount = w.points[n-1].count, w.points[n-1].amount
	}
	w.points = append(w.points, windowPoint{at: at, count: count + 1, amount: amount + cents})
}

// totals returns the count and amount of every purchase in the index.
func (w *windowIndex) totals() (count, amount int64) {
	if w == nil || len(w.points) == 0 {
		return 0, 0
	}
	last := w.points[len(w.points)-1]
	return last.count, last.amount
}

// since returns the count and amount of purchases recorded at or after t.
func (w *windowIndex) since(t int64) (count, amount int64) {
	if w == nil || len(w.points) == 0 {
		return 0, 0
	}
	first := sort.Search(len(w.points), func(i int) bool { return w.points[i].at >= t })
	total, totalAmount := w.totals()
	if first == 0 {
		return total, totalAmount
	}
	before := w.points[first-1]
	return total - before.count, totalAmount - before.amount
}
