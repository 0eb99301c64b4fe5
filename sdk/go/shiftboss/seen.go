package shiftboss

// recentIDs remembers the last limit ids added; the oldest is forgotten first.
type recentIDs struct {
	ring []string // the ids in the order added, limit at most
	next int      // where the next id goes once the ring is full
	set  map[string]struct{}
}

func newRecentIDs(limit int) *recentIDs {
	return &recentIDs{ring: make([]string, 0, limit), set: make(map[string]struct{}, limit)}
}

func (r *recentIDs) has(id string) bool {
	_, ok := r.set[id]
	return ok
}

// add remembers id (a no-op when it is remembered already).
func (r *recentIDs) add(id string) {
	if r.has(id) {
		return
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[id] = struct{}{}
}
