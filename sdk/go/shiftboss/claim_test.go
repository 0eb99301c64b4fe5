package shiftboss

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// claimIDs are the request ids of every claim request that arrived, faulty or not.
func (op *fakeOperator) claimIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	op.with(func() {
		for _, r := range op.requests {
			if r.action == "claim" {
				var req ClaimRequest
				if err := json.Unmarshal(r.body, &req); err != nil {
					t.Errorf("claim body %s: %v", r.body, err)
				}
				ids = append(ids, req.RequestID)
			}
		}
	})
	return ids
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func TestALostClaimAnswerIsReplayedByTheSameRequestID(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Client.Retries = 0 // the worker's own retry, not the client's, is under test
	p := newProbe(t)
	p.let()
	w.Handle("job", p.handle, nil)
	op.inject("claim", 1, fault{drop: true}) // the claim is written, its answer lost
	id := op.enqueue("job", `{}`)
	start(t, w)
	op.settledAfter(t, id)
	op.requestsAfter(t, "claim", 2)
	ids := op.claimIDs(t)
	if ids[0] == "" || ids[1] != ids[0] {
		t.Errorf("the retry of a lost claim sent request id %q after %q, want the same", ids[1], ids[0])
	}
	if n := p.runs.Load(); n != 1 {
		t.Errorf("the attempt ran %d times, want once", n)
	}
	op.with(func() {
		if got := string(op.completes[id]); got != `"done"` {
			t.Errorf("result %q", got)
		}
	})
}

func TestEveryNewClaimHasAFreshRequestID(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	start(t, w)
	op.requestsAfter(t, "claim", 5)
	ids := op.claimIDs(t)
	seen := map[string]bool{}
	for _, id := range ids {
		if !requestIDPattern.MatchString(id) {
			t.Errorf("request id %q breaks the protocol's pattern", id)
		}
		if seen[id] {
			t.Errorf("request id %q reused for a claim that was answered", id)
		}
		seen[id] = true
	}
}

func TestAClaimLostForGoodIsTakenUpFromAssign(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.noReplay = true }) // the operator restarted: the answer is gone
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	p.let()
	w.Handle("job", p.handle, nil)
	op.inject("claim", 1, fault{drop: true})
	id := op.enqueue("job", `{}`)
	start(t, w)
	op.settledAfter(t, id)
	if n := p.runs.Load(); n != 1 {
		t.Errorf("the attempt ran %d times, want once", n)
	}
	op.with(func() {
		if _, ok := op.completes[id]; !ok {
			t.Errorf("not completed: fails %+v releases %+v", op.fails, op.releases)
		}
	})
}

func TestAnAttemptStartedHereIsNeverStartedAgain(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	var a Assignment
	op.with(func() { a = op.held[id] })
	op.command(Command{Type: CommandAssign, Assignment: &a})
	op.heartbeatsAfter(t, 3)
	p.let()
	op.settledAfter(t, id)
	// Once finished, a repeat (from a replayed claim or an assign) is ignored too.
	op.with(func() { op.held[id] = a })
	op.heartbeatsAfter(t, 3)
	if n := p.runs.Load(); n != 1 {
		t.Errorf("the attempt ran %d times, want once", n)
	}
	op.with(func() {
		if len(op.releases) != 0 {
			t.Errorf("released %v: a repeat must be ignored, not handed back", op.releases)
		}
	})
}

func TestAssignStartsAnAttemptWhenASlotIsFree(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	id := op.assignLater("add", `{"a":20,"b":22}`)
	start(t, w)
	op.settledAfter(t, id)
	op.with(func() {
		if got := string(op.completes[id]); got != "42" {
			t.Errorf("result %q, want 42", got)
		}
	})
}

func TestAssignWithoutAFreeSlotIsReleased(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	busy := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	extra := op.assignLater("job", `{}`)
	op.settledAfter(t, extra)
	op.with(func() {
		if got := op.releases[extra].Reason; !strings.Contains(got, "no free slot") {
			t.Errorf("release reason %q", got)
		}
	})
	if n := p.runs.Load(); n != 1 {
		t.Errorf("ran %d handlers with one slot", n)
	}
	p.let()
	op.settledAfter(t, busy)
}

func TestAClaimAnswerOverCapacityIsReleased(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.overAssign = true })
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	first, second := op.enqueue("job", `{}`), op.enqueue("job", `{}`)
	start(t, w)
	op.settledAfter(t, second)
	op.with(func() {
		if got := op.releases[second].Reason; !strings.Contains(got, "no free slot") {
			t.Errorf("the extra attempt was not released: %+v", op.releases)
		}
	})
	p.let()
	op.settledAfter(t, first)
}

func TestRecentIDsRemembersTheLastOnes(t *testing.T) {
	r := newRecentIDs(3)
	for _, id := range []string{"a", "b", "c", "b", "d"} {
		r.add(id)
	}
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": false} {
		if r.has(id) != want {
			t.Errorf("has(%q) = %v, want %v", id, !want, want)
		}
	}
	big := newRecentIDs(rememberedAttempts)
	for i := range rememberedAttempts + 1 {
		big.add(strconv.Itoa(i))
	}
	if len(big.set) != rememberedAttempts || big.has("0") || !big.has("1") || rememberedAttempts < 1024 {
		t.Errorf("remembers %d ids, want %d (at least 1,024)", len(big.set), rememberedAttempts)
	}
}
